package main

import (
	"bytes"
	"context"
	"fmt"
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

	"github.com/discovery-platform/discovery/client"
	"github.com/discovery-platform/discovery/internal/testkit/proctest"
	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
)

// The tests drive the real dsh binary against the real platform binary
// (embedded etcd, process runtime), both built once per test binary.

var (
	binOnce                     sync.Once
	binDir, dshBin, platformBin string
	binErr                      error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	build.Cleanup()
	os.Exit(code)
}

// binaries builds dsh and the platform on first use, with the process
// runtime's discovery-supervisor beside the platform (where it looks for
// it). Replicas run as other uids when the tests run as root: the directory
// is theirs to read.
func binaries(t *testing.T) (dsh, platform string) {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "dsh-test-"); binErr != nil {
			return
		}
		if binErr = os.Chmod(binDir, 0o755); binErr != nil {
			return
		}
		dshBin, platformBin = filepath.Join(binDir, "dsh"), filepath.Join(binDir, "platform")
		for out, pkg := range map[string]string{dshBin: module + "/cmd/dsh", platformBin: module + "/cmd/platform",
			filepath.Join(binDir, "discovery-supervisor"): build.SupervisorPackage} {
			if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
				binErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
				return
			}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return dshBin, platformBin
}

const module = "github.com/discovery-platform/discovery"

// platform is one running platform with its own data dir and ports.
type platform struct {
	URL     string
	DataDir string
	// Token is the bootstrap admin token.
	Token  string
	Marker string
	cmd    *exec.Cmd
	done   chan struct{}
	log    bytes.Buffer
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startPlatform runs the platform and waits for /readyz; everything it and
// its replicas started is killed at cleanup. A port freeAddr found free can
// be taken before the platform binds it: then it starts again on fresh ports.
func startPlatform(t *testing.T) *platform {
	t.Helper()
	for attempt := 1; ; attempt++ {
		p, err := launchPlatform(t)
		if err == nil {
			return p
		}
		if attempt == 3 || !strings.Contains(p.log.String(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("attempt %d: a port was taken, starting again: %v", attempt, err)
	}
}

func launchPlatform(t *testing.T) (*platform, error) {
	_, bin := binaries(t)
	p := &platform{DataDir: traversable(t), Marker: proctest.Marker(t), done: make(chan struct{})}
	addr := freeAddr(t)
	p.URL = "http://" + addr
	// Replicas never inherit the platform's environment: the marker that
	// finds them at cleanup is passed on explicitly.
	p.cmd = exec.Command(bin, "--addr", addr, "--gateway-addr", freeAddr(t), "--data-dir", p.DataDir, "--probe-interval", "100ms",
		"--replica-env", p.Marker)
	p.cmd.Env = append(os.Environ(), p.Marker)
	p.cmd.Stdout, p.cmd.Stderr = &p.log, &p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop(t)
		proctest.KillAll(p.Marker)
		if t.Failed() {
			t.Logf("platform log:\n%s", p.log.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(p.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-p.done:
			return p, fmt.Errorf("the platform exited before it was ready:\n%s", p.log.String())
		case <-time.After(50 * time.Millisecond): // poll interval
		}
		if time.Now().After(deadline) {
			t.Fatalf("the platform was not ready within 60s:\n%s", p.log.String())
		}
	}
	// Authentication is always on: the first start writes the admin's token.
	b, err := os.ReadFile(filepath.Join(p.DataDir, "admin.token"))
	if err != nil {
		t.Fatalf("the platform is ready but wrote no admin token: %v", err)
	}
	p.Token = strings.TrimSpace(string(b))
	return p, nil
}

// traversable is a fresh data dir whose ancestors replicas running as other
// uids can traverse (t.TempDir's own parent is 0700).
func traversable(t *testing.T) string {
	d := t.TempDir()
	if err := os.Chmod(filepath.Dir(d), 0o711); err != nil {
		t.Fatal(err)
	}
	return d
}

// Stop stops the platform: SIGTERM, then SIGKILL after 10s.
func (p *platform) Stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Client is a Go client for checks made beside dsh.
func (p *platform) Client(t *testing.T) *client.Client {
	c, err := client.New(client.Config{URL: p.URL, Token: p.Token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// operator is the environment dsh runs in: its own HOME (config and
// history land there), the platform's URL and token.
type operator struct {
	t      *testing.T
	Home   string
	Config string // $XDG_CONFIG_HOME
	Env    []string
}

func newOperator(t *testing.T, p *platform) *operator {
	home := t.TempDir()
	o := &operator{t: t, Home: home, Config: filepath.Join(home, ".config")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DISCOVERY_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			o.Env = append(o.Env, kv)
		}
	}
	o.Env = append(o.Env, "HOME="+home, "XDG_CONFIG_HOME="+o.Config, "TERM=xterm")
	if p != nil {
		o.Env = append(o.Env, "DISCOVERY_URL="+p.URL, "DISCOVERY_TOKEN="+p.Token, p.Marker)
	}
	return o
}

// result is one dsh run's outcome.
type result struct {
	Stdout, Stderr string
	Code           int
}

// dsh runs the dsh binary to completion (at most 60s) with extra env.
func (o *operator) dsh(stdin string, env []string, args ...string) result {
	o.t.Helper()
	bin, _ := binaries(o.t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(append([]string{}, o.Env...), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{Stdout: out.String(), Stderr: errOut.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		o.t.Fatalf("dsh %v: %v", args, err)
	}
	return r
}
