package api_test

// The findings of the hostile-tenant review, one test each: every one of them
// passed as an attack on the platform before tokens were scoped, leases
// authorised and bounded, and quotas kept in the write's transaction.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/authz"
	"github.com/discovery-platform/discovery/tenants"
)

// TestAnOwnerCannotMakeItselfPlatformAdmin: finding 1. The owner of a names
// the platform admin a member of a and asks for the admin's token; or names
// the owner of b a member of a and mints a token for it. Neither token
// reaches beyond tenant a.
func TestAnOwnerCannotMakeItselfPlatformAdmin(t *testing.T) {
	w := newAuthWorld(t)
	owner := w.tokens["owner"]
	require.NoError(t, w.inst.az.Grant("bob", authz.RoleOwner, "b"))

	code, body := w.call(w.inst, "PUT", "/api/v1/tenants/a/members/root", `{"role":"viewer"}`, owner)
	require.Equal(t, 200, code, body)
	code, body = w.call(w.inst, "POST", "/api/v1/tokens", `{"subject":"root","tenant":"a","ttl":"1h"}`, owner)
	assert.Equal(t, 403, code, "no token for a platform admin from an owner: %s", body)
	code, body = w.call(w.inst, "POST", "/api/v1/tokens", `{"subject":"owner-a","ttl":"1h"}`, owner)
	assert.Equal(t, 403, code, "no unscoped token from an owner: %s", body)

	// bob owns b; as a member of a, a's owner mints him a token, bound to a.
	code, body = w.call(w.inst, "PUT", "/api/v1/tenants/a/members/bob", `{"role":"viewer"}`, owner)
	require.Equal(t, 200, code, body)
	code, body = w.call(w.inst, "POST", "/api/v1/tokens", `{"subject":"bob","tenant":"a","ttl":"1h"}`, owner)
	require.Equal(t, 201, code, body)
	var minted struct{ Token, Tenant string }
	require.NoError(t, json.Unmarshal([]byte(body), &minted))
	assert.Equal(t, "a", minted.Tenant)
	before := w.storeRevision()
	for _, r := range [][3]string{
		{"PUT", "/api/v1/tenants/b/quota", `{"max_apps":100}`},
		{"GET", "/api/v1/tenants/b/apps", ``},
		{"POST", "/api/v1/tenants/b/apps", `{"name":"x"}`},
		{"PUT", "/api/v1/tenants/b/members/mallory", `{"role":"owner"}`},
		{"POST", "/api/v1/tenants", `{"name":"evil"}`},
	} {
		code, body := w.call(w.inst, r[0], r[1], r[2], minted.Token)
		assert.Equal(t, 403, code, "%s %s with a token bound to a: %s", r[0], r[1], body)
	}
	assert.Equal(t, before, w.storeRevision(), "nothing changed")
	code, _ = w.call(w.inst, "GET", "/api/v1/tenants/a/apps", "", minted.Token)
	assert.Equal(t, 200, code, "in a it is bob's role there: viewer")
	code, _ = w.call(w.inst, "POST", "/api/v1/tenants/a/apps", `{"name":"y"}`, minted.Token)
	assert.Equal(t, 403, code, "and no more than viewer")

	// Only tenant roles can be granted, and only by an owner.
	code, _ = w.call(w.inst, "PUT", "/api/v1/tenants/a/members/mallory", `{"role":"admin"}`, owner)
	assert.Equal(t, 400, code)
	code, _ = w.call(w.inst, "PUT", "/api/v1/tenants/a/members/mallory", `{"role":"owner"}`, w.tokens["deployer"])
	assert.Equal(t, 403, code)
}

// leaseOn posts a lease request on tenant's app1 revision with headers.
func (w *authWorld) leaseOn(tenant, body string, headers map[string]string) (int, string) {
	return w.callWith(w.inst, "POST", fmt.Sprintf("/api/v1/tenants/%s/apps/app1/revisions/%s/leases", tenant, w.revs[tenant]), body, headers)
}

