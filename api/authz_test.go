package api_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/discovery-platform/discovery/api"
	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/authz"
	"github.com/discovery-platform/discovery/endpoint"
	"github.com/discovery-platform/discovery/internal/etcdtest"
	"github.com/discovery-platform/discovery/tenants"
)

// instance is one platform API over a shared etcd, with its own authorizer
// watching the policy (as a separate platform process would).
type instance struct {
	srv    *api.Server
	az     *authz.Authorizer
	tokens *authz.Tokens
	cli    *clientv3.Client
}

func newInstance(t testing.TB, endpoint string) *instance {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	key, err := authz.LoadOrCreateKey(ctx, cli, "/t")
	require.NoError(t, err)
	tokens := authz.NewEdDSATokens(key)
	az, err := authz.NewAuthorizer(cli, "/t", tokens, nil)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { az.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	ts := tenants.NewStore(cli, "/t", "discovery-")
	svc := &apps.Service{Store: apps.NewStore(cli, "/t"), Tenants: ts}
	srv := api.New(api.Config{Apps: svc, Tenants: ts, Tokens: tokens, Auth: az, Authz: az,
		TenantOps: &apps.TenantService{Apps: svc, Tenants: ts, OnGone: az.DropTenant}})
	return &instance{srv: srv, az: az, tokens: tokens, cli: cli}
}

// authWorld is tenants a and b, an app1 in each, and a token per role of a.
type authWorld struct {
	t      testing.TB
	etcd   *etcdtest.Etcd
	inst   *instance
	tokens map[string]string // role -> token
}

func newAuthWorld(t testing.TB) *authWorld {
	e := etcdtest.Start(t)
	w := &authWorld{t: t, etcd: e, inst: newInstance(t, e.Endpoint), tokens: map[string]string{}}
	ctx := context.Background()
	ts := tenants.NewStore(e.Client, "/t", "discovery-")
	svc := &apps.Service{Store: apps.NewStore(e.Client, "/t"), Tenants: ts}
	for _, name := range []string{"a", "b"} {
		_, err := ts.Create(ctx, name, nil)
		require.NoError(t, err)
		_, err = svc.CreateApp(ctx, name, apps.AppSpec{Name: "app1", Replicas: ptr(0)})
		require.NoError(t, err)
	}
	require.NoError(t, w.inst.az.Grant("root", authz.RoleAdmin, authz.Platform))
	for _, role := range []string{authz.RoleOwner, authz.RoleDeployer, authz.RoleViewer} {
		require.NoError(t, w.inst.az.Grant(role+"-a", role, "a"))
	}
	for role, subject := range map[string]string{"admin": "root", "owner": "owner-a", "deployer": "deployer-a", "viewer": "viewer-a", "stranger": "nobody"} {
		tok, _, err := w.inst.tokens.Issue(subject, time.Hour)
		require.NoError(t, err)
		w.tokens[role] = tok
	}
	return w
}

func ptr[T any](v T) *T { return &v }

func (w *authWorld) call(inst *instance, method, path, body, token string) (int, string) {
	w.t.Helper()
	var r *strings.Reader
	if body != "" {
		r = strings.NewReader(body)
	} else {
		r = strings.NewReader("")
	}
	req, _ := http.NewRequest(method, path, r)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := inst.srv.App().Test(req, 10_000)
	require.NoError(w.t, err)
	defer resp.Body.Close()
	b := new(strings.Builder)
	_, _ = fmt.Fprint(b, "")
	buf := make([]byte, 4096)
	n, _ := resp.Body.Read(buf)
	return resp.StatusCode, string(buf[:n])
}

func (w *authWorld) keys() int64 {
	resp, err := w.etcd.Client.Get(context.Background(), "", clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(w.t, err)
	return resp.Count
}

// may is the role matrix, written from the design (not from the policy code):
// which role may do what within its own tenant.
var may = map[string]map[string]bool{
	"owner":    {"apps:read": true, "apps:write": true, "revisions:read": true, "revisions:write": true, "events:read": true, "logs:read": true, "tenant:read": true, "members:read": true, "members:write": true, "quota:read": true},
	"deployer": {"apps:read": true, "apps:write": true, "revisions:read": true, "revisions:write": true, "events:read": true, "logs:read": true, "tenant:read": true, "quota:read": true},
	"viewer":   {"apps:read": true, "revisions:read": true, "events:read": true, "logs:read": true, "tenant:read": true, "quota:read": true},
	"stranger": {},
}

var uniq atomic.Int64

func TestIsolationEveryRouteEveryRole(t *testing.T) {
	w := newAuthWorld(t)
	type route struct {
		method, path, body string
		perm               string // object:action; "admin" = platform admin only
		ok                 int    // status when allowed
	}
	routes := func() []route {
		n := uniq.Add(1)
		return []route{
			{"GET", "/api/v1/tenants/{t}", "", "tenant:read", 200},
			{"PATCH", "/api/v1/tenants/{t}", `{"quota":{"max_apps":30,"max_replicas":50,"max_revisions":10,"max_cpu_millis":4000,"max_memory_mb":8192}}`, "admin", 200},
			{"GET", "/api/v1/tenants/{t}/quota", "", "quota:read", 200},
			{"PUT", "/api/v1/tenants/{t}/quota", `{"max_apps":30,"max_replicas":50,"max_revisions":10,"max_cpu_millis":4000,"max_memory_mb":8192}`, "admin", 200},
			{"GET", "/api/v1/tenants/{t}/members", "", "members:read", 200},
			{"PUT", "/api/v1/tenants/{t}/members/zed", `{"role":"viewer"}`, "members:write", 200},
			{"DELETE", "/api/v1/tenants/{t}/members/ghost", "", "members:write", 404},
			{"GET", "/api/v1/tenants/{t}/apps", "", "apps:read", 200},
			{"POST", "/api/v1/tenants/{t}/apps", fmt.Sprintf(`{"name":"new%d","replicas":0}`, n), "apps:write", 201},
			{"GET", "/api/v1/tenants/{t}/apps/app1", "", "apps:read", 200},
			{"PATCH", "/api/v1/tenants/{t}/apps/app1", `{"replicas":0}`, "apps:write", 200},
			{"DELETE", "/api/v1/tenants/{t}/apps/ghost", "", "apps:write", 404},
			{"GET", "/api/v1/tenants/{t}/apps/app1/events", "", "events:read", 200},
			{"GET", "/api/v1/tenants/{t}/apps/app1/revisions", "", "revisions:read", 200},
			{"POST", "/api/v1/tenants/{t}/apps/app1/revisions", `{"command":["/bin/true"]}`, "revisions:write", 202},
			{"GET", "/api/v1/tenants/{t}/apps/app1/revisions/ffffffff", "", "revisions:read", 404},
			{"POST", "/api/v1/tenants/{t}/apps/app1/revisions/ffffffff/activate", "", "revisions:write", 404},
			{"POST", "/api/v1/tenants/{t}/apps/app1/revisions/ffffffff/retire", "", "revisions:write", 404},
			{"GET", "/api/v1/tenants/{t}/apps/app1/revisions/ffffffff/replicas/aaaaaa/logs", "", "logs:read", 404},
			{"POST", "/api/v1/tenants", fmt.Sprintf(`{"name":"t%d"}`, n), "admin", 201},
			{"DELETE", "/api/v1/tokens/0123abcd", "", "admin", 204},
		}
	}
	for _, role := range []string{"admin", "owner", "deployer", "viewer", "stranger", "none"} {
		for _, tenant := range []string{"a", "b"} {
			for _, r := range routes() {
				path := strings.ReplaceAll(r.path, "{t}", tenant)
				name := fmt.Sprintf("%s/%s %s", role, r.method, path)
				want := r.ok
				switch {
				case role == "none":
					want = http.StatusUnauthorized
				case role == "admin":
				case r.perm == "admin":
					want = http.StatusForbidden
				case tenant != "a" || !may[role][r.perm]:
					want = http.StatusForbidden
				}
				if !strings.Contains(r.path, "{t}") && tenant == "b" {
					continue // platform routes: once is enough
				}
				code, body := w.call(w.inst, r.method, path, r.body, w.tokens[role])
				assert.Equal(t, want, code, "%s: %s", name, body)
				if want >= 400 {
					assert.Contains(t, body, `"error":{"code":`, name)
				}
			}
		}
	}
	// An admin addressing a tenant that does not exist gets 404.
	code, _ := w.call(w.inst, "GET", "/api/v1/tenants/nope/apps", "", w.tokens["admin"])
	assert.Equal(t, 404, code)

	// Listing tenants: admin sees all, a member only its own, a stranger none.
	_, body := w.call(w.inst, "GET", "/api/v1/tenants", "", w.tokens["viewer"])
	assert.Contains(t, body, `"name":"a"`)
	assert.NotContains(t, body, `"name":"b"`)
	_, body = w.call(w.inst, "GET", "/api/v1/tenants", "", w.tokens["stranger"])
	assert.Equal(t, `{"tenants":[]}`, body)
}

func TestJWTAttacksAreRefusedAndChangeNothing(t *testing.T) {
	w := newAuthWorld(t)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	_ = pub
	key, err := authz.LoadOrCreateKey(context.Background(), w.inst.cli, "/t")
	require.NoError(t, err)
	platformPub := key.Public().(ed25519.PublicKey)
	claims := func(mod func(*jwt.RegisteredClaims)) jwt.RegisteredClaims {
		c := jwt.RegisteredClaims{Issuer: authz.Issuer, Subject: "root", ID: "x1", IssuedAt: jwt.NewNumericDate(time.Now()),
			ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	sign := func(m jwt.SigningMethod, k any, c jwt.RegisteredClaims) string {
		s, err := jwt.NewWithClaims(m, c).SignedString(k)
		require.NoError(t, err)
		return s
	}
	none := sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil))
	revoked, rc, err := w.inst.tokens.Issue("root", time.Hour)
	require.NoError(t, err)
	require.NoError(t, w.inst.az.RevokeToken(context.Background(), rc.ID, rc.ExpiresAt.Time))
	attacks := map[string]string{
		"alg none":                        none,
		"HS256 keyed with the public key": sign(jwt.SigningMethodHS256, []byte(platformPub), claims(nil)),
		"expired":                         sign(jwt.SigningMethodEdDSA, key, claims(func(c *jwt.RegisteredClaims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute)) })),
		"not yet valid":                   sign(jwt.SigningMethodEdDSA, key, claims(func(c *jwt.RegisteredClaims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour)) })),
		"no expiry":                       sign(jwt.SigningMethodEdDSA, key, claims(func(c *jwt.RegisteredClaims) { c.ExpiresAt = nil })),
		"wrong signature":                 sign(jwt.SigningMethodEdDSA, priv, claims(nil)),
		"wrong issuer":                    sign(jwt.SigningMethodEdDSA, key, claims(func(c *jwt.RegisteredClaims) { c.Issuer = "evil" })),
		"revoked id":                      revoked,
		"garbage":                         "not.a.jwt",
		"empty":                           "",
	}
	require.Eventually(t, func() bool {
		_, err := w.inst.tokens.Verify(revoked)
		return err != nil
	}, 5*time.Second, 10*time.Millisecond, "revocation reaches the watch")
	before := w.keys()
	for name, tok := range attacks {
		for _, req := range [][3]string{
			{"POST", "/api/v1/tenants/a/apps", `{"name":"pwned"}`},
			{"POST", "/api/v1/tenants", `{"name":"pwned"}`},
			{"GET", "/api/v1/tenants/a/apps", ``},
		} {
			code, body := w.call(w.inst, req[0], req[1], req[2], tok)
			assert.Equal(t, http.StatusUnauthorized, code, "%s: %s %s: %s", name, req[0], req[1], body)
		}
	}
	assert.Equal(t, before, w.keys(), "no refused request wrote anything")
	code, _ := w.call(w.inst, "GET", "/api/v1/tenants/a/apps", "", w.tokens["admin"])
	assert.Equal(t, 200, code, "the real token still works")
}

