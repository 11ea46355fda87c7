package authz_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/authz"
	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
)

// TestPolicyChangesReachOtherInstances: two platform instances on one etcd;
// a role granted, changed or revoked through one is what the other decides
// with, without new tokens.
func TestPolicyChangesReachOtherInstances(t *testing.T) {
	ctx := context.Background()
	e := etcdtest.Start(t)
	key, err := authz.LoadOrCreateKey(ctx, e.Client, prefix)
	require.NoError(t, err)
	one := startAuthorizer(t, e.Client, authz.NewEdDSATokens(key))
	two := startAuthorizer(t, e.Client, authz.NewEdDSATokens(key))

	// erin's token, minted once on instance one, is used on instance two
	// throughout: only the policy changes.
	tok, _, err := one.Tokens.Issue("erin", "", time.Hour)
	require.NoError(t, err)
	claims, err := two.Tokens.Verify(tok)
	require.NoError(t, err, "instances share the signing key")
	erin := claims.Principal()
	deploy := authz.Request{Tenant: "acme", Object: "apps", Action: authz.Write}
	read := authz.Request{Tenant: "acme", Object: "apps", Action: authz.Read}
	require.ErrorIs(t, two.Decide(erin, read), authz.ErrForbidden)

	require.NoError(t, one.Grant("erin", authz.RoleDeployer, "acme"))
	assert.NoError(t, one.Decide(erin, deploy), "the granting instance sees its own grant at once")
	eventually(t, "the grant reaches instance two", func() bool { return two.Decide(erin, deploy) == nil })
	assert.Equal(t, authz.RoleDeployer, two.RoleIn("erin", "acme"))

	require.NoError(t, one.Grant("erin", authz.RoleViewer, "acme"))
	assert.ErrorIs(t, one.Decide(erin, deploy), authz.ErrForbidden)
	// Wait for the new role itself: Grant removes the old role and adds the
	// new one in two writes, and another instance may reload in between.
	eventually(t, "the lowered role reaches instance two", func() bool { return two.RoleIn("erin", "acme") == authz.RoleViewer })
	assert.ErrorIs(t, two.Decide(erin, deploy), authz.ErrForbidden)
	assert.NoError(t, two.Decide(erin, read))
	assert.Equal(t, []authz.Member{{Subject: "erin", Role: authz.RoleViewer}}, two.Members("acme"), "a grant replaces the role")

	removed, err := one.RevokeRoles("erin", "acme")
	require.NoError(t, err)
	assert.True(t, removed)
	assert.ErrorIs(t, one.Decide(erin, read), authz.ErrForbidden)
	eventually(t, "the revocation reaches instance two", func() bool { return two.Decide(erin, read) != nil })
	assert.Empty(t, two.RoleIn("erin", "acme"))
	assert.Empty(t, two.Members("acme"))

	// The other way round, and a whole tenant dropped.
	require.NoError(t, two.Grant("erin", authz.RoleOwner, "acme"))
	require.NoError(t, two.Grant("frank", authz.RoleViewer, "acme"))
	require.NoError(t, two.Grant("erin", authz.RoleViewer, "other"))
	eventually(t, "grants reach instance one", func() bool { return len(one.Members("acme")) == 2 && one.RoleIn("erin", "other") != "" })
	require.NoError(t, one.DropTenant("acme"))
	eventually(t, "the dropped tenant reaches instance two", func() bool { return len(two.Members("acme")) == 0 })
	assert.ErrorIs(t, two.Decide(erin, read), authz.ErrForbidden)
	assert.Equal(t, authz.RoleViewer, two.RoleIn("erin", "other"), "other tenants keep their members")

	// The admin role too, and its removal.
	require.NoError(t, one.Grant("erin", authz.RoleAdmin, authz.Platform))
	eventually(t, "an admin grant reaches instance two", func() bool { return two.IsAdmin(erin) })
	_, err = one.RevokeRoles("erin", authz.Platform)
	require.NoError(t, err)
	eventually(t, "an admin revocation reaches instance two", func() bool { return !two.IsAdmin(erin) })
	assert.ErrorIs(t, two.Decide(erin, authz.Request{Object: "tenants", Action: authz.Write}), authz.ErrForbidden)
}