// TestLeasesNeedARightInTheRevisionsTenant: finding 3. Creating an app-held
// lease is authorised like any write; a revision holds at most its tenant's
// max_leases_per_revision; the tenant's owners see and release them.
func TestLeasesNeedARightInTheRevisionsTenant(t *testing.T) {
	w := newAuthWorld(t)
	auth := func(caller string) map[string]string {
		return map[string]string{"Authorization": bearer(w.tokens[caller])}
	}
	before := w.storeRevision()
	code, body := w.leaseOn("b", `{"ttl":"1h"}`, auth("viewer"))
	assert.Equal(t, 403, code, "a viewer of a holds nothing of b: %s", body)
	code, _ = w.leaseOn("b", `{"ttl":"1h"}`, auth("deployer"))
	assert.Equal(t, 403, code, "nor does a deployer of a")
	code, _ = w.leaseOn("a", `{"ttl":"1h"}`, auth("viewer"))
	assert.Equal(t, 403, code, "a viewer reads leases, it does not take them")
	code, _ = w.leaseOn("b", `{"ttl":"1h"}`, map[string]string{"X-Discovery-Lease-Token": w.inst.tokens.LeaseToken("a", "app1", w.revs["a"])})
	assert.Equal(t, 401, code, "a's replica capability opens a's revision only")
	assert.Equal(t, before, w.storeRevision(), "no lease was taken")

	// A member removed from the tenant takes none with the token it kept.
	require.NoError(t, w.inst.az.Grant("carol", authz.RoleDeployer, "a"))
	carol, _, err := w.inst.tokens.Issue("carol", "", time.Hour)
	require.NoError(t, err)
	code, _ = w.leaseOn("a", `{"ttl":"10s"}`, map[string]string{"Authorization": bearer(carol)})
	assert.Equal(t, 201, code)
	_, err = w.inst.az.RevokeRoles("carol", "a")
	require.NoError(t, err)
	code, _ = w.leaseOn("a", `{"ttl":"10s"}`, map[string]string{"Authorization": bearer(carol)})
	assert.Equal(t, 403, code, "a removed member's token takes no lease")

	// The bound per revision, from the tenant's quota.
	code, body = w.call(w.inst, "PUT", "/api/v1/tenants/a/quota", `{"max_leases_per_revision":5}`, w.tokens["admin"])
	require.Equal(t, 200, code, body)
	for i := 1; i < 5; i++ { // carol's is the first
		code, body := w.leaseOn("a", `{"ttl":"1h"}`, auth("deployer"))
		require.Equal(t, 201, code, body)
	}
	code, body = w.leaseOn("a", `{"ttl":"1h"}`, auth("deployer"))
	assert.Equal(t, 403, code)
	assert.Contains(t, body, "max_leases_per_revision is 5")
	code, _ = w.leaseOn("a", `{"ttl":"2h"}`, auth("deployer"))
	assert.Equal(t, 400, code, "a lease lives at most an hour between keep-alives")

	// The tenant's members see them; its owner releases one without its secret.
	var list struct{ Leases []apps.Lease }
	code, body = w.call(w.inst, "GET", "/api/v1/tenants/a/apps/app1/leases", "", w.tokens["viewer"])
	require.Equal(t, 200, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), &list))
	require.Len(t, list.Leases, 5)
	assert.Equal(t, "carol", list.Leases[0].Holder)
	for _, l := range list.Leases {
		assert.Empty(t, l.ID, "the holder's secret id is never listed")
	}
	code, _ = w.call(w.inst, "DELETE", "/api/v1/tenants/b/apps/app1/leases/"+list.Leases[0].Lease, "", w.tokens["owner"])
	assert.Equal(t, 403, code, "b's leases are b's owner's")
	code, _ = w.call(w.inst, "DELETE", "/api/v1/tenants/a/apps/app1/leases/"+list.Leases[0].Lease, "", w.tokens["owner"])
	assert.Equal(t, 204, code)
	code, body = w.call(w.inst, "GET", "/api/v1/tenants/a/apps/app1/leases", "", w.tokens["owner"])
	require.Equal(t, 200, code)
	assert.Equal(t, 4, strings.Count(body, `"lease":`))
	code, body = w.leaseOn("a", `{"ttl":"1h"}`, auth("deployer"))
	assert.Equal(t, 201, code, "a released lease frees its place: %s", body)
}

