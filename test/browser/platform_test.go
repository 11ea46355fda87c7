// Package browser tests Bridge, the web dashboard, in a real browser (Debian's
// chromium, driven by chromedp over its DevTools pipe) against the real
// platform binary running real replicas.
package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/internal/testkit/platformtest"
	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
)

func TestMain(m *testing.M) {
	code := m.Run()
	platformtest.Cleanup()
	build.Cleanup()
	os.Exit(code)
}

// Platform is one running platform process with its own data dir and ports.
type Platform struct {
	*platformtest.Platform
	t   *testing.T
	App string // the testapp binary, a replica's command
}

// StartPlatform runs the platform and waits until it serves; everything it
// started is killed at cleanup.
func StartPlatform(t *testing.T) *Platform {
	p := &Platform{Platform: platformtest.New(t), t: t, App: build.Binary(t)}
	p.Start()
	return p
}

// URL is the platform's base URL.
func (p *Platform) URL() string { return p.APIURL() }

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
	resp, err := p.HTTP().Do(req)
	require.NoError(p.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		require.NoError(p.t, json.Unmarshal(b, out), string(b))
	}
	return resp.StatusCode
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
