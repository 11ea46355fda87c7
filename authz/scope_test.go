package authz_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/authz"
	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
)

// The cast of the scope tests, granted by grantCast:
//
//	root  platform admin, and viewer of a (so refusals below are about
//	      being an admin, not about membership)
//	olga  owner of a
//	otto  owner of a
//	dave  deployer of a, owner of b
//	vic   viewer of a
//	carol nothing
func grantCast(t *testing.T, a *authz.Authorizer) {
	t.Helper()
	for _, g := range [][3]string{
		{"root", authz.RoleAdmin, authz.Platform}, {"root", authz.RoleViewer, "a"},
		{"olga", authz.RoleOwner, "a"}, {"otto", authz.RoleOwner, "a"},
		{"dave", authz.RoleDeployer, "a"}, {"dave", authz.RoleOwner, "b"},
		{"vic", authz.RoleViewer, "a"},
	} {
		require.NoError(t, a.Grant(g[0], g[1], g[2]), "%v", g)
	}
}

func newCastAuthorizer(t *testing.T) *authz.Authorizer {
	t.Helper()
	e := etcdtest.Start(t)
	a := startAuthorizer(t, e.Client, authz.NewEdDSATokens(newKey(t)))
	grantCast(t, a)
	return a
}

func user(s string) authz.Principal           { return authz.Principal{Subject: s} }
func scoped(s, tenant string) authz.Principal { return authz.Principal{Subject: s, Tenant: tenant} }

// platformRequests are requests on platform-wide objects.
var platformRequests = []authz.Request{
	{Object: "tenants", Action: authz.Read}, {Object: "tenants", Action: authz.Write},
	{Tenant: authz.Platform, Object: "tenants", Action: authz.Write},
	{Object: "images", Action: authz.Write}, {Object: "tokens", Action: authz.Write},
}