// TestATenantFillingItsStoreIsRefusedWhileOthersDeploy: finding 4. Deploys
// of near-maximal specs to an app that never starts: one revision stays in
// flight (each deploy supersedes the last), a spec past 64 KiB is refused,
// and once the tenant's revisions fill max_stored_bytes its deploys are
// refused naming the limit, while another tenant deploys as before.
func TestATenantFillingItsStoreIsRefusedWhileOthersDeploy(t *testing.T) {
	w := newAuthWorld(t)
	admin := w.tokens["admin"]
	code, body := w.call(w.inst, "PUT", "/api/v1/tenants/a/quota", `{"max_stored_bytes":204800}`, admin)
	require.Equal(t, 200, code, body)
	big := func(kb int) string { // env values are at most 32 KiB each
		return fmt.Sprintf(`{"image":"example/app:1","env":{"FILL1":"%s","FILL2":"%s"}}`, strings.Repeat("x", kb<<9), strings.Repeat("y", kb<<9))
	}
	code, body = w.call(w.inst, "POST", "/api/v1/tenants/a/apps/app1/revisions", big(65), w.tokens["deployer"])
	assert.Equal(t, 400, code, "a spec past 64 KiB: %s", body)
	assert.Contains(t, body, "at most 65536")

	accepted := 0
	for i := 0; i < 10; i++ {
		code, body = w.call(w.inst, "POST", "/api/v1/tenants/a/apps/app1/revisions", big(60), w.tokens["deployer"])
		if code != 202 {
			break
		}
		accepted++
		code, body := w.call(w.inst, "POST", "/api/v1/tenants/b/apps/app1/revisions", `{"image":"example/app:1"}`, admin)
		require.Equal(t, 202, code, body)
	}
	assert.Equal(t, 403, code, body)
	assert.Contains(t, body, "quota_exceeded")
	assert.Contains(t, body, "max_stored_bytes is 204800")
	assert.Equal(t, 3, accepted, "200 KiB holds three 60 KiB specs (the first revision's few bytes besides)")
	code, body = w.call(w.inst, "POST", "/api/v1/tenants/b/apps/app1/revisions", `{"image":"example/app:1"}`, admin)
	assert.Equal(t, 202, code, "b deploys while a is full: %s", body)

	var revs struct{ Revisions []apps.Revision }
	code, body = w.call(w.inst, "GET", "/api/v1/tenants/a/apps/app1/revisions", "", admin)
	require.Equal(t, 200, code)
	require.NoError(t, json.Unmarshal([]byte(body), &revs))
	inFlight := 0
	for _, r := range revs.Revisions {
		if r.InFlight() {
			inFlight++
		}
	}
	assert.Equal(t, 1, inFlight, "at most one revision in flight per app")

	var q struct {
		Usage apps.Usage `json:"usage"`
	}
	code, body = w.call(w.inst, "GET", "/api/v1/tenants/a/quota", "", w.tokens["viewer"])
	require.Equal(t, 200, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), &q))
	assert.LessOrEqual(t, q.Usage.Bytes, int64(204800))
	assert.Greater(t, q.Usage.Bytes, int64(3*60<<10))
}

