package tenants_test

import (
	"context"
	"encoding/json"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
	"github.com/discovery-platform/discovery/tenants"
)

const (
	prefix   = "/t"
	nsPrefix = "discovery-"
)

// newStore returns a store over a fresh real etcd, and that etcd's client
// for looking under the store.
func newStore(t *testing.T) (*tenants.Store, *clientv3.Client) {
	t.Helper()
	e := etcdtest.Start(t)
	return tenants.NewStore(e.Client, prefix, nsPrefix), e.Client
}

func tenantKey(name string) string { return path.Join(prefix, "tenants", name) }

var seqKey = path.Join(prefix, "tenant-seq")

// keys lists every key under the store's prefix, so a test can say that
// nothing was written.
func keys(t *testing.T, cli *clientv3.Client) []string {
	t.Helper()
	resp, err := cli.Get(context.Background(), prefix+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	require.NoError(t, err)
	var out []string
	for _, kv := range resp.Kvs {
		out = append(out, string(kv.Key))
	}
	return out
}

func lastSeq(t *testing.T, cli *clientv3.Client) int {
	t.Helper()
	resp, err := cli.Get(context.Background(), seqKey)
	require.NoError(t, err)
	if len(resp.Kvs) == 0 {
		return 0
	}
	n, err := strconv.Atoi(string(resp.Kvs[0].Value))
	require.NoError(t, err)
	return n
}

func TestCreateGetListDelete(t *testing.T) {
	ctx := context.Background()
	s, cli := newStore(t)

	created, err := s.Create(ctx, "acme", nil)
	require.NoError(t, err)
	assert.Equal(t, "acme", created.Name)
	assert.Equal(t, "discovery-acme", created.Namespace)
	assert.Equal(t, s.Namespace("acme"), created.Namespace)
	assert.Equal(t, tenants.DefaultQuota, created.Quota, "no quota given: the default")
	assert.Equal(t, 1, created.Seq)
	assert.False(t, created.AllowCommands, "raw commands are an admin's grant, never a default")
	assert.NotZero(t, created.ModRevision)
	assert.WithinDuration(t, time.Now(), created.CreatedAt, time.Minute)

	got, err := s.Get(ctx, "acme")
	require.NoError(t, err)
	assert.Equal(t, created.ModRevision, got.ModRevision)
	assert.Equal(t, created.Seq, got.Seq)
	assert.Equal(t, created.Quota, got.Quota)
	assert.True(t, created.CreatedAt.Equal(got.CreatedAt))

	ok, err := s.Exists(ctx, "acme")
	require.NoError(t, err)
	assert.True(t, ok)

	custom := tenants.QuotaPatch{MaxApps: ptr(3), MaxReplicas: ptr(7)}.Apply(tenants.DefaultQuota)
	// Created out of order: List sorts by name.
	for _, n := range []string{"zeta", "beta", "acme-2"} {
		_, err := s.Create(ctx, n, &custom)
		require.NoError(t, err)
	}
	q, err := s.Quota(ctx, "zeta")
	require.NoError(t, err)
	assert.Equal(t, custom, q)

	list, err := s.List(ctx)
	require.NoError(t, err)
	var names []string
	for _, tn := range list {
		names = append(names, tn.Name)
		assert.NotZero(t, tn.ModRevision, tn.Name)
	}
	assert.Equal(t, []string{"acme", "acme-2", "beta", "zeta"}, names)

	require.NoError(t, s.Delete(ctx, got))
	_, err = s.Get(ctx, "acme")
	assert.ErrorIs(t, err, tenants.ErrNotFound)
	ok, err = s.Exists(ctx, "acme")
	require.NoError(t, err)
	assert.False(t, ok)
	_, err = s.Quota(ctx, "acme")
	assert.ErrorIs(t, err, tenants.ErrNotFound)
	list, err = s.List(ctx)
	require.NoError(t, err)
	assert.Len(t, list, 3)
	assert.NotContains(t, keys(t, cli), tenantKey("acme"))
}

func TestStoresUnderOtherPrefixesAreApart(t *testing.T) {
	ctx := context.Background()
	e := etcdtest.Start(t)
	one := tenants.NewStore(e.Client, "/one", nsPrefix)
	two := tenants.NewStore(e.Client, "/two/", "other-")
	_, err := one.Create(ctx, "acme", nil)
	require.NoError(t, err)

	_, err = two.Get(ctx, "acme")
	assert.ErrorIs(t, err, tenants.ErrNotFound)
	list, err := two.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, list)
	t2, err := two.Create(ctx, "acme", nil)
	require.NoError(t, err, "the same name under another prefix")
	assert.Equal(t, "other-acme", t2.Namespace)
	assert.Equal(t, 1, t2.Seq, "each prefix numbers its own tenants")
}

