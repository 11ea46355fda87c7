package shell

// These tests run the interpreter in-process. yaegi races with itself under
// the race detector, so this package's tests run without -race (see the
// Makefile); the pure helpers are table-tested here too.

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/discovery-platform/discovery/client"
)

func TestIncomplete(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want bool
	}{
		{`1+2`, false},
		{`for i := 0; i < 3; i++ {`, true},
		{"for i := 0; i < 3; i++ {\n\tfmt.Println(i)\n}", false},
		{`fmt.Println("{")`, false},
		{`fmt.Println("a",`, true},
		{`x := 1 +`, true},
		{"s := `raw", true},
		{"s := `raw\nstring`", false},
		{`/* open comment`, true},
		{`x := 1 // a { in a comment`, false},
		{`deploy.Status("hello"))`, false}, // an extra ) is the evaluator's to report
		{`go func() {`, true},
		{`apps.`, true},
		{``, false},
	} {
		if got := Incomplete(tc.src); got != tc.want {
			t.Errorf("Incomplete(%q) = %v, want %v", tc.src, got, tc.want)
		}
	}
}

func TestGuardGoroutinesKeepsLines(t *testing.T) {
	src := "go func() {\n\tpanic(1)\n}()\ngo func(a int) (int, error) { return a, nil }(1)\ngo f()"
	got, changed := guardGoroutines(src)
	if !changed || strings.Count(got, guardName+".Recovered(recover())") != 2 {
		t.Fatalf("want two guards, got:\n%s", got)
	}
	if strings.Count(got, "\n") != strings.Count(src, "\n") {
		t.Errorf("lines moved:\n%s", got)
	}
	if _, changed := guardGoroutines(`s := "go func() {"`); changed {
		t.Error("a string was rewritten")
	}
}

func TestAddImportsForPreloadedNames(t *testing.T) {
	src := "// doc\npackage main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(apps.List())\n\tdeploy := 1\n\t_ = deploy\n}\n"
	got, err := addImports("s.go", src, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, `apps "`+platformPath("shell/lib/apps")+`"`) {
		t.Errorf("apps not imported:\n%s", got)
	}
	if strings.Contains(got, `deploy "`) || strings.Count(got, `fmt "fmt"`) != 0 {
		t.Errorf("imported a local name or an already imported package:\n%s", got)
	}
	if strings.Count(got, "\n") != strings.Count(src, "\n") {
		t.Errorf("lines moved:\n%s", got)
	}
}

// harness is a shell whose output the test reads.
type harness struct {
	s        *Shell
	out, err *syncBuffer
}

type syncBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{wrote: make(chan struct{}, 100)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case b.wrote <- struct{}{}:
	default:
	}
	return b.b.Write(p)
}

func (b *syncBuffer) take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.b.String()
	b.b.Reset()
	return s
}

func newHarness(t *testing.T, url string) *harness {
	t.Helper()
	c, err := client.New(client.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{out: newSyncBuffer(), err: newSyncBuffer()}
	h.s, err = New(Options{Client: c, Tenant: "default", Stdout: h.out, Stderr: h.err})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// closedURL is a loopback address nothing listens on.
func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

func TestEvalPrintsValuesAndErrorsAndGoesOn(t *testing.T) {
	url := closedURL(t)
	h := newHarness(t, url)
	for _, tc := range []struct {
		src, out, err string
		failed        bool
	}{
		{src: `1+2`, out: "3\n"},
		{src: `x := 40`},
		{src: `x + 2`, out: "42\n"},
		{src: `strings.ToUpper("dsh")`, out: "DSH\n"},
		{src: `func two() (int, error) { return 7, nil }`},
		{src: `two()`, out: "7\n"}, // every value of a call, the nil error left out
		{src: `two() // a comment`, out: "7\n"},
		{src: `/* first */ two()`, out: "7\n"},
		{src: `func bad() (int, error) { return 0, errors.New("it broke") }`},
		{src: `bad()`, err: "error: it broke\n", failed: true},
		{src: `fmt.Println("hi")`, out: "hi\n"}, // no byte count
		{src: `import "fmt"`},                   // preloaded already: not an error
		{src: `import "encoding/json"`},
		{src: `json.Valid([]byte("{}"))`, out: "true\n"},
		{src: `x := 1 +)`, err: "syntax error: 1:9: expected operand, found ')'", failed: true},
		{src: `undefinedThing()`, err: "error: 1:1: undefined: undefinedThing\n", failed: true},
		{src: `var m map[string]int; m["a"] = 1`, err: "panic: assignment to entry in nil map\n", failed: true},
		{src: `dsh.Check(errors.New("stopped"))`, err: "error: stopped\n", failed: true},
		{src: `apps.List()`, err: "error: cannot reach the platform at " + url + " (connection refused)\n", failed: true},
		{src: `deploy.Parse("example/arena:0.2").Image`, out: "example/arena:0.2\n"},
		{src: "for _, v := range []string{\"a\", \"b\"} {\n\tfmt.Println(v)\n}", out: "a\nb\n"},
		{src: `x`, out: "40\n"}, // still alive, state kept
	} {
		err := h.s.Eval(context.Background(), tc.src)
		if (err != nil) != tc.failed || (err != nil && !errors.Is(err, ErrReported)) {
			t.Errorf("%s: error %v, want failed=%v and reported", tc.src, err, tc.failed)
		}
		if out := h.out.take(); out != tc.out {
			t.Errorf("%s: printed %q, want %q", tc.src, out, tc.out)
		}
		if e := h.err.take(); !strings.HasPrefix(e, tc.err) || (tc.err == "" && e != "") {
			t.Errorf("%s: error output %q, want %q", tc.src, e, tc.err)
		}
	}
}

func TestPanicInAGoroutineIsReported(t *testing.T) {
	h := newHarness(t, closedURL(t))
	src := "done := make(chan bool)\ngo func() {\n\tdefer close(done)\n\tvar m map[string]int\n\tm[\"x\"] = 1\n}()\n<-done"
	if err := h.s.Eval(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	// The report comes from the goroutine's last deferred call, after
	// close(done) may have let the evaluation end.
	select {
	case <-h.err.wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing reported the panic")
	}
	if e := h.err.take(); !strings.Contains(e, "panic in goroutine (recovered by dsh): assignment to entry in nil map") {
		t.Errorf("error output %q", e)
	}
	if err := h.s.Eval(context.Background(), `1`); err != nil || h.out.take() != "1\n" {
		t.Error("the shell did not go on")
	}
}

func TestInterruptStopsALoop(t *testing.T) {
	h := newHarness(t, closedURL(t))
	done := make(chan error)
	go func() { done <- h.s.Eval(context.Background(), `fmt.Println("spinning"); for {}`) }()
	select {
	case <-h.out.wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop never started")
	}
	if !h.s.Interrupt() {
		t.Fatal("Interrupt found nothing running")
	}
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Eval = %v, want canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not stop")
	}
	if e := h.err.take(); e != "interrupted\n" {
		t.Errorf("error output %q", e)
	}
	if h.s.Interrupt() {
		t.Error("Interrupt with nothing running reported something")
	}
}

func TestInterruptCancelsAPlatformCall(t *testing.T) {
	arrived, gone := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done() // a platform that never answers
		close(gone)
	}))
	defer srv.Close()
	h := newHarness(t, srv.URL)
	done := make(chan error)
	go func() { done <- h.s.Eval(context.Background(), `apps.List()`) }()
	<-arrived
	h.s.Interrupt()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the call was not interrupted")
	}
	select {
	case <-gone: // the request itself was cancelled, not just abandoned
	case <-time.After(10 * time.Second):
		t.Fatal("the HTTP request kept running")
	}
	if e := h.err.take(); e != "interrupted\n" {
		t.Errorf("error output %q", e)
	}
}

