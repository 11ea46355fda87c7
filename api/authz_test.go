package api_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
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
	"github.com/discovery-platform/discovery/images"
	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
	"github.com/discovery-platform/discovery/tenants"
)

// instance is one platform API over a shared etcd, with its own authorizer
// watching the policy (as a separate platform process would).
type instance struct {
	srv    *api.Server
	az     *authz.Authorizer
	tokens *authz.Tokens
	cli    *clientv3.Client
	once   sync.Once
	base   string
	tb     testing.TB // the test that owns the instance (its cleanup stops the server)
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
	az.Trust = ts
	catalog := images.NewStore(cli, "/t")
	svc := &apps.Service{Store: apps.NewStore(cli, "/t"), Tenants: ts, Images: catalog, Commands: az}
	srv := api.New(api.Config{Apps: svc, Tenants: ts, Authz: az, Images: catalog,
		TenantOps: &apps.TenantService{Apps: svc, Tenants: ts, OnGone: az.DropTenant}})
	return &instance{srv: srv, az: az, tokens: tokens, cli: cli, tb: t}
}

// authWorld is tenants a and b, an app1 in each with an active revision, and
// a token per kind of caller.
type authWorld struct {
	t      testing.TB
	etcd   *etcdtest.Etcd
	inst   *instance
	tokens map[string]string // caller -> token
	revs   map[string]string // tenant -> active revision of app1
}

// callers of the matrix: who they are and their roles.
var callers = map[string]struct {
	subject, scope string
	roles          map[string]string // tenant -> role
	admin          bool
}{
	"admin":           {subject: "root", admin: true},
	"admin-scoped-a":  {subject: "root", scope: "a"},
	"owner":           {subject: "owner-a", roles: map[string]string{"a": "owner"}},
	"deployer":        {subject: "deployer-a", roles: map[string]string{"a": "deployer"}},
	"viewer":          {subject: "viewer-a", roles: map[string]string{"a": "viewer"}},
	"owner-scoped":    {subject: "owner-a", scope: "a", roles: map[string]string{"a": "owner"}},
	"deployer-scoped": {subject: "deployer-a", scope: "a", roles: map[string]string{"a": "deployer"}},
	// Owner of b, viewer of a, holding a token bound to a: in b it is nobody.
	"owner-b-scoped-a": {subject: "dual", scope: "a", roles: map[string]string{"a": "viewer", "b": "owner"}},
	"stranger":         {subject: "nobody"},
}

func newAuthWorld(t testing.TB) *authWorld {
	e := etcdtest.Start(t)
	w := &authWorld{t: t, etcd: e, inst: newInstance(t, e.Endpoint), tokens: map[string]string{}, revs: map[string]string{}}
	ctx := context.Background()
	ts := tenants.NewStore(e.Client, "/t", "discovery-")
	store := apps.NewStore(e.Client, "/t")
	svc := &apps.Service{Store: store, Tenants: ts}
	for _, name := range []string{"a", "b"} {
		_, err := ts.Create(ctx, name, nil)
		require.NoError(t, err)
		_, err = svc.CreateApp(ctx, name, apps.AppSpec{Name: "app1", Replicas: ptr(0)})
		require.NoError(t, err)
		w.revs[name] = activeRevision(t, store, name, "app1")
	}
	_, err := images.NewStore(e.Client, "/t").Put(ctx, images.Image{Ref: "example/app:1", Command: []string{"/bin/true"}})
	require.NoError(t, err)
	require.NoError(t, w.inst.az.Grant("root", authz.RoleAdmin, authz.Platform))
	for name, c := range callers {
		for tenant, role := range c.roles {
			require.NoError(t, w.inst.az.Grant(c.subject, role, tenant))
		}
		tok, _, err := w.inst.tokens.Issue(c.subject, c.scope, time.Hour)
		require.NoError(t, err)
		w.tokens[name] = tok
	}
	return w
}

// activeRevision deploys a revision of app and makes it active through the
// store's lifecycle transitions (no runtime here).
func activeRevision(t testing.TB, store *apps.Store, tenant, app string) string {
	ctx := context.Background()
	snap, err := store.Load(ctx, tenant, app)
	require.NoError(t, err)
	rev, err := store.CreateRevision(ctx, snap, apps.RevisionSpec{Command: []string{"/bin/true"}}, nil)
	require.NoError(t, err)
	out, err := store.Transition(ctx, apps.Change{Rev: rev, To: apps.Starting, Reason: "test"})
	require.NoError(t, err)
	_, err = store.Transition(ctx, apps.Change{Rev: out[0], To: apps.Active, Reason: "test"})
	require.NoError(t, err)
	return rev.ID
}

func ptr[T any](v T) *T { return &v }

