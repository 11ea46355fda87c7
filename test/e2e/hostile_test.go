package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/internal/testkit/proctest"
)

// TestSlowClientIsCutWhileOthersPlayOn: a client that trickles its request
// headers (slowloris) is cut by the read-header timeout on the gateway and
// the API; a player's session next to it is unaffected.
func TestSlowClientIsCutWhileOthersPlayOn(t *testing.T) {
	f := New(t)
	f.Args = []string{"--read-header-timeout", "1s"}
	f.Start()
	require.Equal(t, 201, f.Call("POST", "/apps", map[string]any{"name": "calm", "replicas": 1, "health_path": "/healthz"}, nil))
	rev := f.Deploy("calm", nil)
	f.WaitState("calm", rev, "active", 60*time.Second)
	player, err := open(t, f, "calm")
	require.NoError(t, err)

	for _, addr := range []string{f.Gateway, f.Addr} {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		_, err = c.Write([]byte("GET /s/default/calm/ HTTP/1.1\r\nHost: x\r\nX-Slow: "))
		require.NoError(t, err)
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, _ = io.ReadAll(c) // returns when the server closes the connection
		took := time.Since(start)
		_ = c.Close()
		assert.Less(t, took, 10*time.Second, "%s cut the slow client by its 1 s header timeout (took %s)", addr, took)
	}
	select {
	case err := <-player.done:
		t.Fatalf("the player's session was hurt: %v", err)
	default:
	}
	require.NoError(t, player.close())
}

