package deployer_test

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/deployer"
	"github.com/discovery-platform/discovery/deployer/process"
	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
	"github.com/discovery-platform/discovery/internal/testkit/proctest"
	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
)

func TestMain(m *testing.M) {
	code := m.Run()
	build.Cleanup()
	os.Exit(code)
}

// world is one app on a real etcd and a real process runtime, reconciled by
// calling Sync directly (as sample-controller's tests do).
type world struct {
	t      *testing.T
	svc    *apps.Service
	rt     *process.Runtime
	rec    *deployer.Reconciler
	dir    string
	marker string
	bin    string
	// supervisor is the process runtime's discovery-supervisor binary.
	supervisor string
	ref        apps.Ref
}

func newWorld(t *testing.T, spec apps.AppSpec) *world {
	e := etcdtest.Start(t)
	w := &world{t: t, dir: t.TempDir(), marker: proctest.Marker(t), bin: build.Binary(t), supervisor: build.Supervisor(t)}
	t.Cleanup(func() { proctest.KillAll(w.marker) })
	w.svc = &apps.Service{Store: apps.NewStore(e.Client, "/t")}
	w.openRuntime()
	a, err := w.svc.CreateApp(context.Background(), "default", spec)
	require.NoError(t, err)
	w.ref = apps.Ref{Tenant: "default", App: a.Name}
	return w
}

// openRuntime (re)opens the process runtime and a reconciler on it, as a
// platform start does.
func (w *world) openRuntime() {
	// The marker goes in the replicas' environment by hand: they inherit
	// nothing of the platform's, and it is how proctest finds them.
	rt, err := process.New(process.Config{StateDir: w.dir, ProbeInterval: 50 * time.Millisecond,
		Supervisor: w.supervisor, Env: append(process.DefaultEnv(), w.marker)})
	require.NoError(w.t, err)
	w.t.Cleanup(func() { _ = rt.Close() })
	w.rt = rt
	w.rec = deployer.NewReconciler(w.svc.Store, rt, nil, deployer.Config{})
}

func (w *world) deploy(env map[string]string) string {
	rev, err := w.svc.Deploy(context.Background(), "default", w.ref.App, apps.RevisionSpec{Command: []string{w.bin}, Env: env})
	require.NoError(w.t, err)
	return rev.ID
}

// converge calls Sync until cond holds on the stored state, or fails.
func (w *world) converge(what string, cond func(apps.Snapshot) bool) apps.Snapshot {
	w.t.Helper()
	ctx := context.Background()
	var snap apps.Snapshot
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		_, err := w.rec.Sync(ctx, w.ref)
		if err != nil && !strings.Contains(err.Error(), "conflict") {
			require.NoError(w.t, err)
		}
		snap, err = w.svc.Load(ctx, "default", w.ref.App)
		if err == nil && cond(snap) {
			return snap
		}
		time.Sleep(20 * time.Millisecond) // poll interval between reconcile passes
	}
	w.t.Fatalf("did not converge: %s; state: %s", what, describe(snap))
	return snap
}

func describe(s apps.Snapshot) string {
	var b strings.Builder
	for _, r := range s.Revisions {
		b.WriteString(r.ID + "=" + string(r.State) + "(" + r.Reason + ") ")
	}
	for _, r := range s.Replicas {
		b.WriteString(r.Revision + "/" + r.ID + ":" + string(r.State) + " ")
	}
	return b.String()
}

func state(s apps.Snapshot, id string) apps.RevisionState {
	r, _ := s.Revision(id)
	return r.State
}

func ready(s apps.Snapshot, id string) int {
	n := 0
	for _, r := range s.Replicas {
		if r.Revision == id && r.State == apps.ReplicaReady && !r.Stop {
			n++
		}
	}
	return n
}

func records(s apps.Snapshot, id string) int {
	n := 0
	for _, r := range s.Replicas {
		if r.Revision == id {
			n++
		}
	}
	return n
}