func TestCreateTakenNameIsErrExists(t *testing.T) {
	ctx := context.Background()
	s, cli := newStore(t)
	first, err := s.Create(ctx, "acme", nil)
	require.NoError(t, err)

	q := tenants.QuotaPatch{MaxApps: ptr(1)}.Apply(tenants.DefaultQuota)
	_, err = s.Create(ctx, "acme", &q)
	assert.ErrorIs(t, err, tenants.ErrExists)

	got, err := s.Get(ctx, "acme")
	require.NoError(t, err)
	assert.Equal(t, first.ModRevision, got.ModRevision, "the existing tenant is untouched")
	assert.Equal(t, tenants.DefaultQuota, got.Quota)
	assert.Equal(t, 1, lastSeq(t, cli), "a refused create takes no number")

	// Many at once: exactly one wins.
	const n = 10
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = s.Create(ctx, "race", nil) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
			continue
		}
		assert.ErrorIs(t, err, tenants.ErrExists)
	}
	assert.Equal(t, 1, won)
	assert.Equal(t, 2, lastSeq(t, cli), "losers take no number")
}

func TestCreateRefusesInvalidNamesAndWritesNothing(t *testing.T) {
	ctx := context.Background()
	s, cli := newStore(t)
	for _, name := range []string{
		"", "Acme", "-acme", "acme-", "ac_me", "ac.me", "ac me", "ac/me", "../tenant-seq", "..",
		strings.Repeat("a", 64-len(nsPrefix)), // with the namespace prefix, past 63 characters
	} {
		_, err := s.Create(ctx, name, nil)
		assert.ErrorIs(t, err, tenants.ErrInvalid, "%q", name)
		assert.ErrorIs(t, s.Ensure(ctx, name), tenants.ErrInvalid, "%q", name)
	}
	assert.Empty(t, keys(t, cli), "nothing written, no number taken")

	longest := strings.Repeat("a", 63-len(nsPrefix))
	tn, err := s.Create(ctx, longest, nil)
	require.NoError(t, err, "the longest name that fits")
	assert.Len(t, tn.Namespace, 63)
}

func TestCreateRefusesInvalidQuotasAndWritesNothing(t *testing.T) {
	ctx := context.Background()
	s, cli := newStore(t)
	for _, tc := range []struct {
		what string
		q    tenants.Quota
	}{
		{"negative max_apps", tenants.QuotaPatch{MaxApps: ptr(-1)}.Apply(tenants.DefaultQuota)},
		{"max_replicas too high", tenants.QuotaPatch{MaxReplicas: ptr(100001)}.Apply(tenants.DefaultQuota)},
		{"max_revisions 0", tenants.QuotaPatch{MaxRevisions: ptr(0)}.Apply(tenants.DefaultQuota)},
		{"negative cpu", tenants.QuotaPatch{MaxCPUMillis: ptr(-5)}.Apply(tenants.DefaultQuota)},
		{"max_leases_per_revision 0", tenants.QuotaPatch{MaxLeasesPerRevision: ptr(0)}.Apply(tenants.DefaultQuota)},
		{"max_stored_bytes past its limit", tenants.QuotaPatch{MaxStoredBytes: ptr[int64](tenants.MaxStoredBytesLimit + 1)}.Apply(tenants.DefaultQuota)},
		// A quota written without the newer fields is not completed by Create:
		// callers start from DefaultQuota (QuotaPatch.Apply), as the API does.
		{"the newer fields left zero", tenants.Quota{MaxApps: 1, MaxReplicas: 1, MaxRevisions: 1}},
	} {
		_, err := s.Create(ctx, "acme", &tc.q)
		assert.ErrorIs(t, err, tenants.ErrInvalid, tc.what)
	}
	assert.Empty(t, keys(t, cli), "nothing written, no number taken")
}

