// Package browser tests Bridge, the web dashboard, in a real browser (Debian's
// chromium, driven by chromedp over its DevTools pipe) against the real
// platform binary running real replicas.
package browser

import (
	"bufio"
	"bytes"
	"context"
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
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/internal/testkit/proctest"
	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if platformDir != "" {
		_ = os.RemoveAll(platformDir)
	}
	build.Cleanup()
	os.Exit(code)
}

var (
	platformOnce sync.Once
	platformDir  string
	platformBin  string
	platformErr  error
)

// platformBinary builds cmd/platform once per test process, with the
// process runtime's discovery-supervisor beside it (where the runtime looks
// for it). Replicas run as other uids when the test runs as root: the
// directory is theirs to read.
func platformBinary(t *testing.T) string {
	platformOnce.Do(func() {
		if platformDir, platformErr = os.MkdirTemp("", "discovery-browser-"); platformErr != nil {
			return
		}
		if platformErr = os.Chmod(platformDir, 0o755); platformErr != nil {
			return
		}
		out := filepath.Join(platformDir, "platform")
		if b, err := exec.Command("go", "build", "-o", out, "github.com/discovery-platform/discovery/cmd/platform").CombinedOutput(); err != nil {
			platformErr = fmt.Errorf("build platform: %v\n%s", err, b)
			return
		}
		if b, err := exec.Command("go", "build", "-o", filepath.Join(platformDir, "discovery-supervisor"), build.SupervisorPackage).CombinedOutput(); err != nil {
			platformErr = fmt.Errorf("build supervisor: %v\n%s", err, b)
			return
		}
		platformBin = out
	})
	require.NoError(t, platformErr)
	return platformBin
}

// Platform is one running platform process with its own data dir and ports.
type Platform struct {
	t       *testing.T
	Addr    string // API (and Bridge) host:port
	Token   string // the bootstrap admin token
	App     string // the testapp binary, a replica's command
	logs    bytes.Buffer
	logsMu  sync.Mutex
	dataDir string
}

// StartPlatform runs the platform and waits until it serves; everything it
// started is killed at cleanup. A port freeAddr found free can be taken
// before the platform binds it: then it starts again on fresh ports.
func StartPlatform(t *testing.T) *Platform {
	for attempt := 1; ; attempt++ {
		p, ok := launchPlatform(t)
		if ok {
			return p
		}
		p.logsMu.Lock()
		inUse := strings.Contains(p.logs.String(), "address already in use")
		p.logsMu.Unlock()
		if attempt == 3 || !inUse {
			t.Fatal("the platform exited before it answered /readyz")
		}
		t.Logf("attempt %d: a port was taken, starting again on fresh ports", attempt)
	}
}

