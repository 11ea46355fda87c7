package e2e

// The hostile-tenant review's findings replayed as an attacker would, over
// HTTP against the real binary, each asserting the secure outcome. This file
// uses only what the framework offered before the fixes, so it also runs
// against the platform as it was: there every one of these failed (the
// closing note of the isolation issue quotes how).

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// api calls the API with a token; path is from /api/v1 on.
func api(t *testing.T, f *Framework, token, method, path, body string) (int, string) {
	t.Helper()
	req, err := newRequest(method, f.APIURL()+"/api/v1"+path, body, token)
	require.NoError(t, err)
	resp, err := f.HTTP().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 64<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

// tokenFor mints a token as admin for subject (bound to tenant when set).
func tokenFor(t *testing.T, f *Framework, subject, tenant string) string {
	t.Helper()
	code, body := api(t, f, f.Token, "POST", "/tokens", fmt.Sprintf(`{"subject":%q,"tenant":%q,"ttl":"1h"}`, subject, tenant))
	require.Equal(t, 201, code, body)
	var out struct{ Token string }
	require.NoError(t, json.Unmarshal([]byte(body), &out))
	return out.Token
}

func TestFindingsOfTheHostileTenantReview(t *testing.T) {
	f := New(t)
	f.Start()
	admin := f.Token
	for _, tn := range []string{"ta", "tb"} {
		code, body := api(t, f, admin, "POST", "/tenants", fmt.Sprintf(`{"name":%q}`, tn))
		require.Equal(t, 201, code, body)
	}
	grant := func(tenant, subject, role string) {
		code, body := api(t, f, admin, "PUT", "/tenants/"+tenant+"/members/"+subject, fmt.Sprintf(`{"role":%q}`, role))
		require.Equal(t, 200, code, body)
	}
	grant("ta", "alice", "owner")
	grant("ta", "dave", "deployer")
	grant("ta", "vic", "viewer")
	alice, dave, vic := tokenFor(t, f, "alice", "ta"), tokenFor(t, f, "dave", "ta"), tokenFor(t, f, "vic", "ta")

	t.Run("1 an owner becomes platform admin", func(t *testing.T) {
		code, _ := api(t, f, alice, "PUT", "/tenants/ta/members/admin", `{"role":"viewer"}`)
		require.Contains(t, []int{200, 403}, code)
		code, body := api(t, f, alice, "POST", "/tokens", `{"subject":"admin","tenant":"ta","ttl":"1h"}`)
		if code == 201 {
			var out struct{ Token string }
			require.NoError(t, json.Unmarshal([]byte(body), &out))
			code, body = api(t, f, out.Token, "PUT", "/tenants/tb/quota", `{"max_apps":99,"max_replicas":50,"max_revisions":10,"max_cpu_millis":4000,"max_memory_mb":8192}`)
		}
		assert.Equal(t, 403, code, "the owner of ta reached tb's quota: %s", body)
	})

	t.Run("2 a deployer runs code as the platform's user", func(t *testing.T) {
		code, body := api(t, f, dave, "POST", "/tenants/ta/apps", `{"name":"sh","replicas":1}`)
		require.Equal(t, 201, code, body)
		script := fmt.Sprintf("cat %s; env; sleep 60", filepath.Join(f.DataDir, "admin.token"))
		code, body = api(t, f, dave, "POST", "/tenants/ta/apps/sh/revisions", fmt.Sprintf(`{"command":["/bin/sh","-c",%q]}`, script))
		if code != 202 {
			assert.Equal(t, 403, code, body)
			return
		}
		var rev struct{ ID string }
		require.NoError(t, json.Unmarshal([]byte(body), &rev))
		var log string
		f.Eventually("the replica's output", 30*time.Second, func() bool {
			var r struct {
				Replicas []struct{ ID string }
			}
			_, body := api(t, f, dave, "GET", "/tenants/ta/apps/sh/revisions/"+rev.ID, "")
			_ = json.Unmarshal([]byte(body), &r)
			if len(r.Replicas) == 0 {
				return false
			}
			_, log = api(t, f, dave, "GET", "/tenants/ta/apps/sh/revisions/"+rev.ID+"/replicas/"+r.Replicas[0].ID+"/logs", "")
			return strings.Contains(log, "PATH=")
		})
		assert.NotContains(t, log, admin, "the replica read the admin token")
	})

	// tb's app with an active revision, for the lease finding.
	code, body := api(t, f, admin, "POST", "/tenants/tb/apps", `{"name":"game","replicas":1,"health_path":"/healthz","reconnect_grace":"1s"}`)
	require.Equal(t, 201, code, body)
	code, body = api(t, f, admin, "POST", "/tenants/tb/apps/game/revisions", fmt.Sprintf(`{"command":[%q]}`, f.App))
	require.Equal(t, 202, code, body)
	var tbRev struct{ ID, State string }
	require.NoError(t, json.Unmarshal([]byte(body), &tbRev))
	f.Eventually("tb's revision is active", 60*time.Second, func() bool {
		_, body := api(t, f, admin, "GET", "/tenants/tb/apps/game/revisions/"+tbRev.ID, "")
		_ = json.Unmarshal([]byte(body), &tbRev)
		return tbRev.State == "active"
	})

	t.Run("3 leases on anyone's revision", func(t *testing.T) {
		code, body := api(t, f, vic, "POST", "/tenants/tb/apps/game/revisions/"+tbRev.ID+"/leases", `{"ttl":"1h"}`)
		assert.Equal(t, 403, code, "a viewer of ta held tb's revision: %s", body)
	})

	t.Run("4 one deployer fills the store", func(t *testing.T) {
		code, body := api(t, f, admin, "POST", "/tenants/ta/apps", `{"name":"fill","replicas":0}`)
		require.Equal(t, 201, code, body)
		huge := fmt.Sprintf(`{"command":["/bin/true"],"env":{"A":%q,"B":%q,"C":%q,"D":%q}}`,
			strings.Repeat("a", 30<<10), strings.Repeat("b", 30<<10), strings.Repeat("c", 30<<10), strings.Repeat("d", 30<<10))
		code, _ = api(t, f, admin, "POST", "/tenants/ta/apps/fill/revisions", huge)
		assert.Equal(t, 400, code, "a 120 KiB revision spec was stored")
		for range 16 {
			api(t, f, admin, "POST", "/tenants/ta/apps/fill/revisions", `{"command":["/bin/true"]}`)
		}
		_, body = api(t, f, admin, "GET", "/tenants/ta/apps/fill/revisions", "")
		var revs struct{ Revisions []struct{ State string } }
		require.NoError(t, json.Unmarshal([]byte(body), &revs))
		inFlight := 0
		for _, r := range revs.Revisions {
			if r.State == "pending" || r.State == "starting" {
				inFlight++
			}
		}
		assert.LessOrEqual(t, inFlight, 1, "revisions in flight on one app: %s", revSummary(body))
	})

	t.Run("5 quotas race", func(t *testing.T) {
		code, body := api(t, f, admin, "POST", "/tenants", `{"name":"tc"}`)
		require.Equal(t, 201, code, body)
		code, body = api(t, f, admin, "PUT", "/tenants/tc/quota", `{"max_apps":1,"max_replicas":50,"max_revisions":10,"max_cpu_millis":4000,"max_memory_mb":8192}`)
		require.Equal(t, 200, code, body)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() { api(t, f, admin, "POST", "/tenants/tc/apps", fmt.Sprintf(`{"name":"r%d","replicas":0}`, i)) })
		}
		wg.Wait()
		_, body = api(t, f, admin, "GET", "/tenants/tc/apps", "")
		assert.Equal(t, 1, strings.Count(body, `"tenant":"tc"`), "apps created under max_apps 1: %s", body)
	})

	t.Run("6 replica logs grow past their bound", func(t *testing.T) {
		code, body := api(t, f, admin, "POST", "/tenants/ta/apps", `{"name":"loud","replicas":1}`)
		require.Equal(t, 201, code, body)
		code, body = api(t, f, admin, "POST", "/tenants/ta/apps/loud/revisions", `{"command":["/bin/sh","-c","yes | head -c 300000000; sleep 60"]}`)
		require.Equal(t, 202, code, body)
		most := int64(0)
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			var total int64
			dirs, _ := filepath.Glob(filepath.Join(f.DataDir, "replicas", "ta.loud.*"))
			for _, d := range dirs {
				for _, name := range []string{"log", "log.1"} {
					if st, err := os.Stat(filepath.Join(d, name)); err == nil {
						total += st.Size()
					}
				}
			}
			most = max(most, total)
			time.Sleep(5 * time.Millisecond) // sampling interval
		}
		assert.LessOrEqual(t, most, int64(2<<20), "a replica's log on disk (bound: 1 MiB kept, 2 MiB at most)")
	})

	t.Run("7 public metrics name every tenant", func(t *testing.T) {
		req, err := newRequest("GET", f.APIURL()+"/metrics", "", "")
		require.NoError(t, err)
		assert.Equal(t, 401, do(t, req))
	})

	t.Run("8 existence oracle and slow bad headers", func(t *testing.T) {
		req, err := newRequest("GET", "http://"+f.Gateway+"/s/tb/nope/00000000/aaaaaa/", "", "")
		require.NoError(t, err)
		assert.Equal(t, 410, do(t, req), "an unknown app answers like a gone one")
		c, err := net.Dial("tcp", f.Addr)
		require.NoError(t, err)
		defer c.Close()
		start := time.Now()
		_, err = c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nThis is not a header\r\n\r\n"))
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(15*time.Second)))
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		assert.True(t, strings.HasPrefix(string(buf[:n]), "HTTP/1.1 400"), "answer %q", buf[:n])
		assert.Less(t, time.Since(start), 5*time.Second, "answered at once, not after the 10 s read timeout")
	})
}

func revSummary(body string) string {
	var out struct {
		Revisions []struct {
			ID, State, Reason string
			Generation        int
		}
	}
	_ = json.Unmarshal([]byte(body), &out)
	var b strings.Builder
	for _, r := range out.Revisions {
		fmt.Fprintf(&b, "%d %s %s (%s); ", r.Generation, r.ID, r.State, r.Reason)
	}
	return b.String()
}