func TestUpdateComparesModRevision(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	_, err := s.Create(ctx, "acme", nil)
	require.NoError(t, err)
	read, err := s.Get(ctx, "acme")
	require.NoError(t, err)

	changed := read
	changed.Quota.MaxApps = 3
	changed.AllowCommands = true
	updated, err := s.Update(ctx, changed)
	require.NoError(t, err)
	assert.Greater(t, updated.ModRevision, read.ModRevision)
	assert.Equal(t, read.Seq, updated.Seq)

	// A writer still holding the first read loses, and changes nothing.
	stale := read
	stale.Quota.MaxApps = 99
	_, err = s.Update(ctx, stale)
	assert.ErrorIs(t, err, tenants.ErrConflict)
	assert.ErrorIs(t, s.Delete(ctx, stale), tenants.ErrConflict)

	got, err := s.Get(ctx, "acme")
	require.NoError(t, err)
	assert.Equal(t, updated.ModRevision, got.ModRevision)
	assert.Equal(t, 3, got.Quota.MaxApps)
	assert.True(t, got.AllowCommands)

	// The fresh read goes through.
	got.Quota.MaxApps = 4
	again, err := s.Update(ctx, got)
	require.NoError(t, err)
	assert.Equal(t, 4, again.Quota.MaxApps)

	// Once deleted, a copy read before cannot bring it back.
	require.NoError(t, s.Delete(ctx, again))
	_, err = s.Update(ctx, again)
	assert.ErrorIs(t, err, tenants.ErrConflict)
	_, err = s.Get(ctx, "acme")
	assert.ErrorIs(t, err, tenants.ErrNotFound)
}

func TestEnsureIsIdempotent(t *testing.T) {
	ctx := context.Background()
	s, cli := newStore(t)
	require.NoError(t, s.Ensure(ctx, tenants.Default))
	first, err := s.Get(ctx, tenants.Default)
	require.NoError(t, err)
	assert.Equal(t, tenants.DefaultQuota, first.Quota)
	assert.Equal(t, 1, first.Seq)

	// An admin changes the quota; a restart ensures the tenant again.
	first.Quota.MaxApps = 2
	changed, err := s.Update(ctx, first)
	require.NoError(t, err)
	for range 3 {
		require.NoError(t, s.Ensure(ctx, tenants.Default))
	}
	got, err := s.Get(ctx, tenants.Default)
	require.NoError(t, err)
	assert.Equal(t, changed.ModRevision, got.ModRevision, "an existing tenant is not rewritten")
	assert.Equal(t, 2, got.Quota.MaxApps)
	assert.Equal(t, 1, lastSeq(t, cli), "no number taken")
	assert.Len(t, keys(t, cli), 2, "one tenant and the number")
}

func TestSeqUniqueUnderConcurrentCreates(t *testing.T) {
	ctx := context.Background()
	s, cli := newStore(t)
	const n = 20
	var wg sync.WaitGroup
	got := make([]tenants.Tenant, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			got[i], errs[i] = s.Create(ctx, "t"+strconv.Itoa(i), nil)
		})
	}
	close(start)
	wg.Wait()

	seen := map[int]string{}
	for i := range n {
		require.NoError(t, errs[i], "create t%d", i)
		if other, dup := seen[got[i].Seq]; dup {
			t.Errorf("t%d and %s share number %d", i, other, got[i].Seq)
		}
		seen[got[i].Seq] = got[i].Name
		stored, err := s.Get(ctx, got[i].Name)
		require.NoError(t, err)
		assert.Equal(t, got[i].Seq, stored.Seq, "the number returned is the one stored")
	}
	for seq := 1; seq <= n; seq++ {
		assert.Contains(t, seen, seq, "numbers 1-%d, no gaps", n)
	}
	assert.Equal(t, n, lastSeq(t, cli))
}

func TestSeqNeverReusedAfterDelete(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	a, err := s.Create(ctx, "a", nil)
	require.NoError(t, err)
	b, err := s.Create(ctx, "b", nil)
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2}, []int{a.Seq, b.Seq})

	// The newest goes, then the oldest: neither number comes back, even for
	// the same name.
	require.NoError(t, s.Delete(ctx, b))
	c, err := s.Create(ctx, "c", nil)
	require.NoError(t, err)
	assert.Equal(t, 3, c.Seq)
	b2, err := s.Create(ctx, "b", nil)
	require.NoError(t, err)
	assert.Equal(t, 4, b2.Seq)
	require.NoError(t, s.Delete(ctx, a))
	require.NoError(t, s.Delete(ctx, b2))
	require.NoError(t, s.Delete(ctx, c))
	a2, err := s.Create(ctx, "a", nil)
	require.NoError(t, err)
	assert.Equal(t, 5, a2.Seq, "not even once every tenant is gone")

	seq, err := s.Seq(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 5, seq)
	_, err = s.Seq(ctx, "b")
	assert.ErrorIs(t, err, tenants.ErrNotFound)
}

