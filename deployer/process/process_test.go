package process

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/deployer"
	"github.com/discovery-platform/discovery/internal/testapp/build"
)

func TestMain(m *testing.M) {
	code := m.Run()
	build.Cleanup()
	os.Exit(code)
}

const waitLimit = 10 * time.Second

// testConfig is a fast-probing config on a fresh state dir.
func testConfig(t *testing.T) Config {
	return Config{
		StateDir:      t.TempDir(),
		ProbeInterval: 50 * time.Millisecond,
		ProbeTimeout:  500 * time.Millisecond,
		Logger:        slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
}

// open starts a runtime on cfg and arranges, at the end of the test, for it to
// be closed and then for every process recorded in its state dir to be killed.
func open(t *testing.T, cfg Config) *Runtime {
	t.Helper()
	t.Cleanup(func() { killAll(t, cfg.StateDir) })
	rt, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, rt.Close()) })
	return rt
}

// killAll SIGKILLs the process group of every replica recorded in dir and
// reaps the ones this test process is the parent of.
func killAll(t *testing.T, dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		m, err := readMeta(filepath.Join(dir, e.Name()))
		if err != nil || m.PID == 0 {
			continue
		}
		if signalGroup(m.PID, m.StartTicks, syscall.SIGKILL) != nil {
			continue
		}
		deadline := time.Now().Add(waitLimit)
		for {
			if gone, _ := processGone(m.PID, m.StartTicks); gone || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond) // polling for the kill to land
		}
	}
}

func testapp(t *testing.T, app, replica string, env map[string]string) deployer.ReplicaSpec {
	return deployer.ReplicaSpec{
		ReplicaID: deployer.ReplicaID{Tenant: "acme", App: app, Revision: "9d00cc18", Replica: replica},
		Command:   []string{build.Binary(t)},
		Env:       env,
	}
}

func shell(app, script string) deployer.ReplicaSpec {
	return deployer.ReplicaSpec{
		ReplicaID: deployer.ReplicaID{Tenant: "acme", App: app, Revision: "9d00cc18", Replica: "r1"},
		Command:   []string{"sh", "-c", script},
	}
}

func get(rt *Runtime, id deployer.ReplicaID) deployer.Observed {
	list, _ := rt.List(context.Background(), id.Tenant, id.App)
	for _, o := range list {
		if o.ReplicaID == id {
			return o
		}
	}
	return deployer.Observed{}
}

func waitState(t *testing.T, rt *Runtime, id deployer.ReplicaID, want apps.ReplicaState) deployer.Observed {
	t.Helper()
	var o deployer.Observed
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		o = get(rt, id)
		assert.Equal(c, want, o.State, "observed %+v", o)
	}, waitLimit, 10*time.Millisecond)
	return o
}

func waitLog(t *testing.T, rt *Runtime, id deployer.ReplicaID, want string) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		b, err := rt.Logs(context.Background(), id, 0)
		assert.NoError(c, err)
		assert.Contains(c, string(b), want)
	}, waitLimit, 10*time.Millisecond)
}

func pidOf(rt *Runtime, id deployer.ReplicaID) int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.reps[id].meta.PID
}

func alive(pid int) bool {
	st, err := readStat(pid)
	return err == nil && st.state != 'Z'
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func TestStartBecomesReady(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, healthPath string }{
		{"tcp connect", ""},
		{"http health path", "/healthz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rt := open(t, testConfig(t))
			spec := testapp(t, "arena", "r1", map[string]string{"VERSION": "0.2", "PORT": "1"})
			spec.HealthPath = tc.healthPath
			require.NoError(t, rt.Start(t.Context(), spec))

			o := waitState(t, rt, spec.ReplicaID, apps.ReplicaReady)
			assert.True(t, strings.HasPrefix(o.Address, "127.0.0.1:"), o.Address)
			assert.WithinDuration(t, time.Now(), o.StartedAt, waitLimit)

			// The replica sees its identity, the revision's env, and the
			// runtime's PORT winning over the revision's.
			var got struct {
				Revision, Replica, Version string
				PID                        int
			}
			require.NoError(t, json.Unmarshal([]byte(httpGet(t, "http://"+o.Address+"/")), &got))
			assert.Equal(t, "9d00cc18", got.Revision)
			assert.Equal(t, "r1", got.Replica)
			assert.Equal(t, "0.2", got.Version)
			pid := pidOf(rt, spec.ReplicaID)
			assert.Equal(t, pid, got.PID)
			st, err := readStat(pid)
			require.NoError(t, err)
			assert.Equal(t, pid, st.session, "a replica leads its own session, out of the platform's reach")
			waitLog(t, rt, spec.ReplicaID, "listening on "+o.Address)
		})
	}
}