// TestPolicySurvivesRestart: a new instance (a restart) reads the policy the
// old one wrote, built-in rules seeded once.
func TestPolicySurvivesRestart(t *testing.T) {
	e := etcdtest.Start(t)
	key := newKey(t)
	first := startAuthorizer(t, e.Client, authz.NewEdDSATokens(key))
	require.NoError(t, first.Grant("erin", authz.RoleDeployer, "acme"))
	require.ErrorIs(t, first.Grant("erin", authz.RoleOwner, authz.Platform), authz.ErrInvalid, "only admin is platform-wide")
	require.ErrorIs(t, first.Grant("erin", "superuser", "acme"), authz.ErrInvalid)

	again := startAuthorizer(t, e.Client, authz.NewEdDSATokens(key))
	assert.Equal(t, authz.RoleDeployer, again.RoleIn("erin", "acme"), "read at start, before any watch event")
	assert.NoError(t, again.Decide(authz.Principal{Subject: "erin"}, authz.Request{Tenant: "acme", Object: "revisions", Action: authz.Write}))
	assert.Equal(t, []authz.Member{{Subject: "erin", Role: authz.RoleDeployer}}, again.Members("acme"))
}

// TestLoadOrCreateKeyAgreesOnOneKey: instances starting together on a fresh
// etcd end up with one signing key.
func TestLoadOrCreateKeyAgreesOnOneKey(t *testing.T) {
	ctx := context.Background()
	e := etcdtest.Start(t)
	const n = 8
	keys := make([]ed25519.PrivateKey, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			keys[i], errs[i] = authz.LoadOrCreateKey(ctx, e.Client, prefix)
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		assert.True(t, keys[0].Equal(keys[i]), "instance %d has another key", i)
	}
	later, err := authz.LoadOrCreateKey(ctx, e.Client, prefix)
	require.NoError(t, err)
	assert.True(t, keys[0].Equal(later), "a later start loads the same key")

	// A token signed by one instance verifies on another.
	tok, _, err := authz.NewEdDSATokens(keys[1]).Issue("alice", "", time.Hour)
	require.NoError(t, err)
	_, err = authz.NewEdDSATokens(later).Verify(tok)
	assert.NoError(t, err)

	other, err := authz.LoadOrCreateKey(ctx, e.Client, "/elsewhere")
	require.NoError(t, err)
	assert.False(t, keys[0].Equal(other), "another prefix, another installation, another key")
}

// TestBootstrapWritesTheAdminTokenOnce: the first instance of an
// installation makes the admin and leaves its token, readable by the
// platform's user only; later starts (on any instance) write nothing.
func TestBootstrapWritesTheAdminTokenOnce(t *testing.T) {
	ctx := context.Background()
	e := etcdtest.Start(t)
	key, err := authz.LoadOrCreateKey(ctx, e.Client, prefix)
	require.NoError(t, err)
	a := startAuthorizer(t, e.Client, authz.NewEdDSATokens(key))
	dir := t.TempDir()

	file, err := authz.Bootstrap(ctx, e.Client, prefix, a, dir)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, authz.TokenFile), file)
	fi, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	raw, err := os.ReadFile(file)
	require.NoError(t, err)

	b := startAuthorizer(t, e.Client, authz.NewEdDSATokens(key))
	claims, err := b.Tokens.Verify(string(raw[:len(raw)-1]))
	require.NoError(t, err, "the file holds one token and a newline")
	assert.Equal(t, authz.BootstrapSubject, claims.Subject)
	assert.Empty(t, claims.Tenant, "unscoped")
	assert.WithinDuration(t, time.Now().Add(365*24*time.Hour), claims.ExpiresAt.Time, time.Hour)
	assert.True(t, a.IsAdmin(claims.Principal()))
	eventually(t, "the admin reaches another instance", func() bool { return b.IsAdmin(claims.Principal()) })

	// Again on this instance, and on another with its own data dir: nothing.
	again, err := authz.Bootstrap(ctx, e.Client, prefix, a, dir)
	require.NoError(t, err)
	assert.Empty(t, again)
	otherDir := t.TempDir()
	again, err = authz.Bootstrap(ctx, e.Client, prefix, b, otherDir)
	require.NoError(t, err)
	assert.Empty(t, again)
	_, err = os.Stat(filepath.Join(otherDir, authz.TokenFile))
	assert.ErrorIs(t, err, os.ErrNotExist)
	after, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, raw, after, "the first token is not replaced")
}