func TestRoleChangeTakesEffectLiveOnAnotherInstance(t *testing.T) {
	w := newAuthWorld(t)
	other := newInstance(t, w.etcd.Endpoint) // a second platform instance on the same etcd
	tok, _, err := w.inst.tokens.Issue("carol", time.Hour)
	require.NoError(t, err)
	status := func(inst *instance) int {
		code, _ := w.call(inst, "POST", "/api/v1/tenants/a/apps/app1/revisions", `{"command":["/bin/true"]}`, tok)
		return code
	}
	assert.Equal(t, 403, status(other))

	// The owner grants carol deployer on instance 1; instance 2 follows, same token.
	code, body := w.call(w.inst, "PUT", "/api/v1/tenants/a/members/carol", `{"role":"deployer"}`, w.tokens["owner"])
	require.Equal(t, 200, code, body)
	start := time.Now()
	require.Eventually(t, func() bool { return status(other) == 202 }, time.Second, 10*time.Millisecond, "grant visible on the other instance within a second")
	t.Logf("grant took effect on the other instance after %s", time.Since(start).Round(time.Millisecond))

	// Revoked on instance 2; instance 1 refuses within a second.
	code, _ = w.call(other, "DELETE", "/api/v1/tenants/a/members/carol", "", w.tokens["admin"])
	require.Equal(t, 204, code)
	require.Eventually(t, func() bool { return status(w.inst) == 403 }, time.Second, 10*time.Millisecond, "revocation visible within a second")
}