func TestCompletion(t *testing.T) {
	h := newHarness(t, closedURL(t))
	for _, tc := range []struct {
		line string
		want []string
		n    int
	}{
		{"depl", []string{"oy."}, 4},
		{"x := deploy.Ro", []string{"llout", "lloutSpec"}, 2},
		{"tenants.SetQ", []string{"uota"}, 4},
		{"time.Secon", []string{"d"}, 5},
		{"nosuch.X", nil, 1},
		{"for {", []string{"\t"}, 0},
	} {
		got, n := h.s.Complete(tc.line, len(tc.line))
		if strings.Join(got, ",") != strings.Join(tc.want, ",") || n != tc.n {
			t.Errorf("Complete(%q) = %q, %d; want %q, %d", tc.line, got, n, tc.want, tc.n)
		}
	}
}

func TestRunScriptWithoutImports(t *testing.T) {
	out, errOut := newSyncBuffer(), newSyncBuffer()
	c, _ := client.New(client.Config{URL: closedURL(t)})
	src := "package main\n\nfunc main() {\n\tfmt.Println(\"tenant\", dsh.Tenant(), os.Args[1])\n\t_, err := apps.List()\n\tfmt.Println(errors.Is(err, client.ErrUnreachable))\n}\n"
	err := Run(context.Background(), Options{Client: c, Tenant: "acme", Stdout: out, Stderr: errOut, Args: []string{"s.go", "arg1"}}, "s.go", []byte(src))
	if err != nil {
		t.Fatalf("Run: %v (%s)", err, errOut.take())
	}
	if got := out.take(); got != "tenant acme arg1\ntrue\n" {
		t.Errorf("output %q", got)
	}
	err = Run(context.Background(), Options{Client: c, Stdout: out, Stderr: errOut}, "bad.go", []byte("package main\n\nfunc main() {\n\tx := 1 +\n}\n"))
	if !errors.Is(err, ErrReported) || !strings.HasPrefix(errOut.take(), "syntax error: bad.go:5:1:") {
		t.Errorf("a syntax error: %v", err)
	}
}

func TestHelpListsEveryPreloadedPackage(t *testing.T) {
	h := newHarness(t, closedURL(t))
	h.s.Help()
	out := h.out.take()
	for _, p := range Platform {
		if !regexp.MustCompile(`(?m)^  ` + p.Name + `\s+\S`).MatchString(out) {
			t.Errorf("help lacks package %s:\n%s", p.Name, out)
		}
	}
	for _, want := range []string{`images.List()`, `leases.List("arena")`, `tokens.IssueFor("acme", "alice", 24*time.Hour)`} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks the example %s:\n%s", want, out)
		}
	}
	h.s.Help("leases")
	if out := h.out.take(); !strings.Contains(out, "Release") || !strings.Contains(out, "List") {
		t.Errorf("help leases:\n%s", out)
	}
	h.s.Help("images")
	if out := h.out.take(); !strings.Contains(out, "Put") || !strings.Contains(out, "Delete") {
		t.Errorf("help images:\n%s", out)
	}
}