// pids maps the replica ids of a revision to the pids really running.
func (w *world) pids(rev string) map[string]int {
	out := map[string]int{}
	procs, dup := proctest.Replicas(w.marker)
	require.Empty(w.t, dup, "a replica id runs twice")
	for id, p := range procs {
		if p.Revision == rev {
			out[id] = p.PID
		}
	}
	return out
}

func activeWith(id string, n int) func(apps.Snapshot) bool {
	return func(s apps.Snapshot) bool { return state(s, id) == apps.Active && ready(s, id) == n }
}

func TestRolloutActivatesOnlyWhenHealthyAndOldRevisionDrains(t *testing.T) {
	w := newWorld(t, apps.AppSpec{Name: "arena", Replicas: ptr(2), HealthPath: ptr("/healthz")})
	v1 := w.deploy(map[string]string{"VERSION": "1"})
	w.converge("v1 active with 2 ready replicas", activeWith(v1, 2))
	v1pids := w.pids(v1)
	require.Len(t, v1pids, 2)

	v2 := w.deploy(map[string]string{"VERSION": "2", "HEALTH_DELAY": "1500ms"})
	snap := w.converge("v2 started but not healthy", func(s apps.Snapshot) bool {
		return state(s, v2) == apps.Starting && records(s, v2) == 2
	})
	assert.Equal(t, apps.Active, state(snap, v1), "v1 stays active while v2 is not healthy")

	snap = w.converge("v2 active", activeWith(v2, 2))
	assert.Equal(t, apps.Draining, state(snap, v1))
	assert.Equal(t, v1pids, w.pids(v1), "v1's replicas keep running, untouched")
	assert.Equal(t, 2, ready(snap, v1))
}

func TestFailingRevisionLeavesActiveUntouched(t *testing.T) {
	w := newWorld(t, apps.AppSpec{Name: "arena", Replicas: ptr(1), HealthPath: ptr("/healthz"), StartTimeout: ptr(apps.Duration(2 * time.Second))})
	v1 := w.deploy(nil)
	w.converge("v1 active", activeWith(v1, 1))
	v1pids := w.pids(v1)

	crashing := w.deploy(map[string]string{"FAIL_START": "1"})
	snap := w.converge("crashing revision failed", func(s apps.Snapshot) bool { return state(s, crashing) == apps.Failed })
	r, _ := snap.Revision(crashing)
	assert.GreaterOrEqual(t, r.Crashes, apps.MaxStartCrashes)
	assert.Equal(t, apps.Active, state(snap, v1))

	unhealthy := w.deploy(map[string]string{"NEVER_HEALTHY": "1"})
	snap = w.converge("unhealthy revision failed and stopped", func(s apps.Snapshot) bool {
		return state(s, unhealthy) == apps.Failed && records(s, unhealthy) == 0
	})
	r, _ = snap.Revision(unhealthy)
	assert.Contains(t, r.Reason, "start_timeout")
	assert.Empty(t, w.pids(unhealthy), "a failed revision's replicas are stopped")
	assert.Equal(t, apps.Active, state(snap, v1))
	assert.Equal(t, v1pids, w.pids(v1), "the active revision was never touched")

	evs, err := w.svc.Events(context.Background(), "default", "arena", "", 0)
	require.NoError(t, err)
	var crashed, failed int
	for _, e := range evs {
		if e.Type == apps.EventReplicaCrashed {
			crashed++
			if crashed == 1 {
				assert.Contains(t, e.Message, "exit status 3")
			}
		}
		if e.Type == apps.EventTransition && e.To == apps.Failed {
			failed++
		}
	}
	assert.GreaterOrEqual(t, crashed, apps.MaxStartCrashes)
	assert.Equal(t, 2, failed)
}