// TestBootstrapOnceAmongInstancesStartingTogether: of instances
// bootstrapping at once, one writes the token.
func TestBootstrapOnceAmongInstancesStartingTogether(t *testing.T) {
	ctx := context.Background()
	e := etcdtest.Start(t)
	key := newKey(t)
	const n = 4
	files := make([]string, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		a := startAuthorizer(t, e.Client, authz.NewEdDSATokens(key))
		dir := t.TempDir()
		wg.Go(func() {
			<-start
			files[i], errs[i] = authz.Bootstrap(ctx, e.Client, prefix, a, dir)
		})
	}
	close(start)
	wg.Wait()
	written := 0
	for i := range n {
		require.NoError(t, errs[i])
		if files[i] != "" {
			written++
		}
	}
	assert.Equal(t, 1, written)
}

// TestBootstrapTokenFileIsPrivateEvenIfItExisted: a token file left in the
// data dir (an earlier installation, an operator's touch) must not keep
// permissions that let others read the new admin token.
func TestBootstrapTokenFileIsPrivateEvenIfItExisted(t *testing.T) {
	ctx := context.Background()
	e := etcdtest.Start(t)
	a := startAuthorizer(t, e.Client, authz.NewEdDSATokens(newKey(t)))
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, authz.TokenFile), []byte("stale\n"), 0o644))

	file, err := authz.Bootstrap(ctx, e.Client, prefix, a, dir)
	require.NoError(t, err)
	require.NotEmpty(t, file)
	fi, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

// TestBootstrapRetriedAfterAFailedFirstAttempt: a first start that claims
// the bootstrap but cannot finish it (data dir not writable, crash before
// the file is written) must not leave the installation without an admin
// token for good.
func TestBootstrapRetriedAfterAFailedFirstAttempt(t *testing.T) {
	ctx := context.Background()
	e := etcdtest.Start(t)
	a := startAuthorizer(t, e.Client, authz.NewEdDSATokens(newKey(t)))

	_, err := authz.Bootstrap(ctx, e.Client, prefix, a, filepath.Join(t.TempDir(), "missing"))
	require.Error(t, err, "the token cannot be written")
	file, err := authz.Bootstrap(ctx, e.Client, prefix, a, t.TempDir())
	require.NoError(t, err)
	assert.NotEmpty(t, file, "the next start writes the token")
}

// TestGrantReplacesARoleInOneWrite: changing a member's role is one etcd
// transaction, so no instance ever sees the member without a role or with
// two, and two instances changing it at once leave one role.
func TestGrantReplacesARoleInOneWrite(t *testing.T) {
	ctx := context.Background()
	e := etcdtest.Start(t)
	key := newKey(t)
	one := startAuthorizer(t, e.Client, authz.NewEdDSATokens(key))
	two := startAuthorizer(t, e.Client, authz.NewEdDSATokens(key))
	require.NoError(t, one.Grant("erin", authz.RoleOwner, "acme"))

	start, err := e.Client.Get(ctx, "/rev-probe")
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	wch := e.Client.Watch(wctx, prefix+"/authz/policy/g/", clientv3.WithPrefix(), clientv3.WithRev(start.Header.Revision+1))
	require.NoError(t, one.Grant("erin", authz.RoleViewer, "acme"))
	var puts, deletes int
	for resp := range wch {
		for _, ev := range resp.Events {
			if ev.Type == clientv3.EventTypeDelete {
				deletes++
			} else {
				puts++
			}
		}
		assert.Equal(t, puts, deletes, "an etcd revision with a role removed and none added, or the reverse")
		if puts > 0 && deletes > 0 {
			break
		}
	}
	require.Equal(t, 1, puts)

	// Two instances change one member's role at once.
	for i := range 10 {
		subject := fmt.Sprintf("u%d", i)
		require.NoError(t, one.Grant(subject, authz.RoleOwner, "acme"))
		eventually(t, "the grant reaches instance two", func() bool { return two.RoleIn(subject, "acme") != "" })
		var wg sync.WaitGroup
		wg.Go(func() { assert.NoError(t, one.Grant(subject, authz.RoleDeployer, "acme")) })
		wg.Go(func() { assert.NoError(t, two.Grant(subject, authz.RoleViewer, "acme")) })
		wg.Wait()
		resp, err := e.Client.Get(ctx, prefix+"/authz/policy/g/", clientv3.WithPrefix())
		require.NoError(t, err)
		var roles []string
		for _, kv := range resp.Kvs {
			var rule []string
			require.NoError(t, json.Unmarshal(kv.Value, &rule))
			if rule[1] == subject && rule[3] == "acme" {
				roles = append(roles, rule[2])
			}
		}
		assert.Len(t, roles, 1, "%s holds %v in acme", subject, roles)
	}
}