// TestQuotasHoldUnderConcurrentWrites: finding 5. Fifty concurrent creates
// against max_apps, fifty concurrent deploys against max_stored_bytes and
// fifty concurrent replica records against max_replicas each end exactly at
// the limit: the check and the write are one transaction.
func TestQuotasHoldUnderConcurrentWrites(t *testing.T) {
	w := newAuthWorld(t)
	admin := w.tokens["admin"]
	const spec = 10 << 10
	code, body := w.call(w.inst, "PUT", "/api/v1/tenants/a/quota", fmt.Sprintf(`{"max_apps":10,"max_replicas":7,"max_stored_bytes":%d}`, 6*(spec+100)), admin)
	require.Equal(t, 200, code, body)

	parallel := func(n int, f func(i int) int) map[int]int {
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				c := f(i)
				mu.Lock()
				codes[c]++
				mu.Unlock()
			})
		}
		wg.Wait()
		return codes
	}
	codes := parallel(50, func(i int) int {
		code, _ := w.call(w.inst, "POST", "/api/v1/tenants/a/apps", fmt.Sprintf(`{"name":"c%d","replicas":0}`, i), admin)
		return code
	})
	assert.Equal(t, map[int]int{201: 9, 403: 41}, codes, "app1 and nine more make max_apps 10")
	apps1 := apps.NewStore(w.etcd.Client, "/t")
	list, err := apps1.ListApps(context.Background(), "a")
	require.NoError(t, err)
	assert.Len(t, list, 10)

	body = fmt.Sprintf(`{"image":"example/app:1","env":{"FILL":"%s"}}`, strings.Repeat("x", spec))
	codes = parallel(50, func(i int) int {
		code, _ := w.call(w.inst, "POST", fmt.Sprintf("/api/v1/tenants/a/apps/%s/revisions", list[i%len(list)].Name), body, admin)
		return code
	})
	u, err := apps1.Usage(context.Background(), "a")
	require.NoError(t, err)
	assert.Equal(t, map[int]int{202: 6, 403: 44}, codes, "six specs fit in max_stored_bytes")
	assert.LessOrEqual(t, u.Bytes, int64(6*(spec+100)))

	ctx := context.Background()
	q, err := tenants.NewStore(w.etcd.Client, "/t", "discovery-").Quota(ctx, "a")
	require.NoError(t, err)
	made := make(chan error, 50)
	for i := range 50 {
		go func() {
			_, err := apps1.CreateReplica(ctx, apps.Replica{ID: fmt.Sprintf("r%02d", i), Tenant: "a", App: "app1", Revision: w.revs["a"],
				State: apps.ReplicaStarting}, nil, apps.ReplicaCheck(q))
			made <- err
		}()
	}
	ok := 0
	for range 50 {
		if err := <-made; err == nil {
			ok++
		} else {
			require.ErrorIs(t, err, tenants.ErrQuotaExceeded)
		}
	}
	assert.Equal(t, 7, ok, "exactly max_replicas records")
	u, err = apps1.Usage(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 7, u.Replicas)
}

// TestMetricsNeedAnAdmin: finding 7. The API's /metrics names every tenant
// and app: a platform admin reads it, nobody else.
func TestMetricsNeedAnAdmin(t *testing.T) {
	w := newAuthWorld(t)
	for caller, want := range map[string]int{"none": 401, "viewer": 403, "owner-scoped": 403, "admin-scoped-a": 403, "admin": 200} {
		code, body := w.callWith(w.inst, "GET", "/metrics", "", map[string]string{"Authorization": bearer(w.tokens[caller])})
		assert.Equal(t, want, code, "%s: %s", caller, body)
	}
}

// TestMalformedHeaderIsRefusedAtOnce: finding 8. A request whose header line
// cannot be parsed gets 400 at once, not after the read timeout.
func TestMalformedHeaderIsRefusedAtOnce(t *testing.T) {
	w := newAuthWorld(t)
	base := w.inst.url(t)
	for _, raw := range []string{
		"GET /healthz HTTP/1.1\r\nHost: x\r\nThis is not a header\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: x\r\n: no name\r\n\r\n",
		"NOT A REQUEST LINE\r\n\r\n",
	} {
		status, took := rawRequest(t, strings.TrimPrefix(base, "http://"), raw)
		assert.Equal(t, http.StatusBadRequest, status, "%q", raw)
		assert.Less(t, took, 5*time.Second, "%q answered within the read timeout (10 s), not after it", raw)
	}
}

// rawRequest writes raw on a new connection and returns the answer's status
// and how long it took.
func rawRequest(t *testing.T, addr, raw string) (int, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	start := time.Now()
	_, err = c.Write([]byte(raw))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(15*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, time.Since(start)
	}
	resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}
