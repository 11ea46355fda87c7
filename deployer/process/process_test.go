package process

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
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
	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
)

func TestMain(m *testing.M) {
	if job := os.Getenv(helperEnv); job != "" {
		// This process is a platform started by a test (see startInHelper).
		os.Exit(runHelper(job))
	}
	code := m.Run()
	build.Cleanup()
	os.Exit(code)
}

const waitLimit = 10 * time.Second

// testConfig is a fast-probing config on a fresh state dir.
func testConfig(t *testing.T) Config {
	return Config{
		StateDir:      t.TempDir(),
		Supervisor:    build.Supervisor(t),
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
		ReplicaID: apps.ReplicaID{Tenant: "acme", App: app, Revision: "9d00cc18", Replica: replica},
		Command:   []string{build.Binary(t)},
		Env:       env,
	}
}

func shell(app, script string) deployer.ReplicaSpec {
	return deployer.ReplicaSpec{
		ReplicaID: apps.ReplicaID{Tenant: "acme", App: app, Revision: "9d00cc18", Replica: "r1"},
		Command:   []string{"sh", "-c", script},
	}
}

func get(rt *Runtime, id apps.ReplicaID) deployer.Observed {
	list, _ := rt.List(context.Background(), id.Tenant, id.App)
	for _, o := range list {
		if o.ReplicaID == id {
			return o
		}
	}
	return deployer.Observed{}
}

func waitState(t *testing.T, rt *Runtime, id apps.ReplicaID, want apps.ReplicaState) deployer.Observed {
	t.Helper()
	var o deployer.Observed
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		o = get(rt, id)
		assert.Equal(c, want, o.State, "observed %+v", o)
	}, waitLimit, 10*time.Millisecond)
	return o
}

func waitLog(t *testing.T, rt *Runtime, id apps.ReplicaID, want string) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		b, err := rt.Logs(context.Background(), id, 0)
		assert.NoError(c, err)
		assert.Contains(c, string(b), want)
	}, waitLimit, 10*time.Millisecond)
}

// pidOf is the pid of the replica's supervisor.
func pidOf(rt *Runtime, id apps.ReplicaID) int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.reps[id].meta.PID
}

// childOf is the replica process a supervisor runs.
func childOf(t *testing.T, supervisor int) int {
	t.Helper()
	var pid int
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		dirs, _ := filepath.Glob("/proc/[0-9]*")
		for _, d := range dirs {
			p, _ := strconv.Atoi(filepath.Base(d))
			if st, err := readStat(p); err == nil && st.ppid == supervisor && st.state != 'Z' {
				pid = p
				return
			}
		}
		assert.Fail(c, "no child", "supervisor %d", supervisor)
	}, waitLimit, 10*time.Millisecond)
	return pid
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
			sup := pidOf(rt, spec.ReplicaID)
			assert.Equal(t, childOf(t, sup), got.PID, "the replica is its supervisor's child")
			st, err := readStat(sup)
			require.NoError(t, err)
			assert.Equal(t, sup, st.sid, "the supervisor leads its own session, out of the platform's reach")
			st, err = readStat(got.PID)
			require.NoError(t, err)
			assert.Equal(t, [2]int{sup, sup}, [2]int{st.pgrp, st.sid}, "the replica is in its supervisor's process group")
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
	pid := childOf(t, pidOf(rt, spec.ReplicaID))
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
	require.NoError(t, rt.Stop(t.Context(), apps.ReplicaID{Tenant: "acme", App: "nope", Revision: "x", Replica: "y"}, time.Second))
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
		ReplicaID: apps.ReplicaID{Tenant: "acme", App: "arena", Revision: "9d00cc18", Replica: "r1"},
		Image:     "example/arena:0.2",
	}
	err := rt.Start(t.Context(), spec)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `process runtime needs a command; image "example/arena:0.2" has no command`)

	// Not found, not executable, and a start the supervisor itself fails
	// (the kernel refuses the file): each fails Start and leaves nothing.
	notExec := filepath.Join(t.TempDir(), "server")
	require.NoError(t, os.WriteFile(notExec, []byte("not a program"), 0o644))
	badFormat := filepath.Join(t.TempDir(), "server")
	require.NoError(t, os.WriteFile(badFormat, []byte("not a program"), 0o755))
	for _, cmd := range []string{"/nonexistent/server", "no-such-program", notExec, badFormat} {
		spec.Command = []string{cmd}
		require.Error(t, rt.Start(t.Context(), spec), cmd)
		assert.Empty(t, must(rt.List(t.Context(), "acme", "arena")), "a failed start leaves nothing behind")
		assert.Empty(t, must(os.ReadDir(rt.cfg.StateDir)), "a failed start leaves nothing behind")
	}
	spec.Command = []string{badFormat}
	assert.ErrorContains(t, rt.Start(t.Context(), spec), "exec format error")

	spec.Command = []string{"true"}
	spec.Replica = "../../etc"
	require.Error(t, rt.Start(t.Context(), spec))

	_, err = rt.Logs(t.Context(), spec.ReplicaID, 0)
	require.ErrorIs(t, err, ErrNotFound)
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
	assert.Equal(t, procStat{state: 'S', ppid: 1, pgrp: 4242, sid: 4242, startTicks: 987654, cpuTicks: 3, rssPages: 10}, st)
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