// call sends a request to the instance in memory (app.Test) and reads the
// answer.
func (w *authWorld) call(inst *instance, method, path, body, token string) (int, string) {
	w.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := inst.srv.App().Test(req, 10_000)
	require.NoError(w.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func bearer(token string) string {
	if token == "" {
		return ""
	}
	return "Bearer " + token
}

// callWith sends a request to the instance over a real socket and reads the
// answer (for a stream that goes on, its status and whatever came within a
// moment).
func (w *authWorld) callWith(inst *instance, method, path, body string, headers map[string]string) (int, string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, inst.url(w.t)+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(w.t, err)
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp.StatusCode, ""
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b)
}

// url serves the instance on a loopback socket (once) and returns its base.
func (inst *instance) url(t testing.TB) string {
	inst.once.Do(func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		go func() { _ = inst.srv.App().Listener(ln) }()
		inst.tb.Cleanup(func() { _ = inst.srv.App().ShutdownWithTimeout(5 * time.Second) })
		inst.base = "http://" + ln.Addr().String()
	})
	return inst.base
}

func (w *authWorld) keys() int64 {
	resp, err := w.etcd.Client.Get(context.Background(), "", clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(w.t, err)
	return resp.Count
}

// storeRevision is etcd's revision: any write moves it.
func (w *authWorld) storeRevision() int64 {
	resp, err := w.etcd.Client.Get(context.Background(), "/none")
	require.NoError(w.t, err)
	return resp.Header.Revision
}

// may is the role matrix, written from the design (not from the policy code):
// which role may do what within its own tenant. Platform objects (tenants,
// tokens outside a tenant, images, metrics) are the platform admin's only.
var may = map[string]map[string]bool{
	"owner": {"apps:read": true, "apps:write": true, "revisions:read": true, "revisions:write": true, "events:read": true, "logs:read": true,
		"tenant:read": true, "members:read": true, "members:write": true, "quota:read": true, "tokens:write": true, "leases:read": true, "leases:write": true, "notices:read": true},
	"deployer": {"apps:read": true, "apps:write": true, "revisions:read": true, "revisions:write": true, "events:read": true, "logs:read": true,
		"tenant:read": true, "quota:read": true, "leases:read": true, "leases:write": true, "notices:read": true},
	"viewer": {"apps:read": true, "revisions:read": true, "events:read": true, "logs:read": true, "tenant:read": true, "quota:read": true, "leases:read": true,
		"notices:read": true},
	"": {},
}

// bodies are example bodies of routes that need one to get past decoding;
// {t} is the target tenant. A route missing here is called with {}.
var bodies = map[string]string{
	"POST /api/v1/tenants":                                         `{"name":"t{n}"}`,
	"POST /api/v1/tokens":                                          `{"subject":"viewer-a","tenant":"{t}","ttl":"1h"}`,
	"PUT /api/v1/images/+":                                         `{"command":["/bin/true"]}`,
	"PATCH /api/v1/tenants/:tenant":                                `{"quota":{"max_apps":30}}`,
	"PUT /api/v1/tenants/:tenant/quota":                            `{"max_apps":30}`,
	"PUT /api/v1/tenants/:tenant/members/:subject":                 `{"role":"viewer"}`,
	"POST /api/v1/tenants/:tenant/apps":                            `{"name":"new{n}","replicas":0}`,
	"PATCH /api/v1/tenants/:tenant/apps/:app":                      `{"replicas":0}`,
	"POST /api/v1/tenants/:tenant/apps/:app/revisions":             `{"image":"example/app:1"}`,
	"POST /api/v1/tenants/:tenant/apps/:app/revisions/:rev/leases": `{"ttl":"10s"}`,
}

var uniq atomic.Int64

// fill turns a route's path into a request path for target tenant t.
func (w *authWorld) fill(t *testing.T, path, tenant string) string {
	var out []string
	for _, part := range strings.Split(path, "/") {
		switch part {
		case ":tenant":
			part = tenant
		case ":app":
			part = "app1"
		case ":rev":
			part = w.revs[tenant]
		case ":replica":
			part = "aaaaaa"
		case ":subject":
			part = "zed"
		case ":id", ":lease":
			part = "0123abcd"
		case "+":
			part = "example/app:1"
		default:
			if strings.HasPrefix(part, ":") || strings.ContainsAny(part, "*+?") {
				t.Fatalf("the matrix does not know how to fill %s in %s: teach fill", part, path)
			}
		}
		out = append(out, part)
	}
	return strings.Join(out, "/")
}

// TestIsolationEveryRouteEveryRole walks the router's own route list: every
// route, every kind of caller, own and other tenant. A caller the design does
// not allow gets 401 or 403 and changes nothing; one it allows is never
// refused. A new route is checked without editing this test.
func TestIsolationEveryRouteEveryRole(t *testing.T) {
	w := newAuthWorld(t)
	capA := w.inst.tokens.LeaseToken("a", "app1", w.revs["a"])

	// Every route the server registered goes through Routes (and so guard).
	listed := map[string]bool{}
	for _, r := range w.inst.srv.Routes() {
		listed[r.Method+" "+r.Path] = true
	}
	for _, r := range w.inst.srv.App().GetRoutes(true) {
		if r.Method != "HEAD" {
			assert.True(t, listed[r.Method+" "+r.Path], "%s %s is served but not in Routes(): it would bypass the guard", r.Method, r.Path)
		}
	}

	names := []string{"none", "capability-a"}
	for name := range callers {
		names = append(names, name)
	}
	sort.Strings(names)
	checked := 0
	for _, r := range w.inst.srv.Routes() {
		for _, target := range []string{"a", "b"} {
			if !strings.Contains(r.Path, ":tenant") && !r.Access.BodyTenant && target == "b" {
				continue // platform routes: once
			}
			for _, name := range names {
				path := w.fill(t, r.Path, target)
				body := bodies[r.Method+" "+r.Path]
				if body == "" && r.Method != "GET" && r.Method != "DELETE" {
					body = "{}"
				}
				body = strings.ReplaceAll(strings.ReplaceAll(body, "{t}", target), "{n}", fmt.Sprint(uniq.Add(1)))
				headers := map[string]string{}
				switch name {
				case "none":
				case "capability-a":
					headers["X-Discovery-Lease-Token"] = capA
				default:
					headers["Authorization"] = bearer(w.tokens[name])
				}
				want := expect(r, name, target)
				before := w.storeRevision()
				code, resp := w.callWith(w.inst, r.Method, path, body, headers)
				label := fmt.Sprintf("%s %s as %s (target %s): %d %s", r.Method, path, name, target, code, resp)
				switch want {
				case allowed:
					assert.NotContains(t, []int{401, 403}, code, label)
				case unauthenticated:
					assert.Equal(t, 401, code, label)
				case forbidden:
					assert.Equal(t, 403, code, label)
				}
				if want != allowed {
					assert.Contains(t, resp, `"error":{"code":`, label)
					assert.Equal(t, before, w.storeRevision(), "a refused call wrote nothing: %s", label)
				}
				checked++
			}
		}
	}
	t.Logf("%d routes, %d calls checked", len(w.inst.srv.Routes()), checked)

	// Listing tenants: admin sees all, a member only its own, a stranger none,
	// a token scoped to a only a.
	_, body := w.call(w.inst, "GET", "/api/v1/tenants", "", w.tokens["viewer"])
	assert.Contains(t, body, `"name":"a"`)
	assert.NotContains(t, body, `"name":"b"`)
	_, body = w.call(w.inst, "GET", "/api/v1/tenants", "", w.tokens["stranger"])
	assert.Equal(t, `{"tenants":[]}`, body)
	_, body = w.call(w.inst, "GET", "/api/v1/tenants", "", w.tokens["owner-b-scoped-a"])
	assert.Contains(t, body, `"name":"a"`)
	assert.NotContains(t, body, `"name":"b"`, "a token scoped to a does not show b, where its subject is owner")
}

type outcome int

const (
	allowed outcome = iota
	unauthenticated
	forbidden
)

// expect is the design's answer: may caller call route r on target tenant?
func expect(r api.Route, caller, target string) outcome {
	if r.Access.Kind == api.Public {
		return allowed
	}
	if caller == "none" {
		return unauthenticated
	}
	if caller == "capability-a" {
		// Only on the lease route of its own revision; elsewhere it is no
		// credential at all.
		if r.Access.Capability && target == "a" {
			return allowed
		}
		return unauthenticated
	}
	c := callers[caller]
	if r.Access.Kind == api.Authenticated {
		return allowed
	}
	tenant := target
	if !strings.Contains(r.Path, ":tenant") && !r.Access.BodyTenant {
		tenant = "" // the platform
	}
	if c.admin && c.scope == "" {
		return allowed
	}
	if tenant == "" || (c.scope != "" && c.scope != tenant) {
		return forbidden
	}
	if may[c.roles[tenant]][r.Access.Object+":"+r.Access.Action] {
		return allowed
	}
	return forbidden
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
	revoked, rc, err := w.inst.tokens.Issue("root", "", time.Hour)
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
	tok, _, err := w.inst.tokens.Issue("carol", "", time.Hour)
	require.NoError(t, err)
	status := func(inst *instance) int {
		code, _ := w.call(inst, "POST", "/api/v1/tenants/a/apps/app1/revisions", `{"image":"example/app:1"}`, tok)
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
		req := httptest.NewRequest("GET", "/api/v1/tenants/default/apps/arena/endpoint", nil)
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

func (noEndpoints) ForTicket(context.Context, string, string, string) (endpoint.Endpoint, error) {
	return endpoint.Endpoint{}, fmt.Errorf("ticket: %w", apps.ErrGone)
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