func TestHealthDelayKeepsReplicaStarting(t *testing.T) {
	t.Parallel()
	const delay = 700 * time.Millisecond
	rt := open(t, testConfig(t))
	spec := testapp(t, "slow", "r1", map[string]string{"HEALTH_DELAY": delay.String()})
	spec.HealthPath = "/healthz"
	began := time.Now()
	require.NoError(t, rt.Start(t.Context(), spec))

	// Listening is not healthy: the replica serves but stays starting.
	waitLog(t, rt, spec.ReplicaID, "listening on")
	if state := get(rt, spec.ReplicaID).State; time.Since(began) < delay {
		assert.Equal(t, apps.ReplicaStarting, state)
	}
	waitState(t, rt, spec.ReplicaID, apps.ReplicaReady)
	assert.GreaterOrEqual(t, time.Since(began), delay)
}

func TestReadyReplicaTurnsUnhealthyAndRecovers(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.ProbeTimeout = 100 * time.Millisecond
	rt := open(t, cfg)
	spec := testapp(t, "frozen", "r1", nil)
	spec.HealthPath = "/healthz"
	require.NoError(t, rt.Start(t.Context(), spec))
	waitState(t, rt, spec.ReplicaID, apps.ReplicaReady)

	// A stopped process still accepts TCP connections (the kernel does) but
	// never answers HTTP: exactly a hung server.
	pid := pidOf(rt, spec.ReplicaID)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	waitState(t, rt, spec.ReplicaID, apps.ReplicaUnhealthy)
	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	waitState(t, rt, spec.ReplicaID, apps.ReplicaReady)
}

func TestFailingReplicaExitsAndNotifies(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	rt := open(t, cfg)
	spec := testapp(t, "broken", "r1", map[string]string{"FAIL_START": "1"})
	require.NoError(t, rt.Start(t.Context(), spec))

	o := waitState(t, rt, spec.ReplicaID, apps.ReplicaExited)
	assert.Equal(t, "exit status 3", o.Exit)
	waitLog(t, rt, spec.ReplicaID, "failing on purpose")
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		select {
		case ref := <-rt.Changes():
			assert.Equal(c, apps.Ref{Tenant: "acme", App: "broken"}, ref)
		default:
			assert.Fail(c, "no change notified")
		}
	}, waitLimit, 10*time.Millisecond)

	// An exited replica stays listed, across restarts, until removed.
	require.NoError(t, rt.Close())
	rt2 := open(t, cfg)
	o = get(rt2, spec.ReplicaID)
	assert.Equal(t, apps.ReplicaExited, o.State)
	assert.Equal(t, "exit status 3", o.Exit)
	require.ErrorIs(t, rt2.Start(t.Context(), spec), ErrExited)
	require.NoError(t, rt2.Remove(t.Context(), spec.ReplicaID))
	assert.Empty(t, must(rt2.List(t.Context(), "acme", "broken")))
	assert.NoDirExists(t, filepath.Join(cfg.StateDir, dirName(spec.ReplicaID)))
}