func TestActivateDrainingRevisionRestartsNothing(t *testing.T) {
	w := newWorld(t, apps.AppSpec{Name: "arena", Replicas: ptr(1)})
	v1 := w.deploy(nil)
	w.converge("v1 active", activeWith(v1, 1))
	v2 := w.deploy(nil)
	w.converge("v2 active", activeWith(v2, 1))
	before := w.pids(v1)
	beforeV2 := w.pids(v2)

	_, err := w.svc.Activate(context.Background(), "default", "arena", v1)
	require.NoError(t, err)
	snap := w.converge("v1 active again", func(s apps.Snapshot) bool {
		return state(s, v1) == apps.Active && state(s, v2) == apps.Draining
	})
	assert.Equal(t, 1, ready(snap, v1))
	assert.Equal(t, before, w.pids(v1), "rollback restarts nothing")
	assert.Equal(t, beforeV2, w.pids(v2), "the superseded revision keeps running")
}

func TestCrashedReplicaOfActiveRevisionIsReplaced(t *testing.T) {
	w := newWorld(t, apps.AppSpec{Name: "arena", Replicas: ptr(2)})
	v1 := w.deploy(nil)
	w.converge("v1 active", activeWith(v1, 2))
	var victim string
	var pid int
	for id, p := range w.pids(v1) {
		victim, pid = id, p
		break
	}
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	snap := w.converge("replacement ready", func(s apps.Snapshot) bool {
		for _, r := range s.Replicas {
			if r.ID == victim {
				return false
			}
		}
		return ready(s, v1) == 2
	})
	assert.Equal(t, apps.Active, state(snap, v1))
	assert.Len(t, w.pids(v1), 2)
}

func TestRetireStopsReplicasGracefully(t *testing.T) {
	w := newWorld(t, apps.AppSpec{Name: "arena", Replicas: ptr(2), ShutdownGrace: ptr(apps.Duration(5 * time.Second))})
	v1 := w.deploy(nil)
	w.converge("v1 active", activeWith(v1, 2))
	v2 := w.deploy(nil)
	w.converge("v2 active", activeWith(v2, 2))

	_, err := w.svc.Retire(context.Background(), "default", "arena", v1)
	require.NoError(t, err)
	w.converge("v1 retired, replicas gone", func(s apps.Snapshot) bool {
		return state(s, v1) == apps.Retired && records(s, v1) == 0
	})
	assert.Empty(t, w.pids(v1))
	assert.Len(t, w.pids(v2), 2)
}

func TestRestartedControlPlaneReadoptsReplicas(t *testing.T) {
	w := newWorld(t, apps.AppSpec{Name: "arena", Replicas: ptr(2)})
	v1 := w.deploy(nil)
	w.converge("v1 active", activeWith(v1, 2))
	before := w.pids(v1)

	require.NoError(t, w.rt.Close())
	w.openRuntime()
	snap := w.converge("still active after restart", activeWith(v1, 2))
	assert.Equal(t, before, w.pids(v1), "the same processes, adopted, none restarted")
	assert.Equal(t, 2, records(snap, v1))
}

func TestScaleDownAndDeleteApp(t *testing.T) {
	w := newWorld(t, apps.AppSpec{Name: "arena", Replicas: ptr(3)})
	v1 := w.deploy(nil)
	w.converge("v1 active with 3", activeWith(v1, 3))

	_, err := w.svc.UpdateApp(context.Background(), "default", "arena", apps.AppSpec{Replicas: ptr(1)})
	require.NoError(t, err)
	w.converge("scaled to 1", func(s apps.Snapshot) bool { return records(s, v1) == 1 && ready(s, v1) == 1 })
	require.Eventually(t, func() bool { return len(w.pids(v1)) == 1 }, 10*time.Second, 20*time.Millisecond)

	_, err = w.svc.DeleteApp(context.Background(), "default", "arena", apps.DeleteOptions{})
	require.NoError(t, err)
	ctx := context.Background()
	require.Eventually(t, func() bool {
		_, _ = w.rec.Sync(ctx, w.ref)
		_, err := w.svc.GetApp(ctx, "default", "arena")
		return err != nil
	}, 20*time.Second, 20*time.Millisecond)
	assert.Empty(t, w.pids(v1), "deleting an app stops its replicas")
}

func ptr[T any](v T) *T { return &v }