func TestDecide(t *testing.T) {
	a := newCastAuthorizer(t)
	lease := authz.Principal{Revision: &authz.RevisionRef{Tenant: "a", App: "arena", Revision: "9d00cc18"}}
	type rq = authz.Request
	for _, tc := range []struct {
		what  string
		p     authz.Principal
		r     rq
		allow bool
	}{
		// A token scoped to a gets its subject's role in a (deployer)...
		{"scoped: deploy in its tenant", scoped("dave", "a"), rq{Tenant: "a", Object: "apps", Action: authz.Write}, true},
		{"scoped: read logs in its tenant", scoped("dave", "a"), rq{Tenant: "a", Object: "logs", Action: authz.Read}, true},
		{"scoped: no more than its role there", scoped("dave", "a"), rq{Tenant: "a", Object: "members", Action: authz.Write}, false},
		{"scoped: quota is read-only to a deployer", scoped("dave", "a"), rq{Tenant: "a", Object: "quota", Action: authz.Write}, false},
		// ... and nothing in b, where the subject is owner.
		{"scoped: nothing in another tenant", scoped("dave", "a"), rq{Tenant: "b", Object: "apps", Action: authz.Read}, false},
		{"scoped: not even an owner's rights there", scoped("dave", "a"), rq{Tenant: "b", Object: "members", Action: authz.Write}, false},
		{"the same subject unscoped: owner of b", user("dave"), rq{Tenant: "b", Object: "members", Action: authz.Write}, true},
		{"the same subject unscoped: deployer of a", user("dave"), rq{Tenant: "a", Object: "apps", Action: authz.Write}, true},
		{"the same subject unscoped: no more in a", user("dave"), rq{Tenant: "a", Object: "members", Action: authz.Write}, false},
		{"scoped to b: owner there", scoped("dave", "b"), rq{Tenant: "b", Object: "members", Action: authz.Write}, true},
		// An admin's token scoped to a tenant is worth the subject's role
		// there (root is viewer of a), never an admin's.
		{"scoped admin: its role in the tenant", scoped("root", "a"), rq{Tenant: "a", Object: "apps", Action: authz.Read}, true},
		{"scoped admin: no more than that role", scoped("root", "a"), rq{Tenant: "a", Object: "apps", Action: authz.Write}, false},
		{"scoped admin: nothing in another tenant", scoped("root", "b"), rq{Tenant: "b", Object: "apps", Action: authz.Read}, false},
		// The unscoped admin: everywhere.
		{"admin: any tenant", user("root"), rq{Tenant: "b", Object: "members", Action: authz.Write}, true},
		{"admin: a tenant nobody is member of", user("root"), rq{Tenant: "zzz", Object: "quota", Action: authz.Write}, true},
		{"admin: an object no role names", user("root"), rq{Tenant: "a", Object: "anything", Action: "frobnicate"}, true},
		// Members stay within their role and their tenant.
		{"viewer reads", user("vic"), rq{Tenant: "a", Object: "revisions", Action: authz.Read}, true},
		{"viewer writes nothing", user("vic"), rq{Tenant: "a", Object: "revisions", Action: authz.Write}, false},
		{"owner: members", user("olga"), rq{Tenant: "a", Object: "members", Action: authz.Write}, true},
		{"owner: not the quota", user("olga"), rq{Tenant: "a", Object: "quota", Action: authz.Write}, false},
		{"owner: not another tenant", user("olga"), rq{Tenant: "b", Object: "apps", Action: authz.Read}, false},
		{"nobody", user("carol"), rq{Tenant: "a", Object: "apps", Action: authz.Read}, false},
		{"no subject", authz.Principal{}, rq{Tenant: "a", Object: "apps", Action: authz.Read}, false},
		{"no subject, with a scope", authz.Principal{Tenant: "a"}, rq{Tenant: "a", Object: "apps", Action: authz.Read}, false},
		// A replica's lease capability: leases/write on its own revision only.
		{"lease: its own revision", lease, rq{Tenant: "a", App: "arena", Revision: "9d00cc18", Object: "leases", Action: authz.Write}, true},
		{"lease: reading leases", lease, rq{Tenant: "a", App: "arena", Revision: "9d00cc18", Object: "leases", Action: authz.Read}, false},
		{"lease: another revision", lease, rq{Tenant: "a", App: "arena", Revision: "00000000", Object: "leases", Action: authz.Write}, false},
		{"lease: another app", lease, rq{Tenant: "a", App: "chat", Revision: "9d00cc18", Object: "leases", Action: authz.Write}, false},
		{"lease: another tenant", lease, rq{Tenant: "b", App: "arena", Revision: "9d00cc18", Object: "leases", Action: authz.Write}, false},
		{"lease: no revision named", lease, rq{Tenant: "a", Object: "leases", Action: authz.Write}, false},
		{"lease: hands off from its own revision", lease, rq{Tenant: "a", App: "arena", Revision: "9d00cc18", Object: "handoffs", Action: authz.Write}, true},
		{"lease: hands off from another app", lease, rq{Tenant: "a", App: "chat", Revision: "9d00cc18", Object: "handoffs", Action: authz.Write}, false},
		{"lease: reads its own notices", lease, rq{Tenant: "a", App: "arena", Revision: "9d00cc18", Object: "notices", Action: authz.Read}, true},
		{"lease: reads another revision's notices", lease, rq{Tenant: "a", App: "arena", Revision: "00000000", Object: "notices", Action: authz.Read}, false},
		{"lease: reads events", lease, rq{Tenant: "a", App: "arena", Revision: "9d00cc18", Object: "events", Action: authz.Read}, false},
		{"lease: its app", lease, rq{Tenant: "a", App: "arena", Revision: "9d00cc18", Object: "apps", Action: authz.Read}, false},
		{"lease: a subject does not widen it", authz.Principal{Subject: "root", Revision: lease.Revision},
			rq{Tenant: "a", Object: "apps", Action: authz.Write}, false},
	} {
		err := a.Decide(tc.p, tc.r)
		if tc.allow {
			assert.NoError(t, err, tc.what)
		} else {
			assert.ErrorIs(t, err, authz.ErrForbidden, tc.what)
		}
	}

	// Platform objects: the unscoped admin only.
	for _, r := range platformRequests {
		assert.NoError(t, a.Decide(user("root"), r), "admin: %+v", r)
		for _, p := range []authz.Principal{scoped("root", "a"), scoped("dave", "a"), user("olga"), user("dave"), lease} {
			assert.ErrorIs(t, a.Decide(p, r), authz.ErrForbidden, "%s: %+v", p, r)
		}
	}

	assert.True(t, a.IsAdmin(user("root")))
	for _, p := range []authz.Principal{scoped("root", "a"), user("olga"), {Subject: "root", Revision: lease.Revision}, {}} {
		assert.False(t, a.IsAdmin(p), "%s", p)
	}
}

