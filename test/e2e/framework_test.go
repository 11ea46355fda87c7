package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/internal/testkit/kubetest"
	"github.com/discovery-platform/discovery/internal/testkit/proctest"
	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
)

// The framework builds the real platform binary once and runs it as a separate
// process, so a test can SIGKILL it the way an operator's machine would.

var (
	platformOnce sync.Once
	platformBin  string
	platformErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	kubetest.StopShared()
	if platformBin != "" {
		_ = os.RemoveAll(filepath.Dir(platformBin))
	}
	build.Cleanup()
	os.Exit(code)
}

func platformBinary(t *testing.T) string {
	platformOnce.Do(func() {
		dir, err := os.MkdirTemp("", "discovery-e2e-")
		if err != nil {
			platformErr = err
			return
		}
		// Replicas run as other uids: they must reach the supervisor and
		// the testapp binaries.
		if err := os.Chmod(dir, 0o755); err != nil {
			platformErr = err
			return
		}
		out := filepath.Join(dir, "platform")
		cmd := exec.Command("go", "build", "-race", "-o", out, "github.com/discovery-platform/discovery/cmd/platform")
		if b, err := cmd.CombinedOutput(); err != nil {
			platformErr = fmt.Errorf("build platform: %v\n%s", err, b)
			return
		}
		cmd = exec.Command("go", "build", "-o", filepath.Join(dir, "discovery-supervisor"), "github.com/discovery-platform/discovery/cmd/discovery-supervisor")
		if b, err := cmd.CombinedOutput(); err != nil {
			platformErr = fmt.Errorf("build supervisor: %v\n%s", err, b)
			return
		}
		platformBin = out
	})
	require.NoError(t, platformErr)
	return platformBin
}

// Framework is one platform installation: a data dir and a port, with the
// platform process started, killed and restarted on it.
type Framework struct {
	t       *testing.T
	DataDir string
	Addr    string
	// Gateway is the gateway's host:port.
	Gateway string
	Marker  string
	App     string // testapp binary
	// Token is the bootstrap admin token the platform wrote on first start.
	Token string
	// Args are extra platform flags; Env extra variables of its environment.
	Args []string
	Env  []string
	// Binary is the platform binary to run (default: the one built for the run).
	Binary string
	// TLS is the client side of a platform started with --tls-cert: the
	// framework then calls the API over https, trusting this configuration.
	TLS    *tls.Config
	client *http.Client
	once   sync.Once // makes client
	cmd    *exec.Cmd
	done   chan struct{}
	// logs is where the platform's stderr goes: a file, not a pipe, so that
	// a process it hands its sockets to (an in-place upgrade) cannot keep
	// Wait from returning.
	logs string
	// started: the platform has answered once, on Addr and Gateway.
	started bool
}

// New prepares an installation; Start runs the platform on it.
func New(t *testing.T) *Framework {
	f := &Framework{t: t, DataDir: traversable(t), Marker: proctest.Marker(t), App: build.Binary(t)}
	f.logs = filepath.Join(t.TempDir(), "platform.log")
	f.Addr, f.Gateway = freeAddr(t), freeAddr(t)
	t.Cleanup(func() {
		f.Kill()
		proctest.KillAll(f.Marker)
		if t.Failed() {
			b, _ := os.ReadFile(f.logs)
			if len(b) > 40000 {
				b = b[len(b)-40000:]
			}
			t.Logf("platform log (tail):\n%s", b)
		}
	})
	return f
}

// supervisorBeside puts the discovery-supervisor binary next to a platform
// binary built elsewhere, where the process runtime looks for it.
func supervisorBeside(t *testing.T, bin string) {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(platformBinary(t)), "discovery-supervisor"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(bin), "discovery-supervisor"), b, 0o755))
}