func TestQuotaRefusesWithTheLimitAndHalfCreatesNothing(t *testing.T) {
	w := newAuthWorld(t)
	admin := w.tokens["admin"]
	code, body := w.call(w.inst, "PUT", "/api/v1/tenants/a/quota", `{"max_apps":2,"max_replicas":3,"max_revisions":5,"max_cpu_millis":500,"max_memory_mb":256}`, admin)
	require.Equal(t, 200, code, body)

	code, body = w.call(w.inst, "POST", "/api/v1/tenants/a/apps", `{"name":"second","replicas":2}`, admin)
	require.Equal(t, 201, code, body)
	before := w.keys()
	code, body = w.call(w.inst, "POST", "/api/v1/tenants/a/apps", `{"name":"third"}`, admin)
	assert.Equal(t, 403, code)
	assert.Contains(t, body, "quota_exceeded")
	assert.Contains(t, body, "max_apps is 2 and the tenant has 2 apps")
	assert.Equal(t, before, w.keys(), "nothing half-created")

	// Replicas: 2 recorded replicas of another revision, and second wants 2 more.
	ctx := context.Background()
	store := apps.NewStore(w.etcd.Client, "/t")
	for _, id := range []string{"r1", "r2"} {
		_, err := store.PutReplica(ctx, apps.Replica{ID: id, Tenant: "a", App: "app1", Revision: "00000000", State: apps.ReplicaReady}, nil)
		require.NoError(t, err)
	}
	before = w.keys()
	code, body = w.call(w.inst, "POST", "/api/v1/tenants/a/apps/second/revisions", `{"command":["/bin/true"]}`, admin)
	assert.Equal(t, 403, code)
	assert.Contains(t, body, "max_replicas is 3; the tenant runs 2 and this needs 2 more")
	code, body = w.call(w.inst, "PATCH", "/api/v1/tenants/a/apps/app1", `{"replicas":5}`, admin)
	assert.Equal(t, 403, code, body)
	assert.Contains(t, body, "max_replicas")

	// An oversized replica.
	code, body = w.call(w.inst, "POST", "/api/v1/tenants/a/apps/app1/revisions", `{"command":["/bin/true"],"resources":{"cpu_millis":1000}}`, admin)
	assert.Equal(t, 403, code)
	assert.Contains(t, body, "max_cpu_millis per replica is 500, the revision asks for 1000")
	code, body = w.call(w.inst, "POST", "/api/v1/tenants/a/apps/app1/revisions", `{"command":["/bin/true"],"resources":{"memory_mb":1024}}`, admin)
	assert.Equal(t, 403, code)
	assert.Contains(t, body, "max_memory_mb")
	assert.Equal(t, before, w.keys(), "nothing half-created")

	// Tenant b is not affected by a's quota.
	code, _ = w.call(w.inst, "POST", "/api/v1/tenants/b/apps", `{"name":"third"}`, admin)
	assert.Equal(t, 201, code)
}