func TestStopHonoursSIGTERM(t *testing.T) {
	t.Parallel()
	rt := open(t, testConfig(t))
	spec := testapp(t, "polite", "r1", map[string]string{"SHUTDOWN_DELAY": "300ms"})
	require.NoError(t, rt.Start(t.Context(), spec))
	waitState(t, rt, spec.ReplicaID, apps.ReplicaReady)

	began := time.Now()
	require.NoError(t, rt.Stop(t.Context(), spec.ReplicaID, 20*time.Second))
	require.NoError(t, rt.Stop(t.Context(), spec.ReplicaID, 20*time.Second)) // idempotent
	assert.Equal(t, apps.ReplicaStopping, get(rt, spec.ReplicaID).State)
	require.ErrorIs(t, rt.Remove(t.Context(), spec.ReplicaID), ErrRunning)

	o := waitState(t, rt, spec.ReplicaID, apps.ReplicaExited)
	assert.Equal(t, "exit status 0", o.Exit)
	assert.Less(t, time.Since(began), 20*time.Second)
	waitLog(t, rt, spec.ReplicaID, "got SIGTERM")

	// Stopping an exited or unknown replica is not an error.
	require.NoError(t, rt.Stop(t.Context(), spec.ReplicaID, time.Second))
	require.NoError(t, rt.Stop(t.Context(), deployer.ReplicaID{Tenant: "acme", App: "nope", Revision: "x", Replica: "y"}, time.Second))
}

func TestStopKillsAfterGrace(t *testing.T) {
	t.Parallel()
	const grace = 300 * time.Millisecond
	rt := open(t, testConfig(t))
	spec := testapp(t, "stubborn", "r1", map[string]string{"IGNORE_SIGTERM": "1"})
	require.NoError(t, rt.Start(t.Context(), spec))
	waitState(t, rt, spec.ReplicaID, apps.ReplicaReady)

	began := time.Now()
	require.NoError(t, rt.Stop(t.Context(), spec.ReplicaID, grace))
	o := waitState(t, rt, spec.ReplicaID, apps.ReplicaExited)
	assert.Equal(t, "signal: killed", o.Exit)
	assert.GreaterOrEqual(t, time.Since(began), grace)
	waitLog(t, rt, spec.ReplicaID, "got SIGTERM")
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

	// What a platform that died right after starting the process leaves:
	// meta.json without a pid, and a session leader whose env names it.
	port, err := freePort("127.0.0.1")
	require.NoError(t, err)
	dir := filepath.Join(cfg.StateDir, dirName(id))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	addr := "127.0.0.1:" + strconv.Itoa(port)
	require.NoError(t, writeMeta(dir, meta{Tenant: id.Tenant, App: id.App, Revision: id.Revision, Replica: id.Replica,
		Command: spec.Command, Port: port, Address: addr}))
	cmd := exec.Command(spec.Command[0])
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "DISCOVERY_TENANT=acme",
		"DISCOVERY_APP=orphan", "DISCOVERY_REVISION=9d00cc18", "DISCOVERY_REPLICA=r1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-done })

	rt := open(t, cfg)
	assert.Equal(t, cmd.Process.Pid, pidOf(rt, id))
	o := waitState(t, rt, id, apps.ReplicaReady)
	assert.Equal(t, addr, o.Address)
	saved, err := readMeta(dir)
	require.NoError(t, err)
	assert.Equal(t, cmd.Process.Pid, saved.PID)

	require.NoError(t, rt.Stop(t.Context(), id, 5*time.Second))
	o = waitState(t, rt, id, apps.ReplicaExited)
	assert.NotEmpty(t, o.Exit)
}

