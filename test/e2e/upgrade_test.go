package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
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

	"github.com/discovery-platform/discovery/internal/testkit/platformtest"
	"github.com/discovery-platform/discovery/internal/testkit/proctest"
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

// gatewayHolders maps each platform process (found by the test's marker)
// that holds established connections on the gateway's port to how many.
func gatewayHolders(t *testing.T, f *Framework) map[int]int {
	t.Helper()
	_, portStr, err := net.SplitHostPort(f.Gateway)
	require.NoError(t, err)
	port, err := strconv.Atoi(portStr)
	require.NoError(t, err)
	established := map[string]bool{} // socket inodes of connections to the port
	for _, tab := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(tab)
		require.NoError(t, err)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 10 || fields[3] != "01" {
				continue
			}
			local := fields[1][strings.LastIndexByte(fields[1], ':')+1:]
			if p, err := strconv.ParseInt(local, 16, 32); err == nil && int(p) == port {
				established[fields[9]] = true
			}
		}
	}
	out := map[int]int{}
	for pid, p := range proctest.Find(f.Marker) {
		if p.Replica != "" {
			continue
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if err == nil && established[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] {
				out[pid]++
			}
		}
	}
	return out
}

// TestSeveralGatewayProcessesShareThePortAndHandOverTogether: with
// --gateway-procs 3 three processes accept on the gateway's one socket and
// sessions spread over them; a SIGHUP upgrade starts the new process with
// three of its own while every session held by the old three plays on, and
// the old ones exit once their sessions are over.
func TestSeveralGatewayProcessesShareThePortAndHandOverTogether(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade: skipped with -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "platform")
	buildVersion(t, bin, "v1")
	require.NoError(t, platformtest.SupervisorBeside(bin))
	f := New(t)
	f.Binary = bin
	f.Args = []string{"--gateway-procs", "3"}
	f.Start()
	_, oldPID := f.version()
	require.Equal(t, 201, f.Call("POST", "/apps", map[string]any{"name": "many", "replicas": 1, "health_path": "/healthz"}, nil))
	rev := f.Deploy("many", nil)
	f.WaitState("many", rev, "active", 60*time.Second)

	var held []*session
	for range 30 {
		s, err := open(t, f, "many")
		require.NoError(t, err)
		held = append(held, s)
	}
	var old map[int]int
	f.Eventually("30 sessions held by the gateway processes", 10*time.Second, func() bool {
		old = gatewayHolders(t, f)
		n := 0
		for _, c := range old {
			n += c
		}
		return n == 30
	})
	t.Logf("sessions per gateway process before the upgrade: %v", old)
	assert.GreaterOrEqual(t, len(old), 2, "the processes share the sessions")

	buildVersion(t, bin+".new", "v2")
	require.NoError(t, os.Rename(bin+".new", bin))
	require.NoError(t, f.Process().Signal(syscall.SIGHUP))
	f.Eventually("the new binary answers on the same port", 90*time.Second, func() bool {
		v, pid := f.version()
		return v == "v2" && pid != oldPID
	})
	var fresh []*session
	for range 30 {
		s, err := open(t, f, "many")
		require.NoError(t, err, "new sessions go through the new processes")
		fresh = append(fresh, s)
	}
	var after map[int]int
	f.Eventually("the new sessions are held by new processes", 30*time.Second, func() bool {
		after = gatewayHolders(t, f)
		n := 0
		for pid, c := range after {
			if _, wasOld := old[pid]; !wasOld {
				n += c
			}
		}
		return n >= 30
	})
	t.Logf("sessions per gateway process after the upgrade: %v", after)
	for _, s := range held {
		select {
		case err := <-s.done:
			t.Fatalf("a session held by an old gateway process was cut by the upgrade: %v", err)
		default:
		}
	}
	for _, s := range append(held, fresh...) {
		require.NoError(t, s.close(), "every session ran to its own end")
	}
	f.Eventually("the old gateway processes exit once their sessions are over", 60*time.Second, func() bool {
		for pid := range old {
			if proctest.Alive(pid) {
				return false
			}
		}
		return true
	})
	assert.Len(t, f.Running(rev), 1, "the replica lived through the upgrade")
}