func TestTokensAndTenantDeletion(t *testing.T) {
	w := newAuthWorld(t)
	// An owner issues for a member of its tenant, not for anyone else.
	code, body := w.call(w.inst, "POST", "/api/v1/tokens", `{"subject":"viewer-a","tenant":"a","ttl":"1h"}`, w.tokens["owner"])
	require.Equal(t, 201, code, body)
	assert.Contains(t, body, `"subject":"viewer-a"`)
	code, _ = w.call(w.inst, "POST", "/api/v1/tokens", `{"subject":"root","tenant":"a"}`, w.tokens["owner"])
	assert.Equal(t, 403, code)
	code, _ = w.call(w.inst, "POST", "/api/v1/tokens", `{"subject":"viewer-a","tenant":"b"}`, w.tokens["owner"])
	assert.Equal(t, 403, code)
	code, _ = w.call(w.inst, "POST", "/api/v1/tokens", `{"subject":"x"}`, w.tokens["deployer"])
	assert.Equal(t, 403, code)

	// Deleting a tenant retires its apps first and says so.
	code, body = w.call(w.inst, "DELETE", "/api/v1/tenants/b", "", w.tokens["admin"])
	require.Equal(t, 202, code, body)
	assert.Contains(t, body, "retiring 1 apps first")
	code, _ = w.call(w.inst, "POST", "/api/v1/tenants/b/apps", `{"name":"late"}`, w.tokens["admin"])
	assert.Equal(t, 409, code, "a deleting tenant takes no new app")
	code, _ = w.call(w.inst, "DELETE", "/api/v1/tenants/default", "", w.tokens["admin"])
	assert.Contains(t, []int{404, 409}, code)
}