// TestAHostileReplicaReachesNothing: finding 2. A tenant's deployer runs a
// replica (an image of the admin's catalog) that tries to read the admin
// token, the data dir, the etcd socket, every process's environment (the
// platform's and another tenant's replica's), the platform's own environment
// and another tenant's replica log, and writes whatever it got to its output.
// Nothing leaks, it runs as its tenant's own unprivileged uid, and the
// platform's state is unchanged.
func TestAHostileReplicaReachesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this story needs the platform to run as root, as it does in CI: replicas then run as their tenant's uid")
	}
	f := New(t)
	canary := "canary-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	f.Env = []string{"DISCOVERY_E2E_CANARY=" + canary}
	f.Start()
	admin := f.Token
	for _, name := range []string{"victim", "hostile"} {
		require.Equal(t, 201, f.CallAs(admin, "POST", "/api/v1/tenants", map[string]any{"name": name}, nil))
	}
	require.Equal(t, 200, f.CallAs(admin, "PUT", "/api/v1/images/test/probe:1", map[string]any{"command": []string{f.App}}, nil))

	// The victim: a replica whose log and environment hold its secret.
	secret := "secret-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	require.Equal(t, 201, f.CallAs(admin, "POST", "/api/v1/tenants/victim/apps", map[string]any{"name": "vault", "health_path": "/healthz"}, nil))
	var vrev Revision
	require.Equal(t, 202, f.CallAs(admin, "POST", "/api/v1/tenants/victim/apps/vault/revisions",
		map[string]any{"image": "test/probe:1", "env": map[string]string{"SECRET": secret, "PRINT_ENV": "SECRET"}}, &vrev))
	var victim Revision
	f.Eventually("the victim runs", 60*time.Second, func() bool {
		f.CallAs(admin, "GET", "/api/v1/tenants/victim/apps/vault/revisions/"+vrev.ID, nil, &victim)
		return victim.State == "active"
	})
	victimRep := victim.Replicas[0].ID
	victimDir := filepath.Join(f.DataDir, "replicas", strings.Join([]string{"victim", "vault", vrev.ID, victimRep}, "."))
	vproc := proctest.Find(f.Marker)
	var victimEnv string
	for pid, p := range vproc {
		if p.Replica == victimRep {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
			require.NoError(t, err)
			victimEnv = string(b)
		}
	}
	require.Contains(t, victimEnv, "DISCOVERY_LEASE_TOKEN=", "the test (root) reads the victim's environment")
	leaseToken := strings.SplitN(strings.SplitN(victimEnv, "DISCOVERY_LEASE_TOKEN=", 2)[1], "\x00", 2)[0]
	require.NotEmpty(t, leaseToken)

	// The hostile tenant's deployer, with a token bound to its tenant.
	require.Equal(t, 200, f.CallAs(admin, "PUT", "/api/v1/tenants/hostile/members/mallory", map[string]any{"role": "deployer"}, nil))
	var tok struct{ Token string }
	require.Equal(t, 201, f.CallAs(admin, "POST", "/api/v1/tokens", map[string]any{"subject": "mallory", "tenant": "hostile", "ttl": "1h"}, &tok))
	mallory := tok.Token
	state := func() string {
		var b strings.Builder
		for _, p := range []string{"/api/v1/tenants", "/api/v1/tenants/victim", "/api/v1/tenants/victim/quota", "/api/v1/tenants/victim/members",
			"/api/v1/tenants/victim/apps/vault", "/api/v1/tenants/victim/apps/vault/revisions", "/api/v1/tenants/victim/apps/vault/leases", "/api/v1/images"} {
			var out any
			require.Equal(t, 200, f.CallAs(admin, "GET", p, nil, &out), p)
			fmt.Fprintf(&b, "%s %v\n", p, scrubTimes(out))
		}
		return b.String()
	}
	before := state()

	require.Equal(t, 201, f.CallAs(mallory, "POST", "/api/v1/tenants/hostile/apps", map[string]any{"name": "probe", "health_path": "/healthz"}, nil))
	require.Equal(t, 403, f.CallAs(mallory, "POST", "/api/v1/tenants/hostile/apps/probe/revisions", map[string]any{"command": []string{"/bin/sh", "-c", "cat /etc/shadow"}}, nil),
		"a tenant deploys images of the catalog, not commands")
	files := []string{
		filepath.Join(f.DataDir, "admin.token"),
		filepath.Join(f.DataDir, "etcd.urls"),
		filepath.Join(f.DataDir, "etcd", "member", "snap", "db"),
		filepath.Join(f.DataDir, "run", "etcd.log"),
		filepath.Join(victimDir, "log"),
		filepath.Join(victimDir, "meta.json"),
		fmt.Sprintf("/proc/%d/environ", f.Process().PID()),
	}
	dirs := []string{f.DataDir, filepath.Join(f.DataDir, "replicas"), victimDir, filepath.Join(victimDir, "work"), filepath.Join(f.DataDir, "etcd"), filepath.Join(f.DataDir, "run")}
	var prev Revision
	require.Equal(t, 202, f.CallAs(mallory, "POST", "/api/v1/tenants/hostile/apps/probe/revisions", map[string]any{"image": "test/probe:1", "env": map[string]string{
		"PROBE": "1", "PROBE_FILES": strings.Join(files, ","), "PROBE_DIRS": strings.Join(dirs, ","),
		"PROBE_UNIX": filepath.Join(f.DataDir, "run", "etcd.sock"),
	}}, &prev))
	var probe Revision
	f.Eventually("the probe runs", 60*time.Second, func() bool {
		f.CallAs(mallory, "GET", "/api/v1/tenants/hostile/apps/probe/revisions/"+prev.ID, nil, &probe)
		return probe.State == "active"
	})
	var out string
	f.Eventually("the probe is done", 30*time.Second, func() bool {
		out = f.logsAs(mallory, "hostile", "probe", prev.ID, probe.Replicas[0].ID)
		return strings.Contains(out, "probe done")
	})
	t.Logf("what the hostile replica printed:\n%s", out)

	for _, what := range append(append([]string{}, files...), dirs...) {
		assert.Regexp(t, regexp.MustCompile(`probe (read|list) `+regexp.QuoteMeta(what)+`: denied`), out, "%s is out of reach", what)
	}
	assert.Contains(t, out, "connect unix "+filepath.Join(f.DataDir, "run", "etcd.sock")+": denied", "the etcd socket is out of reach")
	assert.Contains(t, out, "probe environ: read 0 of", "no other process's environment is readable")
	assert.NotContains(t, out, "probe uid=0 ", "the replica does not run as root")
	for name, s := range map[string]string{"the admin token": admin, "the victim's secret": secret, "the victim's lease capability": leaseToken,
		"the platform's environment": canary, "a private key": "PRIVATE KEY", "the signing key's etcd key": "signing-key"} {
		assert.NotContains(t, out, s, "%s leaked", name)
	}
	own := regexp.MustCompile(`probe own environment: (.*)`).FindStringSubmatch(out)
	require.Len(t, own, 2)
	for _, want := range []string{"PROBE=1", "PORT=", "HOST=", "DISCOVERY_TENANT=hostile", "DISCOVERY_API="} {
		assert.Contains(t, own[1], want)
	}
	assert.NotContains(t, own[1], "DISCOVERY_E2E_CANARY", "nothing of the platform's own environment")

	// The victim's log through the API is the victim's.
	assert.Contains(t, f.logsAs(admin, "victim", "vault", vrev.ID, victimRep), "env SECRET="+secret)
	code := f.CallAs(mallory, "GET", "/api/v1/tenants/victim/apps/vault/revisions/"+vrev.ID+"/replicas/"+victimRep+"/logs", nil, nil)
	assert.Equal(t, 403, code, "nor through the API")
	assert.Equal(t, before, state(), "the platform's state is unchanged")
	assert.Equal(t, 200, f.CallAs(admin, "GET", "/api/v1/tenants", nil, nil), "the admin token still works")
}

// scrubTimes drops the fields that move on their own (time left on leases,
// timestamps of nothing changed), so two snapshots of state compare.
func scrubTimes(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if k == "expires_in" {
				continue
			}
			out[k] = scrubTimes(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = scrubTimes(e)
		}
		return out
	}
	return v
}

// logsAs reads a replica's log through the API with token.
func (f *Framework) logsAs(token, tenant, app, rev, replica string) string {
	req, err := newRequest("GET", f.APIURL()+fmt.Sprintf("/api/v1/tenants/%s/apps/%s/revisions/%s/replicas/%s/logs", tenant, app, rev, replica), "", token)
	require.NoError(f.t, err)
	return doBody(f.t, req)
}
