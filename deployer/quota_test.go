package deployer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/deployer"
	"github.com/discovery-platform/discovery/deployer/process"
	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
	"github.com/discovery-platform/discovery/internal/testkit/proctest"
	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
	"github.com/discovery-platform/discovery/tenants"
)

// TestReplicaQuotaHoldsAcrossConcurrentReconciles: ten apps of one tenant,
// one replica each, deployed at once, reconciled by the running reconciler's
// four workers in parallel, against max_replicas 7: exactly seven replica
// records ever exist (each record's quota check is in its own transaction),
// the other apps are capped, and the count never passes the limit on the way.
func TestReplicaQuotaHoldsAcrossConcurrentReconciles(t *testing.T) {
	e := etcdtest.Start(t)
	ctx := context.Background()
	marker := proctest.Marker(t)
	t.Cleanup(func() { proctest.KillAll(marker) })
	ts := tenants.NewStore(e.Client, "/t", "discovery-")
	q := tenants.DefaultQuota
	q.MaxReplicas = 7
	_, err := ts.Create(ctx, "acme", &q)
	require.NoError(t, err)
	store := apps.NewStore(e.Client, "/t")
	svc := &apps.Service{Store: store, Tenants: ts}
	rt, err := process.New(process.Config{StateDir: t.TempDir(), ProbeInterval: 50 * time.Millisecond,
		Supervisor: build.Supervisor(t), Env: append(process.DefaultEnv(), marker)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close() })
	rec := deployer.NewReconciler(store, rt, nil, deployer.Config{Quotas: ts, Workers: 4, Tick: 50 * time.Millisecond, Resync: 200 * time.Millisecond})

	bin := build.Binary(t)
	var wg sync.WaitGroup
	for i := range 10 {
		name := fmt.Sprintf("app%d", i)
		_, err := svc.CreateApp(ctx, "acme", apps.AppSpec{Name: name, HealthPath: ptr("/healthz")})
		require.NoError(t, err)
		wg.Go(func() {
			_, err := svc.Deploy(ctx, "acme", name, apps.RevisionSpec{Command: []string{bin}})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rec.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })

	most := 0
	deadline := time.Now().Add(60 * time.Second)
	for {
		u, err := store.Usage(ctx, "acme")
		require.NoError(t, err)
		most = max(most, u.Replicas)
		if u.Replicas == 7 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	// A while longer, under the workers' retries and resyncs.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		u, err := store.Usage(ctx, "acme")
		require.NoError(t, err)
		most = max(most, u.Replicas)
	}
	assert.Equal(t, 7, most, "the usage reached max_replicas and never passed it")
	n := 0
	for i := range 10 {
		snap, err := store.Load(ctx, "acme", fmt.Sprintf("app%d", i))
		require.NoError(t, err)
		n += len(snap.Replicas)
	}
	assert.Equal(t, 7, n, "exactly seven replica records across the tenant's apps")
	procs, _ := proctest.Replicas(marker)
	assert.LessOrEqual(t, len(procs), 7, "and no more processes")
}

// TestDeletedAppsLeaveNoMetrics: finding 7. Once an app is deleted, its
// series (replicas, desired, sessions, rollouts) are gone from /metrics, so
// labels of deleted apps do not pile up.
func TestDeletedAppsLeaveNoMetrics(t *testing.T) {
	w := newWorld(t, apps.AppSpec{Name: "gone-soon", HealthPath: ptr("/healthz")})
	rev := w.deploy(nil)
	w.converge("active", func(s apps.Snapshot) bool { return state(s, rev) == apps.Active })
	require.Positive(t, seriesOf(t, "gone-soon"), "the app has series while it lives")
	_, err := w.svc.DeleteApp(context.Background(), "default", "gone-soon", apps.DeleteOptions{})
	require.NoError(t, err)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := w.rec.Sync(context.Background(), w.ref); err != nil {
			t.Logf("sync: %v", err)
		}
		if _, err := w.svc.Store.GetApp(context.Background(), "default", "gone-soon"); err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond) // poll interval between reconcile passes
	}
	assert.Zero(t, seriesOf(t, "gone-soon"), "no series of a deleted app")
}

// seriesOf counts the default registry's series labelled app=name.
func seriesOf(t *testing.T, name string) int {
	mfs, err := prometheus.DefaultGatherer.Gather()
	require.NoError(t, err)
	n := 0
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "app" && l.GetValue() == name {
					n++
				}
			}
		}
	}
	return n
}