func TestGetEndpointIsRateLimitedPerClient(t *testing.T) {
	e := etcdtest.Start(t)
	ts := tenants.NewStore(e.Client, "/t", "discovery-")
	srv := api.New(api.Config{Apps: &apps.Service{Store: apps.NewStore(e.Client, "/t"), Tenants: ts}, Tenants: ts,
		Endpoints: noEndpoints{}, Limiter: api.NewLimiter(1, 3)})
	get := func(ip string) (int, string) {
		req, _ := http.NewRequest("GET", "/api/v1/tenants/default/apps/arena/endpoint", nil)
		req.Header.Set("X-Forwarded-For", ip)
		req.RemoteAddr = ip + ":1234"
		resp, err := srv.App().Test(req, 5000)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	for i := 0; i < 3; i++ {
		code, _ := get("10.0.0.1")
		assert.Equal(t, 404, code, "within the burst the call goes through (to a 404: no such app)")
	}
	code, retry := get("10.0.0.1")
	assert.Equal(t, 429, code)
	assert.Equal(t, "1", retry)
}

type noEndpoints struct{}

func (noEndpoints) Get(_ context.Context, _, tenant, app string) (endpoint.Endpoint, error) {
	return endpoint.Endpoint{}, fmt.Errorf("app %s/%s: %w", tenant, app, apps.ErrNotFound)
}

func TestLeaseTokenOnlyOpensItsOwnRevision(t *testing.T) {
	w := newAuthWorld(t)
	tok := w.inst.tokens.LeaseToken("a", "app1", "00000000")
	assert.True(t, w.inst.tokens.CheckLeaseToken("a", "app1", "00000000", tok))
	assert.False(t, w.inst.tokens.CheckLeaseToken("b", "app1", "00000000", tok))
	assert.False(t, w.inst.tokens.CheckLeaseToken("a", "app1", "11111111", tok))
	// Without either credential, lease creation is refused.
	code, _ := w.call(w.inst, "POST", "/api/v1/tenants/a/apps/app1/revisions/00000000/leases", `{"ttl":"10s"}`, "")
	assert.Equal(t, 401, code)
}