// traversable is a fresh data dir whose ancestors replicas running as other
// uids can traverse (t.TempDir's own parent is 0700).
func traversable(t *testing.T) string {
	d := t.TempDir()
	require.NoError(t, os.Chmod(filepath.Dir(d), 0o711))
	return d
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// Start runs the platform and waits until its API answers. A port freeAddr
// found free can be taken before the first start binds it: then the
// installation moves to fresh ports and starts again. Later starts keep
// their ports (clients hold URLs with them).
func (f *Framework) Start() {
	f.t.Helper()
	for attempt := 1; !f.launch(); attempt++ {
		b, _ := os.ReadFile(f.logs)
		if f.started || attempt == 3 || !bytes.Contains(b, []byte("address already in use")) {
			f.t.Fatal("the platform exited before its API answered")
		}
		f.t.Logf("attempt %d: a port was taken, starting again on fresh ports", attempt)
		f.Addr, f.Gateway = freeAddr(f.t), freeAddr(f.t)
	}
	f.started = true
	if f.Token == "" {
		b, err := os.ReadFile(filepath.Join(f.DataDir, "admin.token"))
		require.NoError(f.t, err, "the first start writes the admin token")
		f.Token = strings.TrimSpace(string(b))
	}
}

// launch runs the platform process and reports whether its API answered
// (false: it exited first).
func (f *Framework) launch() bool {
	f.t.Helper()
	bin := f.Binary
	if bin == "" {
		bin = platformBinary(f.t)
	}
	cmd := exec.Command(bin, "--addr", f.Addr, "--gateway-addr", f.Gateway, "--data-dir", f.DataDir,
		"--probe-interval", "100ms", "--resync", "1s", "--log-level", "debug", "--endpoint-rate", "0", "--reservations-per-addr", "0",
		"--replica-env", f.Marker)
	cmd.Args = append(cmd.Args, f.Args...)
	cmd.Env = append(append(os.Environ(), f.Marker), f.Env...)
	logf, err := os.OpenFile(f.logs, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(f.t, err)
	cmd.Stderr = logf
	require.NoError(f.t, cmd.Start())
	_ = logf.Close() // the child has its own copy
	f.cmd, f.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(f.done)
	exited := false
	f.Eventually("the API answers", 60*time.Second, func() bool {
		if exited = !f.Alive(); exited {
			return true
		}
		resp, err := f.HTTP().Get(f.APIURL() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if exited {
		f.cmd = nil
	}
	return !exited
}

// Alive reports whether the platform process runs.
func (f *Framework) Alive() bool {
	if f.cmd == nil {
		return false
	}
	select {
	case <-f.done:
		return false
	default:
		return true
	}
}

// Kill SIGKILLs the platform (not its replicas) and waits for it to be gone.
func (f *Framework) Kill() {
	if f.cmd == nil {
		return
	}
	_ = f.cmd.Process.Signal(syscall.SIGKILL)
	<-f.done
	f.cmd = nil
}

// Stop sends SIGTERM and waits for a graceful exit.
func (f *Framework) Stop() {
	f.t.Helper()
	require.NoError(f.t, f.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-f.done:
	case <-time.After(30 * time.Second):
		f.t.Fatal("platform did not stop within 30s of SIGTERM")
	}
	require.Equal(f.t, 0, f.cmd.ProcessState.ExitCode(), "graceful stop exits 0")
	f.cmd = nil
}

// APIURL is the API's base URL: https when f.TLS is set.
func (f *Framework) APIURL() string {
	if f.TLS != nil {
		return "https://" + f.Addr
	}
	return "http://" + f.Addr
}

// HTTP is the client that reaches the API (and the gateway).
func (f *Framework) HTTP() *http.Client {
	f.once.Do(func() {
		f.client = http.DefaultClient
		if f.TLS != nil {
			f.client = &http.Client{Transport: &http.Transport{TLSClientConfig: f.TLS}, Timeout: 30 * time.Second}
			f.t.Cleanup(f.client.CloseIdleConnections)
		}
	})
	return f.client
}

// Eventually polls cond until it holds or the deadline passes.
func (f *Framework) Eventually(what string, within time.Duration, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out after %s waiting for: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// Call does an API request on the default tenant (path is under
// /api/v1/tenants/default) as the admin, and decodes the JSON answer into out.
func (f *Framework) Call(method, path string, body any, out any) int {
	f.t.Helper()
	return f.CallAs(f.Token, method, "/api/v1/tenants/default"+path, body, out)
}

// CallAs does an API request (path from /api/v1 on) with token and decodes
// the JSON answer into out.
func (f *Framework) CallAs(token, method, path string, body any, out any) int {
	f.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(f.t, err)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, f.APIURL()+path, r)
	require.NoError(f.t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := f.HTTP().Do(req)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		require.NoError(f.t, json.Unmarshal(b, out), string(b))
	}
	if resp.StatusCode >= 300 {
		f.t.Logf("%s %s -> %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return resp.StatusCode
}

// Revision is the API's view of a revision.
type Revision struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Reason   string `json:"reason"`
	Replicas []struct {
		ID       string `json:"id"`
		State    string `json:"state"`
		Address  string `json:"address"`
		Stopping bool   `json:"stopping"`
	} `json:"replicas"`
}

// Revisions lists an app's revisions by id.
func (f *Framework) Revisions(app string) map[string]Revision {
	var out struct{ Revisions []Revision }
	if f.Call("GET", "/apps/"+app+"/revisions", nil, &out) != 200 {
		return nil
	}
	m := map[string]Revision{}
	for _, r := range out.Revisions {
		m[r.ID] = r
	}
	return m
}

// Deploy deploys the testapp with env and returns the revision id.
func (f *Framework) Deploy(app string, env map[string]string) string {
	var rev Revision
	require.Equal(f.t, 202, f.Call("POST", "/apps/"+app+"/revisions", map[string]any{"command": []string{f.App}, "env": env}, &rev))
	return rev.ID
}

// WaitState waits for a revision to reach a state.
func (f *Framework) WaitState(app, rev, state string, within time.Duration) Revision {
	f.t.Helper()
	var got Revision
	f.Eventually(fmt.Sprintf("revision %s %s", rev, state), within, func() bool {
		got = f.Revisions(app)[rev]
		return got.State == state
	})
	return got
}

// Running maps the replica ids of a revision to the pids really running.
func (f *Framework) Running(rev string) map[string]int {
	f.t.Helper()
	procs, dup := proctest.Replicas(f.Marker)
	require.Empty(f.t, dup, "a replica id runs twice")
	out := map[string]int{}
	for id, p := range procs {
		if p.Revision == rev {
			out[id] = p.PID
		}
	}
	return out
}

// Endpoint is get-endpoint's answer.
type Endpoint struct {
	Endpoint string `json:"endpoint"`
	URL      string `json:"url"`
	Revision string `json:"revision"`
	Replica  string `json:"replica"`
}

// GetEndpoint calls the public get-endpoint; it returns the status too.
func (f *Framework) GetEndpoint(app string) (Endpoint, int) {
	var ep Endpoint
	resp, err := f.HTTP().Get(f.APIURL() + "/api/v1/tenants/default/apps/" + app + "/endpoint")
	if err != nil {
		return ep, 0
	}
	defer resp.Body.Close()
	if resp.StatusCode == 200 {
		_ = json.NewDecoder(resp.Body).Decode(&ep)
	}
	return ep, resp.StatusCode
}

func newRequest(method, url, body, token string) (*http.Request, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err == nil && token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req, err
}

func do(t *testing.T, req *http.Request) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func doBody(t *testing.T, req *http.Request) string {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
