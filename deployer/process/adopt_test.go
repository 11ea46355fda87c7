package process

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/deployer"
	"github.com/discovery-platform/discovery/deployer/process/supervisor"
)

// helperEnv, set in the environment of this test binary, makes it a
// platform that starts one replica and exits (see TestMain): the replica's
// supervisor then belongs to no Runtime of the test process, as after a real
// platform restart.
const helperEnv = "DISCOVERY_PROCESS_TEST_PLATFORM"

type helperJob struct {
	StateDir, Supervisor string
	Spec                 deployer.ReplicaSpec
}

func runHelper(job string) int {
	var j helperJob
	if err := json.Unmarshal([]byte(job), &j); err != nil {
		return 2
	}
	rt, err := New(Config{StateDir: j.StateDir, Supervisor: j.Supervisor})
	if err == nil {
		err = rt.Start(context.Background(), j.Spec)
	}
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 1
	}
	return 0 // exits without Close: the platform is simply gone
}

// startInHelper starts spec from another platform process on cfg's state dir.
func startInHelper(t *testing.T, cfg Config, spec deployer.ReplicaSpec) {
	t.Helper()
	job, err := json.Marshal(helperJob{StateDir: cfg.StateDir, Supervisor: cfg.Supervisor, Spec: spec})
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(job))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// TestAdoptedReplicaReportsItsRealExit: a platform restarted while a replica
// runs learns how the replica ended from its supervisor, although the
// supervisor is not its child.
func TestAdoptedReplicaReportsItsRealExit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// end ends the replica, given the new runtime (nil: before it opens)
		// and its supervisor's pid.
		end  func(t *testing.T, rt *Runtime, id apps.ReplicaID, sup int)
		want string
	}{
		{"stopped, exits 3", func(t *testing.T, rt *Runtime, id apps.ReplicaID, _ int) {
			require.NoError(t, rt.Stop(t.Context(), id, 10*time.Second))
		}, "exit status 3"},
		{"killed", func(t *testing.T, _ *Runtime, _ apps.ReplicaID, sup int) {
			require.NoError(t, syscall.Kill(childOf(t, sup), syscall.SIGKILL))
		}, "signal: killed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			spec := shell("adopted", `trap 'echo got TERM; exit 3' TERM; echo started; sleep 600 & wait`)
			startInHelper(t, cfg, spec)

			rt := open(t, cfg)
			sup := pidOf(rt, spec.ReplicaID)
			require.NotZero(t, sup)
			children.Lock()
			ours := children.pids[sup]
			children.Unlock()
			require.False(t, ours, "the supervisor must not be this process's child")
			assert.NotEqual(t, apps.ReplicaExited, get(rt, spec.ReplicaID).State)
			waitLog(t, rt, spec.ReplicaID, "started")

			tc.end(t, rt, spec.ReplicaID, sup)
			o := waitState(t, rt, spec.ReplicaID, apps.ReplicaExited)
			assert.Equal(t, tc.want, o.Exit)
		})
	}
	t.Run("crashed while no platform ran", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig(t)
		spec := shell("adopted", `echo started; exec sleep 600`)
		startInHelper(t, cfg, spec)
		m, err := readMeta(filepath.Join(cfg.StateDir, dirName(spec.ReplicaID)))
		require.NoError(t, err)
		require.NoError(t, syscall.Kill(childOf(t, m.PID), syscall.SIGKILL))
		require.Eventually(t, func() bool { return !alive(m.PID) }, waitLimit, 10*time.Millisecond)

		rt := open(t, cfg)
		o := get(rt, spec.ReplicaID)
		assert.Equal(t, apps.ReplicaExited, o.State)
		assert.Equal(t, "signal: killed", o.Exit, "not just 'exited while the platform was down'")
		waitLog(t, rt, spec.ReplicaID, "started")
	})
}

func TestRestartedPlatformAdoptsRunningReplica(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	a := open(t, cfg)
	spec := testapp(t, "arena", "r1", nil)
	spec.HealthPath = "/healthz"
	require.NoError(t, a.Start(t.Context(), spec))
	before := waitState(t, a, spec.ReplicaID, apps.ReplicaReady)
	pid := pidOf(a, spec.ReplicaID)

	require.NoError(t, a.Close())
	require.ErrorIs(t, a.Start(t.Context(), spec), ErrClosed)
	assert.True(t, alive(pid), "closing the runtime must not stop replicas")

	b := open(t, cfg)
	after := get(b, spec.ReplicaID)
	assert.Equal(t, apps.ReplicaReady, after.State, "adopted replicas are probed before New returns")
	assert.Equal(t, before.Address, after.Address)
	assert.Equal(t, before.StartedAt.Unix(), after.StartedAt.Unix())
	assert.Equal(t, pid, pidOf(b, spec.ReplicaID))
	assert.Equal(t, "ok", httpGet(t, "http://"+after.Address+"/healthz"))

	// Start of an adopted replica is a no-op.
	require.NoError(t, b.Start(t.Context(), spec))
	assert.Equal(t, pid, pidOf(b, spec.ReplicaID))

	require.NoError(t, b.Stop(t.Context(), spec.ReplicaID, 5*time.Second))
	o := waitState(t, b, spec.ReplicaID, apps.ReplicaExited)
	assert.Equal(t, "exit status 0", o.Exit)
	waitLog(t, b, spec.ReplicaID, "got SIGTERM")
}

func TestReplicaKilledWhilePlatformDownIsExited(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	a := open(t, cfg)
	spec := testapp(t, "arena", "r1", nil)
	require.NoError(t, a.Start(t.Context(), spec))
	waitState(t, a, spec.ReplicaID, apps.ReplicaReady)
	pid := pidOf(a, spec.ReplicaID)
	require.NoError(t, a.Close())

	require.NoError(t, syscall.Kill(-pid, syscall.SIGKILL))
	b := open(t, cfg)
	o := waitState(t, b, spec.ReplicaID, apps.ReplicaExited)
	assert.NotEmpty(t, o.Exit)
}

