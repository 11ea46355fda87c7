package deployer_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
	_, err := w.svc.DeleteApp(context.Background(), "default", "gone-soon")
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