// countingKV counts the key-value calls made through a client.
type countingKV struct {
	clientv3.KV
	calls atomic.Int64
}

func (c *countingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	c.calls.Add(1)
	return c.KV.Get(ctx, key, opts...)
}

func (c *countingKV) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	c.calls.Add(1)
	return c.KV.Put(ctx, key, val, opts...)
}

func (c *countingKV) Delete(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.DeleteResponse, error) {
	c.calls.Add(1)
	return c.KV.Delete(ctx, key, opts...)
}

func (c *countingKV) Do(ctx context.Context, op clientv3.Op) (clientv3.OpResponse, error) {
	c.calls.Add(1)
	return c.KV.Do(ctx, op)
}

func (c *countingKV) Txn(ctx context.Context) clientv3.Txn {
	c.calls.Add(1)
	return c.KV.Txn(ctx)
}

// TestResyncOfAnUnchangedAppMakesNoEtcdCall: the reconciler reads apps from
// its watch-fed cache and quotas from the tenants cache, so once an app has
// settled, resync after resync (every 50 ms here) costs etcd nothing.
func TestResyncOfAnUnchangedAppMakesNoEtcdCall(t *testing.T) {
	e := etcdtest.Start(t)
	ctx := context.Background()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	counting := &countingKV{KV: cli.KV}
	cli.KV = counting
	marker := proctest.Marker(t)
	t.Cleanup(func() { proctest.KillAll(marker) })
	ts := tenants.NewStore(cli, "/t", "discovery-")
	require.NoError(t, ts.Ensure(ctx, "default"))
	quotas := ts.NewCache(cli, nil)
	store := apps.NewStore(cli, "/t")
	svc := &apps.Service{Store: store, Tenants: ts}
	rt, err := process.New(process.Config{StateDir: t.TempDir(), ProbeInterval: 50 * time.Millisecond,
		Supervisor: build.Supervisor(t), Env: append(process.DefaultEnv(), marker)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close() })
	rec := deployer.NewReconciler(store, rt, nil, deployer.Config{Quotas: quotas, Resync: 50 * time.Millisecond, Tick: 20 * time.Millisecond})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() { quotas.Run(rctx); done <- struct{}{} }()
	go func() { _ = rec.Run(rctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })

	_, err = svc.CreateApp(ctx, "default", apps.AppSpec{Name: "calm", HealthPath: ptr("/healthz")})
	require.NoError(t, err)
	rev, err := svc.Deploy(ctx, "default", "calm", apps.RevisionSpec{Command: []string{build.Binary(t)}})
	require.NoError(t, err)
	settled := func() bool {
		snap, err := store.Load(ctx, "default", "calm")
		return err == nil && len(snap.Revisions) == 1 && snap.Revisions[0].State == apps.Active &&
			len(snap.Replicas) == 1 && snap.Replicas[0].State == apps.ReplicaReady
	}
	require.Eventually(t, settled, 30*time.Second, 20*time.Millisecond)
	_ = rev
	// The pass that saw it settle may still trim events: wait for two passes
	// in a row without a call, then count over twenty more.
	passes := func() float64 { return testutil.ToFloat64(deployer.PassesTotal) }
	waitPasses := func(n float64) {
		start := passes()
		require.Eventually(t, func() bool { return passes() >= start+n }, 10*time.Second, 5*time.Millisecond)
	}
	for quiet := 0; quiet < 2; {
		before := counting.calls.Load()
		waitPasses(1)
		if counting.calls.Load() == before {
			quiet++
		} else {
			quiet = 0
		}
	}
	before := counting.calls.Load()
	waitPasses(20)
	assert.Equal(t, before, counting.calls.Load(), "resyncs of an unchanged app called etcd")

	// Deleting it through the running reconciler (reading its cache) retires
	// the revision, stops the replica and removes the app.
	_, err = svc.DeleteApp(ctx, "default", "calm", apps.DeleteOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := store.GetApp(ctx, "default", "calm")
		return errors.Is(err, apps.ErrNotFound)
	}, 30*time.Second, 20*time.Millisecond, "the app is gone")
	u, err := store.Usage(ctx, "default")
	require.NoError(t, err)
	assert.Equal(t, apps.Usage{}, u, "and its usage with it")
}