// launchPlatform starts one platform process and reports whether it
// answered /readyz (false: it exited first).
func launchPlatform(t *testing.T) (*Platform, bool) {
	p := &Platform{t: t, App: build.Binary(t), dataDir: traversable(t), Addr: freeAddr(t)}
	marker := proctest.Marker(t)
	// Replicas never inherit the platform's environment: the marker that
	// finds them at cleanup is passed on explicitly.
	cmd := exec.Command(platformBinary(t), "--addr", p.Addr, "--gateway-addr", freeAddr(t), "--data-dir", p.dataDir,
		"--probe-interval", "100ms", "--resync", "1s", "--endpoint-rate", "0", "--replica-env", marker)
	cmd.Env = append(os.Environ(), marker)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.logsMu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.logsMu.Unlock()
		}
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		proctest.KillAll(marker)
		if t.Failed() {
			p.logsMu.Lock()
			t.Logf("platform log:\n%s", p.logs.String())
			p.logsMu.Unlock()
		}
	})
	exited := false
	eventually(t, "the platform answers /readyz", 60*time.Second, func() bool {
		select {
		case <-done:
			exited = true
			return true
		default:
		}
		resp, err := http.Get("http://" + p.Addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if exited {
		return p, false
	}
	b, err := os.ReadFile(filepath.Join(p.dataDir, "admin.token"))
	require.NoError(t, err, "the first start writes the admin token")
	p.Token = strings.TrimSpace(string(b))
	return p, true
}

// URL is the platform's base URL.
func (p *Platform) URL() string { return "http://" + p.Addr }

// Call does an API request under /api/v1 with token and decodes a JSON answer.
func (p *Platform) Call(token, method, path string, body, out any) int {
	p.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(p.t, err)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, p.URL()+"/api/v1"+path, r)
	require.NoError(p.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(p.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		require.NoError(p.t, json.Unmarshal(b, out), string(b))
	}
	return resp.StatusCode
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

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// chromiumPath finds Debian's chromium; without it the test fails (CI
// installs it) unless DISCOVERY_SKIP_BROWSER=1 says to skip.
func chromiumPath(t *testing.T) string {
	for _, p := range []string{os.Getenv("DISCOVERY_CHROMIUM"), "/usr/bin/chromium"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if os.Getenv("DISCOVERY_SKIP_BROWSER") == "1" {
		t.Skip("no chromium at /usr/bin/chromium and DISCOVERY_SKIP_BROWSER=1: browser tests skipped")
	}
	t.Fatal("browser tests need chromium at /usr/bin/chromium (apt-get install chromium; .ci/run installs it); " +
		"set DISCOVERY_SKIP_BROWSER=1 to skip them on a development machine")
	return ""
}

// Browser is one headless chromium with a fresh profile, and a tab.
type Browser struct {
	t       *testing.T
	ctx     context.Context
	mu      sync.Mutex
	console []string // what the page wrote to its console, shown on failure
	// exceptions are the page's uncaught exceptions and unhandled rejections.
	exceptions []string
}

// Exceptions returns the page's uncaught exceptions so far.
func (b *Browser) Exceptions() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.exceptions...)
}

// NewBrowser starts chromium at 1280x800; it is closed at cleanup.
func NewBrowser(t *testing.T) *Browser {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first action starts the browser; it must run on ctx itself (a
	// context derived with a timeout would take the browser with it).
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)), "start chromium")
	b := &Browser{t: t, ctx: ctx}
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m.Time.String()+" "+m.URL+" "+m.String())
			if m.IsException() {
				b.exceptions = append(b.exceptions, m.String())
			}
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			b.mu.Lock()
			t.Logf("browser console:\n%s", strings.Join(b.console, "\n"))
			b.mu.Unlock()
		}
	})
	return b
}

// Do runs actions, failing the test on error.
func (b *Browser) Do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	require.NoError(b.t, chromedp.Do(ctx, steps...))
}

// Eval evaluates a JavaScript expression (promises awaited) and returns its value.
func Eval[T any](b *Browser, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	require.NoError(b.t, err, js)
	return v
}

// Wait polls a JavaScript condition in the page until it is truthy; on
// timeout it fails with what the page shows.
func (b *Browser) Wait(what, js string, within time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, within+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+js+")", chromedp.WithPollingTimeout(within), chromedp.WithPollingInterval(100*time.Millisecond)))
	if err != nil {
		text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		b.t.Fatalf("waiting for %s (%s): %v\nthe page shows:\n%s", what, js, err, text)
	}
}

// Shot saves a PNG screenshot of the viewport (or the whole page) to
// docs/screenshots, which the README links.
func (b *Browser) Shot(name string, full bool) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	var png []byte
	var err error
	if full {
		png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	} else {
		png, err = chromedp.Run(ctx, chromedp.CaptureScreenshot())
	}
	require.NoError(b.t, err)
	dir := filepath.Join("..", "..", "docs", "screenshots")
	require.NoError(b.t, os.MkdirAll(dir, 0o755))
	require.NoError(b.t, os.WriteFile(filepath.Join(dir, name), png, 0o644))
}
