package process

import (
	"bytes"
	"context"
	"fmt"
	"net"
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
	"github.com/discovery-platform/discovery/deployer/process/supervisor"
	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
)

// environ reads a process's environment as it was given at exec.
func environ(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	require.NoError(t, err)
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// Not parallel: it sets an environment variable of the test process.
func TestReplicaEnvironmentIsExactlyItsOwn(t *testing.T) {
	t.Setenv("DISCOVERY_TEST_CANARY", "the platform's own environment leaked")
	cfg := testConfig(t)
	cfg.Env = []string{"PATH=/usr/bin:/bin", "BASE=1", "SHARED=base"}
	rt := open(t, cfg)
	spec := testapp(t, "envy", "r1", map[string]string{"SHARED": "revision", "VERSION": "0.3", "PORT": "1", "HOME": "/root"})
	require.NoError(t, rt.Start(t.Context(), spec))
	o := waitState(t, rt, spec.ReplicaID, apps.ReplicaReady)
	_, port, err := net.SplitHostPort(o.Address)
	require.NoError(t, err)

	work := filepath.Join(cfg.StateDir, dirName(spec.ReplicaID), workDir)
	sup := pidOf(rt, spec.ReplicaID)
	assert.ElementsMatch(t, []string{
		// Config.Env, then the revision's, then the runtime's own.
		"PATH=/usr/bin:/bin", "BASE=1",
		"SHARED=revision", "VERSION=0.3",
		"HOST=127.0.0.1", "PORT=" + port, "HOME=" + work, "TMPDIR=" + work,
		"DISCOVERY_TENANT=acme", "DISCOVERY_APP=envy", "DISCOVERY_REVISION=9d00cc18", "DISCOVERY_REPLICA=r1",
	}, environ(t, childOf(t, sup)))
	assert.Equal(t, []string{"GOMAXPROCS=1"}, environ(t, sup), "the supervisor gets none of the platform's environment")
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(childOf(t, sup)) + "/cwd")
	require.NoError(t, err)
	assert.Equal(t, work, cwd)
}

// fakeUsers gives each tenant a uid (and the same gid).
type fakeUsers map[string]int

func (u fakeUsers) User(_ context.Context, tenant string) (int, int, error) {
	uid, ok := u[tenant]
	if !ok {
		return 0, 0, fmt.Errorf("no user for tenant %s", tenant)
	}
	return uid, uid, nil
}

// traversableDir is a temp dir others may traverse (t.TempDir's are 0700).
func traversableDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "discovery-process-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o711))
	return dir
}

func TestReplicaRunsAsItsTenantsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root can run a replica as another uid (the platform does, in production)")
	}
	t.Parallel()
	const nobody, otherUID = 65534, 65533
	cfg := testConfig(t)
	cfg.StateDir = filepath.Join(traversableDir(t), "replicas")
	cfg.Users = fakeUsers{"acme": nobody, "other": otherUID}
	rt := open(t, cfg)

	// Another tenant's replica, whose files the first must not reach.
	other := shell("neighbour", "exec sleep 600")
	other.Tenant = "other"
	require.NoError(t, rt.Start(t.Context(), other))
	otherDir := filepath.Join(cfg.StateDir, dirName(other.ReplicaID))

	// The replica tries to read what it must not, and to write its home.
	spec := shell("curious", `for f in "$@"; do
		if [ -d "$f" ]; then ls "$f" >/dev/null 2>&1 && r=READ || r=denied
		else cat "$f" >/dev/null 2>&1 && r=READ || r=denied; fi
		echo "$r $f"
	done
	touch "$HOME/mine" && echo "wrote home"
	echo checked; exec sleep 600`)
	dir := filepath.Join(cfg.StateDir, dirName(spec.ReplicaID))
	forbidden := []string{
		cfg.StateDir, dir, // listing
		filepath.Join(dir, metaFile), filepath.Join(dir, supervisor.SpecFile),
		filepath.Join(dir, supervisor.LogFile), filepath.Join(dir, supervisor.PIDFile),
		filepath.Join(otherDir, workDir), filepath.Join(otherDir, supervisor.LogFile),
	}
	spec.Command = append(spec.Command, "sh")
	spec.Command = append(spec.Command, forbidden...)
	require.NoError(t, rt.Start(t.Context(), spec))
	waitLog(t, rt, spec.ReplicaID, "checked")
	b, err := rt.Logs(t.Context(), spec.ReplicaID, 0)
	require.NoError(t, err)
	for _, f := range forbidden {
		assert.Contains(t, string(b), "denied "+f+"\n")
	}
	assert.NotContains(t, string(b), "READ")
	assert.Contains(t, string(b), "wrote home")

	// It runs as the tenant's uid and gid, with no supplementary groups, in
	// its work dir.
	child := childOf(t, pidOf(rt, spec.ReplicaID))
	status, err := os.ReadFile("/proc/" + strconv.Itoa(child) + "/status")
	require.NoError(t, err)
	assert.Contains(t, string(status), fmt.Sprintf("\nUid:\t%d\t%d\t%d\t%d\n", nobody, nobody, nobody, nobody))
	assert.Contains(t, string(status), fmt.Sprintf("\nGid:\t%d\t%d\t%d\t%d\n", nobody, nobody, nobody, nobody))
	assert.Regexp(t, `\nGroups:\s*\n`, string(status))
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(child) + "/cwd")
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, workDir), cwd)

	// On disk: traversable dirs, a private work dir, root's 0600 files.
	mode := func(path string) (os.FileMode, uint32) {
		st, err := os.Stat(path)
		require.NoError(t, err)
		return st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Uid
	}
	for path, want := range map[string]os.FileMode{
		cfg.StateDir: 0o711, dir: 0o711,
		filepath.Join(dir, metaFile): 0o600, filepath.Join(dir, supervisor.SpecFile): 0o600,
		filepath.Join(dir, supervisor.LogFile): 0o600, filepath.Join(dir, supervisor.PIDFile): 0o600,
	} {
		m, uid := mode(path)
		assert.Equal(t, [2]any{want, uint32(0)}, [2]any{m, uid}, path)
	}
	m, uid := mode(filepath.Join(dir, workDir))
	assert.Equal(t, [2]any{os.FileMode(0o700), uint32(nobody)}, [2]any{m, uid}, "work dir")

	// A tenant without a user cannot start anything.
	stranger := shell("stranger", "exec sleep 600")
	stranger.Tenant = "stranger"
	err = rt.Start(t.Context(), stranger)
	require.ErrorContains(t, err, "no user for tenant stranger")
	require.ErrorIs(t, err, deployer.ErrRuntimeUnavailable, "retried, not a crash of the revision")
}

func TestNewChecksOthersCanReachTheStateDir(t *testing.T) {
	t.Parallel()
	// t.TempDir() is 0755 in a 0700 directory of the test's own.
	private := filepath.Dir(t.TempDir())
	cfg := testConfig(t)
	cfg.StateDir = filepath.Join(t.TempDir(), "replicas")
	cfg.Users = fakeUsers{}
	_, err := New(cfg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), private+" (above the state dir")
	assert.Contains(t, err.Error(), "not traversable by other users")

	// Without Users nothing is asked of it.
	cfg.Users = nil
	rt, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, rt.Close())
}

// Not parallel: it changes PATH.
func TestNewFindsTheSupervisor(t *testing.T) {
	bin := build.Supervisor(t)
	empty := t.TempDir()
	t.Setenv("PATH", empty)
	_, err := New(Config{StateDir: t.TempDir()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "discovery-supervisor in $PATH")
	assert.Contains(t, err.Error(), "make build")

	_, err = New(Config{StateDir: t.TempDir(), Supervisor: "/nonexistent/discovery-supervisor"})
	require.ErrorContains(t, err, "/nonexistent/discovery-supervisor")

	require.NoError(t, os.Symlink(bin, filepath.Join(empty, "discovery-supervisor")))
	rt, err := New(Config{StateDir: t.TempDir()})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(empty, "discovery-supervisor"), rt.cfg.Supervisor)
	require.NoError(t, rt.Close())
}

// TestSupervisorKillsWhatTheReplicaLeftBehind: when the replica exits, the
// rest of its process group dies with it, and a grandchild holding the output
// pipe does not keep the exit from being seen.
func TestSupervisorKillsWhatTheReplicaLeftBehind(t *testing.T) {
	t.Parallel()
	rt := open(t, testConfig(t))
	spec := shell("parent", `sleep 600 & echo "left $!"; read -r _ </dev/null; exit 4`)
	require.NoError(t, rt.Start(t.Context(), spec))
	o := waitState(t, rt, spec.ReplicaID, apps.ReplicaExited)
	assert.Equal(t, "exit status 4", o.Exit)
	b, err := rt.Logs(t.Context(), spec.ReplicaID, 0)
	require.NoError(t, err)
	_, after, ok := bytes.Cut(b, []byte("left "))
	require.True(t, ok, "log: %q", b)
	left, err := strconv.Atoi(strings.TrimSpace(string(after)))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return !alive(left) }, waitLimit, 10*time.Millisecond)
}