func TestReplicaLostBeforeStartIsExited(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	noPID := deployer.ReplicaID{Tenant: "acme", App: "arena", Revision: "9d00cc18", Replica: "nopid"}
	noMeta := deployer.ReplicaID{Tenant: "acme", App: "arena", Revision: "9d00cc18", Replica: "nometa"}
	for _, id := range []deployer.ReplicaID{noPID, noMeta} {
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

func TestStartIsIdempotent(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	rt := open(t, cfg)
	spec := testapp(t, "arena", "r1", nil)
	require.NoError(t, rt.Start(t.Context(), spec))
	pid := pidOf(rt, spec.ReplicaID)
	require.NoError(t, rt.Start(t.Context(), spec))
	assert.Equal(t, pid, pidOf(rt, spec.ReplicaID))
	assert.Len(t, must(rt.List(t.Context(), "acme", "arena")), 1)
	entries, err := os.ReadDir(cfg.StateDir)
	require.NoError(t, err)
	assert.Len(t, entries, 1)

	// Once exited and removed, the ID may start again: a new process.
	require.NoError(t, rt.Stop(t.Context(), spec.ReplicaID, time.Second))
	waitState(t, rt, spec.ReplicaID, apps.ReplicaExited)
	require.ErrorIs(t, rt.Start(t.Context(), spec), ErrExited)
	require.NoError(t, rt.Remove(t.Context(), spec.ReplicaID))
	require.NoError(t, rt.Start(t.Context(), spec))
	assert.NotEqual(t, pid, pidOf(rt, spec.ReplicaID))
	waitState(t, rt, spec.ReplicaID, apps.ReplicaReady)
}

func TestStartRejectsBadSpecs(t *testing.T) {
	t.Parallel()
	rt := open(t, testConfig(t))
	spec := deployer.ReplicaSpec{
		ReplicaID: deployer.ReplicaID{Tenant: "acme", App: "arena", Revision: "9d00cc18", Replica: "r1"},
		Image:     "example/arena:0.2",
	}
	err := rt.Start(t.Context(), spec)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `process runtime needs a command; image "example/arena:0.2" has no command`)

	spec.Command = []string{"/nonexistent/server"}
	require.Error(t, rt.Start(t.Context(), spec))
	assert.Empty(t, must(rt.List(t.Context(), "acme", "arena")), "a failed start leaves nothing behind")

	spec.Command = []string{"true"}
	spec.Replica = "../../etc"
	require.Error(t, rt.Start(t.Context(), spec))

	_, err = rt.Logs(t.Context(), spec.ReplicaID, 0)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestLogsAreBounded(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	cfg := testConfig(t)
	cfg.LogLimit = limit
	rt := open(t, cfg)
	// A flood far past the limit, then (after a trim had time to happen) a
	// last line, then silence.
	spec := shell("chatty", "yes line | head -c 3000000; sleep 0.5; echo done; sleep 30")
	require.NoError(t, rt.Start(t.Context(), spec))
	waitState(t, rt, spec.ReplicaID, apps.ReplicaStarting) // no port opened: never ready

	path := filepath.Join(cfg.StateDir, dirName(spec.ReplicaID), logFile)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		st, err := os.Stat(path)
		if !assert.NoError(c, err) {
			return
		}
		assert.LessOrEqual(c, st.Size(), int64(2*limit))
		b, err := rt.Logs(context.Background(), spec.ReplicaID, 0)
		assert.NoError(c, err)
		assert.True(c, strings.HasSuffix(string(b), "line\ndone\n"), "log ends %q", tailString(b))
	}, waitLimit, 10*time.Millisecond)

	b, err := rt.Logs(t.Context(), spec.ReplicaID, 0)
	require.NoError(t, err)
	assert.LessOrEqual(t, len(b), limit)
	whole, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(whole), "line\n"), "the trimmed log starts on a whole line")
}

func TestLogsTail(t *testing.T) {
	t.Parallel()
	rt := open(t, testConfig(t))
	spec := shell("quiet", `printf 'aaa\nbbb\nccc\n'; sleep 30`)
	require.NoError(t, rt.Start(t.Context(), spec))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		b, err := rt.Logs(context.Background(), spec.ReplicaID, 4)
		assert.NoError(c, err)
		assert.Equal(c, "ccc\n", string(b))
	}, waitLimit, 10*time.Millisecond)
	b, err := rt.Logs(t.Context(), spec.ReplicaID, 0)
	require.NoError(t, err)
	assert.Equal(t, "aaa\nbbb\nccc\n", string(b))
	b, err = rt.Logs(t.Context(), spec.ReplicaID, 1000)
	require.NoError(t, err)
	assert.Equal(t, "aaa\nbbb\nccc\n", string(b))
}

func TestParseStat(t *testing.T) {
	// comm may contain spaces and parentheses.
	line := "4242 (my (odd) app) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	st, err := parseStat([]byte(line))
	require.NoError(t, err)
	assert.Equal(t, procStat{state: 'S', session: 4242, startTicks: 987654}, st)
	_, err = parseStat([]byte("garbage"))
	assert.Error(t, err)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func tailString(b []byte) string {
	return string(b[max(len(b)-20, 0):])
}
