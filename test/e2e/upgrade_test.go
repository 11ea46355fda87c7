package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/internal/testkit/platformtest"
)

func buildVersion(t *testing.T, out, version string) {
	t.Helper()
	b, err := exec.Command("go", "build", "-race", "-ldflags", "-X main.version="+version, "-o", out,
		"github.com/discovery-platform/discovery/cmd/platform").CombinedOutput()
	require.NoError(t, err, string(b))
}

// get returns url's body, "" on any error.
func get(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func (f *Framework) version() (string, int) {
	resp, err := http.Get("http://" + f.Addr + "/version")
	if err != nil {
		return "", 0
	}
	defer resp.Body.Close()
	var v struct {
		Version string
		PID     int
	}
	_ = json.NewDecoder(resp.Body).Decode(&v)
	return v.Version, v.PID
}

// TestSIGHUPUpgradeKeepsProxiedSessions: the platform binary is replaced and
// sent SIGHUP; the new process takes the sockets (and the embedded etcd), new
// sessions go through it, and the session the old process proxies lives on
// until it ends, after which the old process exits.
func TestSIGHUPUpgradeKeepsProxiedSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade: skipped with -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "platform")
	buildVersion(t, bin, "v1")
	require.NoError(t, platformtest.SupervisorBeside(bin))
	f := New(t)
	f.Binary = bin
	metrics := "http://" + platformtest.Addr(t) + "/metrics"
	f.Args = []string{"--metrics-addr", strings.TrimSuffix(strings.TrimPrefix(metrics, "http://"), "/metrics")}
	f.Start()
	v, oldPID := f.version()
	require.Equal(t, "v1", v)
	require.Equal(t, 201, f.Call("POST", "/apps", map[string]any{"name": "live", "replicas": 1, "health_path": "/healthz"}, nil))
	rev := f.Deploy("live", nil)
	f.WaitState("live", rev, "active", 60*time.Second)
	old, err := open(t, f, "live")
	require.NoError(t, err)
	f.Eventually("--metrics-addr shows the old process's session", 10*time.Second, func() bool {
		return strings.Contains(get(metrics), "discovery_gateway_connections 1")
	})

	buildVersion(t, bin+".new", "v2")
	require.NoError(t, os.Rename(bin+".new", bin))
	require.NoError(t, f.Process().Signal(syscall.SIGHUP))

	f.Eventually("the new binary answers on the same port", 90*time.Second, func() bool {
		v, pid := f.version()
		return v == "v2" && pid != oldPID
	})
	fresh, err := open(t, f, "live")
	require.NoError(t, err, "new sessions go through the new process")
	require.NoError(t, fresh.close())
	// The metrics socket was handed over too: the new process, which holds
	// no session, answers on it while the old one still relays its own.
	f.Eventually("the new process serves --metrics-addr", 30*time.Second, func() bool {
		return strings.Contains(get(metrics), "discovery_gateway_connections 0")
	})

	select {
	case err := <-old.done:
		t.Fatalf("the session proxied by the old process was cut by the upgrade: %v", err)
	default:
	}
	assert.True(t, f.Alive(), "the old process stays while it holds a session")
	require.NoError(t, old.close(), "the old session ran to its own end")
	select {
	case <-f.Process().Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the old process did not exit once its last session ended")
	}
	v, _ = f.version()
	assert.Equal(t, "v2", v, "the new process serves on")
	assert.Len(t, f.Running(rev), 1, "the replica lived through the upgrade")
}