func TestRestartedPlatformFinishesStop(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	a := open(t, cfg)
	spec := testapp(t, "stubborn", "r1", map[string]string{"IGNORE_SIGTERM": "1"})
	require.NoError(t, a.Start(t.Context(), spec))
	waitState(t, a, spec.ReplicaID, apps.ReplicaReady)
	require.NoError(t, a.Stop(t.Context(), spec.ReplicaID, 400*time.Millisecond))
	require.NoError(t, a.Close()) // before the grace ends

	b := open(t, cfg)
	assert.Equal(t, apps.ReplicaStopping, get(b, spec.ReplicaID).State)
	o := waitState(t, b, spec.ReplicaID, apps.ReplicaExited)
	assert.Equal(t, "signal: killed", o.Exit)
}

func TestAdoptsReplicaStartedBeforePIDWasRecorded(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	spec := testapp(t, "orphan", "r1", nil)
	id := spec.ReplicaID

	// What a platform that died right after starting the supervisor leaves:
	// meta.json without a pid, the spec, and a supervisor that recorded its
	// own pid.
	port, err := freePort("127.0.0.1")
	require.NoError(t, err)
	dir := filepath.Join(cfg.StateDir, dirName(id))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, workDir), 0o700))
	addr := "127.0.0.1:" + strconv.Itoa(port)
	require.NoError(t, writeMeta(dir, meta{Tenant: id.Tenant, App: id.App, Revision: id.Revision, Replica: id.Replica,
		Command: spec.Command, Port: port, Address: addr}))
	require.NoError(t, supervisor.WriteSpec(dir, supervisor.Spec{Path: spec.Command[0], Argv: spec.Command,
		Env: []string{"PORT=" + strconv.Itoa(port)}, Dir: filepath.Join(dir, workDir), LogLimit: 1 << 20}))
	cmd := superviseByHand(t, cfg.Supervisor, dir)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, _, err := supervisor.ReadPID(dir)
		assert.NoError(c, err)
	}, waitLimit, 10*time.Millisecond)

	rt := open(t, cfg)
	assert.Equal(t, cmd.Process.Pid, pidOf(rt, id))
	o := waitState(t, rt, id, apps.ReplicaReady)
	assert.Equal(t, addr, o.Address)
	saved, err := readMeta(dir)
	require.NoError(t, err)
	assert.Equal(t, cmd.Process.Pid, saved.PID)

	require.NoError(t, rt.Stop(t.Context(), id, 5*time.Second))
	o = waitState(t, rt, id, apps.ReplicaExited)
	assert.Equal(t, "exit status 0", o.Exit, "the supervisor recorded the exit")
}

// superviseByHand starts a supervisor on dir as a platform would, but not as
// a Runtime's child, and stops and reaps it at the end of the test.
func superviseByHand(t *testing.T, bin, dir string) *exec.Cmd {
	cmd := exec.Command(bin, dir)
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-done })
	return cmd
}

func TestSupervisorStartingAfterAdoptionStartsNothing(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	spec := testapp(t, "late", "r1", nil)
	id := spec.ReplicaID
	dir := filepath.Join(cfg.StateDir, dirName(id))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, workDir), 0o700))
	require.NoError(t, writeMeta(dir, meta{Tenant: id.Tenant, App: id.App, Revision: id.Revision, Replica: id.Replica,
		Command: spec.Command}))
	require.NoError(t, supervisor.WriteSpec(dir, supervisor.Spec{Path: spec.Command[0], Argv: spec.Command,
		Dir: filepath.Join(dir, workDir), LogLimit: 1 << 20}))

	// No pid recorded: the new platform counts the replica lost and takes
	// its spec away, so a supervisor that only now gets going starts nothing.
	rt := open(t, cfg)
	o := get(rt, id)
	assert.Equal(t, apps.ReplicaExited, o.State)
	assert.Contains(t, o.Exit, "before the replica started")
	assert.NoFileExists(t, filepath.Join(dir, supervisor.SpecFile))

	out, err := exec.Command(cfg.Supervisor, dir).CombinedOutput()
	require.Error(t, err, "%s", out)
	assert.Contains(t, string(out), "read spec")
	assert.Contains(t, supervisor.ReadExit(dir), "read spec")
}

func TestReplicaLostBeforeStartIsExited(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	noPID := apps.ReplicaID{Tenant: "acme", App: "arena", Revision: "9d00cc18", Replica: "nopid"}
	noMeta := apps.ReplicaID{Tenant: "acme", App: "arena", Revision: "9d00cc18", Replica: "nometa"}
	for _, id := range []apps.ReplicaID{noPID, noMeta} {
		require.NoError(t, os.MkdirAll(filepath.Join(cfg.StateDir, dirName(id)), 0o755))
	}
	require.NoError(t, writeMeta(filepath.Join(cfg.StateDir, dirName(noPID)),
		meta{Tenant: "acme", App: "arena", Revision: "9d00cc18", Replica: "nopid", Command: []string{"true"}}))
	require.NoError(t, os.WriteFile(filepath.Join(cfg.StateDir, "stray-file"), nil, 0o644))

	rt := open(t, cfg)
	list, err := rt.List(t.Context(), "acme", "arena")
	require.NoError(t, err)
	require.Len(t, list, 2)
	for _, o := range list {
		assert.Equal(t, apps.ReplicaExited, o.State)
		assert.Contains(t, o.Exit, "before the replica started")
		require.NoError(t, rt.Remove(t.Context(), o.ReplicaID))
	}
}
