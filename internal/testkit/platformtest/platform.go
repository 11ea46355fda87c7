// Package platformtest runs the real platform binary the way an operator
// does, for the tests and bench programs that need it as a separate process
// (to SIGKILL it, upgrade it in place, or measure it): built from this module
// with the discovery-supervisor beside it, started on a data dir and ports
// of its own, its replicas found by a marker and its log kept for failures.
//
// Build, Command, OpenToReplicas, FreeAddr and ReadToken return errors, for
// programs; Binary, TempDir, Addr and Platform are their helpers for tests.
package platformtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/discovery-platform/discovery/internal/testkit/proctest"
)

// Platform is one installation of the platform for a test: a data dir and
// addresses, and the process started, killed and restarted on them.
type Platform struct {
	// Binary is the platform binary to run (default: Binary(t), no flags).
	Binary string
	// DataDir is the platform's --data-dir, open to replicas.
	DataDir string
	// Addr is the API's host:port; Gateway the gateway's.
	Addr    string
	Gateway string
	// Marker is a KEY=VALUE in the platform's environment and, through
	// --replica-env, its replicas' (they inherit nothing of the platform's
	// own): everything it finds is killed at cleanup.
	Marker string
	// Args are flags after the harness's own (a later flag wins); Env adds
	// variables to the platform's environment.
	Args []string
	Env  []string
	// Token is the bootstrap admin token: the first Start reads it from
	// DataDir/admin.token unless it is set (an instance joining another's
	// etcd finds the bootstrap done).
	Token string
	// TLS, when set, is the client side of a platform started with
	// --tls-cert: APIURL is https and HTTP trusts this configuration.
	TLS *tls.Config
	// Log is the file the platform's output is appended to, start after
	// start; its tail is logged when the test fails.
	Log string

	t       testing.TB
	run     *Process
	started bool // the platform has answered once, on Addr and Gateway
	once    sync.Once
	client  *http.Client
}

// flags are the harness's own flags, after the addresses: replicas probed and
// the state reconciled quickly, debug logs, and neither get-endpoint's rate
// nor its reservations bounded per client address (a test calls from one).
var flags = []string{"--probe-interval", "100ms", "--resync", "1s", "--log-level", "debug",
	"--endpoint-rate", "0", "--reservations-per-addr", "0"}

// New prepares an installation for t (TempDir, Addr twice, a proctest
// marker); Start runs the platform on it. At cleanup the platform is
// killed, then everything carrying the marker, and the log's tail is
// logged if t failed.
func New(t testing.TB) *Platform {
	t.Helper()
	p := &Platform{t: t, DataDir: TempDir(t), Marker: proctest.Marker(t), Log: filepath.Join(t.TempDir(), "platform.log")}
	p.Addr, p.Gateway = Addr(t), Addr(t)
	t.Cleanup(func() {
		p.Kill()
		proctest.KillAll(p.Marker)
		if t.Failed() {
			t.Logf("platform log (tail):\n%s", LogTail(p.Log, 40000))
		}
	})
	return p
}

// errPortTaken: the platform exited because an address was taken.
var errPortTaken = errors.New("a port was taken")

// Start runs the platform and waits until its API answers /readyz. A port
// Addr found free can be taken before the first start binds it: then the
// installation moves to fresh ports and starts again (twice at most). Later
// starts keep their ports: clients hold URLs with them.
func (p *Platform) Start() {
	p.t.Helper()
	if p.Binary == "" {
		p.Binary = Binary(p.t)
	}
	for attempt := 1; ; attempt++ {
		err := p.launch()
		if err == nil {
			break
		}
		if p.started || attempt == 3 || !errors.Is(err, errPortTaken) {
			p.t.Fatal(err)
		}
		p.t.Logf("attempt %d: %v, starting again on fresh ports", attempt, err)
		p.Addr, p.Gateway = Addr(p.t), Addr(p.t)
	}
	p.started = true
	if p.Token == "" {
		tok, err := ReadToken(p.DataDir)
		if err != nil {
			p.t.Fatalf("the first start writes the admin token: %v", err)
		}
		p.Token = tok
	}
}

// launch runs the platform process once and waits for its API; an error
// says it exited first (errPortTaken when for a taken address) or never
// answered.
func (p *Platform) launch() error {
	var from int64 // this start's part of the log
	if fi, err := os.Stat(p.Log); err == nil {
		from = fi.Size()
	}
	args := append([]string{"--addr", p.Addr, "--gateway-addr", p.Gateway, "--data-dir", p.DataDir, "--replica-env", p.Marker}, flags...)
	run, err := Command{Path: p.Binary, Args: append(args, p.Args...), Env: append(append(os.Environ(), p.Marker), p.Env...), Log: p.Log}.Start()
	if err != nil {
		return fmt.Errorf("start the platform: %w", err)
	}
	p.run = run
	const within = 60 * time.Second
	for deadline := time.Now().Add(within); ; {
		if run.Exited() {
			p.run = nil
			if b, _ := os.ReadFile(p.Log); int64(len(b)) >= from && bytes.Contains(b[from:], []byte("address already in use")) {
				return errPortTaken
			}
			return errors.New("the platform exited before its API answered")
		}
		if p.ready() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the platform's API did not answer within %s", within)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// ready reports whether /readyz answers 200. A call is bounded: what holds
// a taken port may accept and never answer.
func (p *Platform) ready() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", p.APIURL()+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := p.HTTP().Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Process is the platform process Start started last, nil when it was
// killed or stopped since.
func (p *Platform) Process() *Process { return p.run }

// Alive reports whether the platform process runs.
func (p *Platform) Alive() bool { return p.run != nil && !p.run.Exited() }

// Kill SIGKILLs the platform (not its replicas) and waits for it to be gone.
func (p *Platform) Kill() {
	if p.run == nil {
		return
	}
	p.run.Kill()
	p.run = nil
}

// Stop sends SIGTERM and fails the test unless the platform exits 0 within
// 30s.
func (p *Platform) Stop() {
	p.t.Helper()
	if p.run == nil {
		return
	}
	err := p.run.Stop(30 * time.Second)
	p.run = nil
	if err != nil {
		p.t.Fatalf("graceful stop: %v", err)
	}
}

// APIURL is the API's base URL: https when TLS is set.
func (p *Platform) APIURL() string {
	if p.TLS != nil {
		return "https://" + p.Addr
	}
	return "http://" + p.Addr
}

// HTTP is the client that reaches the API (and the gateway); set TLS before
// its first call.
func (p *Platform) HTTP() *http.Client {
	p.once.Do(func() {
		p.client = http.DefaultClient
		if p.TLS != nil {
			p.client = &http.Client{Transport: &http.Transport{TLSClientConfig: p.TLS}, Timeout: 30 * time.Second}
			p.t.Cleanup(p.client.CloseIdleConnections)
		}
	})
	return p.client
}