func TestIssueAs(t *testing.T) {
	a := newCastAuthorizer(t)
	lease := authz.Principal{Revision: &authz.RevisionRef{Tenant: "a", App: "arena", Revision: "9d00cc18"}}
	for _, tc := range []struct {
		what            string
		p               authz.Principal
		subject, tenant string
		ok              bool
	}{
		// A platform admin mints anything.
		{"admin: unscoped for a nobody", user("root"), "carol", "", true},
		{"admin: unscoped for itself", user("root"), "root", "", true},
		{"admin: scoped for a non-member", user("root"), "carol", "b", true},
		{"admin: scoped for an owner", user("root"), "dave", "b", true},
		// An owner mints tokens scoped to its tenant, for its members.
		{"owner: a viewer", user("olga"), "vic", "a", true},
		{"owner: a deployer", user("olga"), "dave", "a", true},
		{"owner: another owner", user("olga"), "otto", "a", true},
		{"owner: itself", user("olga"), "olga", "a", true},
		{"owner with a scoped token: a viewer", scoped("olga", "a"), "vic", "a", true},
		{"owner: never unscoped", user("olga"), "vic", "", false},
		{"owner: never unscoped, even for itself", user("olga"), "olga", "", false},
		{"owner: not for another tenant", user("olga"), "dave", "b", false},
		{"owner: not for a non-member", user("olga"), "carol", "a", false},
		{"owner: never for an admin subject, member or not", user("olga"), "root", "a", false},
		{"owner of b, token scoped to a: not for b", scoped("dave", "a"), "dave", "b", false},
		{"owner of b: for b", user("dave"), "dave", "b", true},
		// Deployers and viewers mint nothing.
		{"deployer: a viewer", user("dave"), "vic", "a", false},
		{"deployer: itself", user("dave"), "dave", "a", false},
		{"viewer: itself", user("vic"), "vic", "a", false},
		{"nobody", user("carol"), "carol", "a", false},
		// An admin's scoped token is not an admin's.
		{"scoped admin: unscoped", scoped("root", "a"), "carol", "", false},
		{"scoped admin: within its scope, as the viewer it is", scoped("root", "a"), "vic", "a", false},
		{"lease capability", lease, "vic", "a", false},
	} {
		tok, claims, err := a.IssueAs(tc.p, tc.subject, tc.tenant, time.Hour)
		if !tc.ok {
			assert.ErrorIs(t, err, authz.ErrForbidden, tc.what)
			assert.Empty(t, tok, tc.what)
			continue
		}
		if !assert.NoError(t, err, tc.what) {
			continue
		}
		assert.Equal(t, tc.subject, claims.Subject, tc.what)
		assert.Equal(t, tc.tenant, claims.Tenant, tc.what)
		got, err := a.Tokens.Verify(tok)
		require.NoError(t, err, tc.what)
		assert.Equal(t, authz.Principal{Subject: tc.subject, Tenant: tc.tenant, TokenID: claims.ID}, got.Principal(), tc.what)
	}

	// What an owner mints is worth no more than its scope: the token olga
	// mints for dave works in a, not in b where dave is owner.
	tok, _, err := a.IssueAs(user("olga"), "dave", "a", time.Hour)
	require.NoError(t, err)
	c, err := a.Tokens.Verify(tok)
	require.NoError(t, err)
	assert.NoError(t, a.Decide(c.Principal(), authz.Request{Tenant: "a", Object: "apps", Action: authz.Write}))
	assert.ErrorIs(t, a.Decide(c.Principal(), authz.Request{Tenant: "b", Object: "apps", Action: authz.Read}), authz.ErrForbidden,
		"dave owns b, but this token is scoped to a")
}