// writeLegacy stores a tenant record as a platform from before tenant
// numbers and the newer quota fields wrote it.
func writeLegacy(t *testing.T, cli *clientv3.Client, name string) {
	t.Helper()
	rec := map[string]any{
		"name": name, "namespace": nsPrefix + name,
		"quota": map[string]int{"max_apps": 5, "max_replicas": 6, "max_revisions": 7,
			"max_cpu_millis": 800, "max_memory_mb": 900},
		"created_at": "2024-01-02T03:04:05Z",
	}
	b, err := json.Marshal(rec)
	require.NoError(t, err)
	_, err = cli.Put(context.Background(), tenantKey(name), string(b))
	require.NoError(t, err)
}

func TestStoredQuotaReadsDefaultsForMissingFields(t *testing.T) {
	ctx := context.Background()
	s, cli := newStore(t)
	writeLegacy(t, cli, "old")
	want := tenants.Quota{MaxApps: 5, MaxReplicas: 6, MaxRevisions: 7, MaxCPUMillis: 800, MaxMemoryMB: 900,
		MaxLeasesPerRevision: tenants.DefaultQuota.MaxLeasesPerRevision,
		MaxStoredBytes:       tenants.DefaultQuota.MaxStoredBytes}

	got, err := s.Get(ctx, "old")
	require.NoError(t, err)
	assert.Equal(t, want, got.Quota)
	require.NoError(t, got.Quota.Validate(), "what a legacy record reads is a valid quota")
	q, err := s.Quota(ctx, "old")
	require.NoError(t, err)
	assert.Equal(t, want, q)
	list, err := s.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, want, list[0].Quota)

	// Saved again, the record carries the defaults it was read with.
	_, err = s.Update(ctx, got)
	require.NoError(t, err)
	resp, err := cli.Get(ctx, tenantKey("old"))
	require.NoError(t, err)
	var raw struct {
		Quota map[string]int64 `json:"quota"`
	}
	require.NoError(t, json.Unmarshal(resp.Kvs[0].Value, &raw))
	assert.Equal(t, int64(tenants.DefaultQuota.MaxLeasesPerRevision), raw.Quota["max_leases_per_revision"])
	assert.Equal(t, tenants.DefaultQuota.MaxStoredBytes, raw.Quota["max_stored_bytes"])
}

func TestSeqAllocatedLazilyForLegacyTenant(t *testing.T) {
	ctx := context.Background()
	s, cli := newStore(t)
	_, err := s.Create(ctx, "new", nil)
	require.NoError(t, err)
	writeLegacy(t, cli, "old")
	old, err := s.Get(ctx, "old")
	require.NoError(t, err)
	assert.Zero(t, old.Seq, "stored without a number")

	// Several callers ask at once (replicas of the tenant starting together):
	// one number is allocated, and they all get it.
	const n = 5
	var wg sync.WaitGroup
	seqs := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { seqs[i], errs[i] = s.Seq(ctx, "old") })
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		assert.Equal(t, 2, seqs[i], "the next number after the tenant created with one")
	}
	assert.Equal(t, 2, lastSeq(t, cli), "allocated once")

	got, err := s.Get(ctx, "old")
	require.NoError(t, err)
	assert.Equal(t, 2, got.Seq, "stored")
	assert.Equal(t, "2024-01-02T03:04:05Z", got.CreatedAt.Format(time.RFC3339), "the rest of the record kept")
	assert.Equal(t, 5, got.Quota.MaxApps)

	again, err := s.Seq(ctx, "old")
	require.NoError(t, err)
	assert.Equal(t, 2, again)
	next, err := s.Create(ctx, "newer", nil)
	require.NoError(t, err)
	assert.Equal(t, 3, next.Seq)
}

func TestCommandsAllowed(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	ok, err := s.CommandsAllowed(ctx, "ghost")
	require.NoError(t, err, "an unknown tenant is simply not trusted")
	assert.False(t, ok)

	tn, err := s.Create(ctx, "acme", nil)
	require.NoError(t, err)
	ok, err = s.CommandsAllowed(ctx, "acme")
	require.NoError(t, err)
	assert.False(t, ok, "not by default")

	tn.AllowCommands = true
	tn, err = s.Update(ctx, tn)
	require.NoError(t, err)
	ok, err = s.CommandsAllowed(ctx, "acme")
	require.NoError(t, err)
	assert.True(t, ok)

	tn.AllowCommands = false
	_, err = s.Update(ctx, tn)
	require.NoError(t, err)
	ok, err = s.CommandsAllowed(ctx, "acme")
	require.NoError(t, err)
	assert.False(t, ok, "revoked")
}