func TestGrantAs(t *testing.T) {
	a := newCastAuthorizer(t)
	lease := authz.Principal{Revision: &authz.RevisionRef{Tenant: "a", App: "arena", Revision: "9d00cc18"}}
	for _, tc := range []struct {
		what                  string
		p                     authz.Principal
		subject, role, tenant string
		want                  error // nil: granted
	}{
		{"owner: a viewer", user("olga"), "carol", authz.RoleViewer, "a", nil},
		{"owner: a deployer, replacing the role", user("olga"), "carol", authz.RoleDeployer, "a", nil},
		{"owner: up to owner", user("olga"), "carol", authz.RoleOwner, "a", nil},
		{"owner with a scoped token", scoped("olga", "a"), "carol", authz.RoleViewer, "a", nil},
		{"owner: never admin", user("olga"), "carol", authz.RoleAdmin, "a", authz.ErrInvalid},
		{"owner: no such role", user("olga"), "carol", "superuser", "a", authz.ErrInvalid},
		{"owner: not in another tenant", user("olga"), "carol", authz.RoleViewer, "b", authz.ErrForbidden},
		{"owner: not platform-wide", user("olga"), "carol", authz.RoleAdmin, authz.Platform, authz.ErrForbidden},
		{"owner of b, token scoped to a: not in b", scoped("dave", "a"), "carol", authz.RoleViewer, "b", authz.ErrForbidden},
		{"owner of b: in b", user("dave"), "carol", authz.RoleOwner, "b", nil},
		{"deployer: nothing", user("dave"), "carol", authz.RoleViewer, "a", authz.ErrForbidden},
		{"deployer: not even admin", user("dave"), "carol", authz.RoleAdmin, "a", authz.ErrForbidden},
		{"viewer: nothing", user("vic"), "carol", authz.RoleViewer, "a", authz.ErrForbidden},
		{"scoped admin: not an admin", scoped("root", "a"), "carol", authz.RoleViewer, "a", authz.ErrForbidden},
		{"lease capability", lease, "carol", authz.RoleViewer, "a", authz.ErrForbidden},
		{"admin: anywhere", user("root"), "carol", authz.RoleOwner, "zzz", nil},
		{"admin: still only tenant roles in a tenant", user("root"), "carol", authz.RoleAdmin, "a", authz.ErrInvalid},
		{"admin: a bad subject", user("root"), "car ol", authz.RoleViewer, "a", authz.ErrInvalid},
	} {
		before := a.RoleIn(tc.subject, tc.tenant)
		err := a.GrantAs(tc.p, tc.subject, tc.role, tc.tenant)
		if tc.want != nil {
			assert.ErrorIs(t, err, tc.want, tc.what)
			assert.Equal(t, before, a.RoleIn(tc.subject, tc.tenant), "%s: nothing changed", tc.what)
			continue
		}
		require.NoError(t, err, tc.what)
		assert.Equal(t, tc.role, a.RoleIn(tc.subject, tc.tenant), tc.what)
	}
	assert.Equal(t, []authz.Member{{Subject: "carol", Role: authz.RoleViewer}, {Subject: "dave", Role: authz.RoleDeployer},
		{Subject: "olga", Role: authz.RoleOwner}, {Subject: "otto", Role: authz.RoleOwner}, {Subject: "root", Role: authz.RoleViewer},
		{Subject: "vic", Role: authz.RoleViewer}}, a.Members("a"), "one role per member: a grant replaces the role before")
	assert.False(t, a.IsAdmin(user("carol")), "no path to the admin role")
}

func TestMayDeployCommand(t *testing.T) {
	a := newCastAuthorizer(t)
	trusted := trust{"a": true}
	ctxOf := func(p authz.Principal) context.Context { return authz.WithPrincipal(context.Background(), p) }

	assert.NoError(t, a.MayDeployCommand(ctxOf(user("root")), "b"), "an admin's right")
	assert.ErrorIs(t, a.MayDeployCommand(ctxOf(user("olga")), "a"), authz.ErrForbidden, "no trust configured")
	assert.ErrorIs(t, a.MayDeployCommand(context.Background(), "a"), authz.ErrForbidden, "no caller")

	a.Trust = trusted
	assert.NoError(t, a.MayDeployCommand(ctxOf(user("olga")), "a"), "a trusted tenant")
	assert.ErrorIs(t, a.MayDeployCommand(ctxOf(user("dave")), "b"), authz.ErrForbidden, "an untrusted one")
	assert.ErrorIs(t, a.MayDeployCommand(ctxOf(scoped("root", "b")), "b"), authz.ErrForbidden, "a scoped admin token is not an admin's")
}

type trust map[string]bool

func (tr trust) CommandsAllowed(_ context.Context, tenant string) (bool, error) {
	return tr[tenant], nil
}
