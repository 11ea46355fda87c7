package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"sync"

	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"
	"github.com/traefik/yaegi/stdlib/unrestricted"

	"github.com/discovery-platform/discovery/client"
	"github.com/discovery-platform/discovery/shell/lib/dsh"
	"github.com/discovery-platform/discovery/shell/symbols"
)

const module = "github.com/discovery-platform/discovery/"

func platformPath(rel string) string { return module + rel }

// Package is one package dsh preloads: usable without an import line.
type Package struct {
	Name string
	Path string
	// Doc is one line for `help`.
	Doc string
}

// Platform lists the platform's packages dsh preloads, in the order `help`
// shows them.
var Platform = []Package{
	{"apps", platformPath("shell/lib/apps"), "the tenant's apps: List, Get, Settings, Create, Update, Patch, Scale, Delete, Ensure"},
	{"deploy", platformPath("shell/lib/deploy"), "revisions: Rollout, RolloutSpec, Status, Get, Wait, Sessions (connections, reservations, leases), Activate, Retire, Ensure"},
	{"endpoint", platformPath("shell/lib/endpoint"), "get-endpoint: Get(tenant, app), ForTicket(tenant, app, ticket)"},
	{"events", platformPath("shell/lib/events"), "activity log: List, Last, All, Follow, Watch, Notices, Handoffs"},
	{"logs", platformPath("shell/lib/logs"), "replica output: App, Revision, Replica, Tail"},
	{"leases", platformPath("shell/lib/leases"), "app-held leases: List(app), Release(app, lease), Take, Keep"},
	{"images", platformPath("shell/lib/images"), "the image catalog tenants deploy from: List, Get; admins Put, Delete"},
	{"tenants", platformPath("shell/lib/tenants"), "tenants: List, Use, Create, Delete, Quota, SetQuota, PatchQuota, AllowCommands, Members, Grant, Revoke"},
	{"tokens", platformPath("shell/lib/tokens"), "bearer tokens: IssueFor(tenant, subject, ttl) bound to a tenant; Issue (admin, unscoped); Revoke"},
	{"dsh", platformPath("shell/lib/dsh"), "the session: Tenant, SetTenant, WhoAmI, Client, Context, Print, Check"},
	{"client", platformPath("client"), "the REST client and its types (client.AppSpec, client.Quota, client.Int…)"},
}

// Std lists the standard library packages dsh preloads.
var Std = []string{"context", "errors", "fmt", "os", "strings", "time"}

// autoImports maps each preloaded name to its import path.
var autoImports = func() map[string]string {
	m := map[string]string{}
	for _, p := range Platform {
		m[p.Name] = p.Path
	}
	for _, p := range Std {
		m[p] = p
	}
	return m
}()

// Options configure a shell.
type Options struct {
	// Client and Tenant make the session every preloaded package works in.
	Client *client.Client
	Tenant string
	// Stdout receives results, Stderr errors; the process's when nil.
	Stdout, Stderr io.Writer
	// Args is os.Args as interpreted code sees it.
	Args []string
}

// Shell evaluates Go with the platform's packages preloaded. Results are
// printed as tables or one line, errors as the API's message. A panic or a
// runtime error in evaluated code is reported, never fatal; Interrupt
// cancels the evaluation running.
type Shell struct {
	in     *interp.Interpreter
	out    io.Writer
	errOut io.Writer
	apps   appNameCache

	mu       sync.Mutex
	cancel   context.CancelFunc
	imported map[string]string // name -> path, for the REPL's own imports
}

// New starts an interpreter with the preloaded packages imported, and sets
// up the dsh session.
func New(opts Options) (*Shell, error) {
	s, err := newShell(opts, nil)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("import (")
	b.WriteString(importSpecs(autoImports))
	for n, p := range autoImports {
		s.imported[n] = p
	}
	fmt.Fprintf(&b, "%s %q)", guardName, platformPath("shell/lib/dsh"))
	if _, err := s.in.Eval(b.String()); err != nil {
		return nil, fmt.Errorf("shell: preload: %w", err)
	}
	// results receives every value of a call, however many it returns.
	if _, err := s.in.Eval(resultsFunc); err != nil {
		return nil, fmt.Errorf("shell: preload: %w", err)
	}
	return s, nil
}

const resultsName = "__dshResults"

var resultsFunc = "func " + resultsName + "(vs ...interface{}) []interface{} { return vs }"

// newShell makes a shell whose interpreter reads source files (scripts)
// from files, when not nil.
func newShell(opts Options, files fs.FS) (*Shell, error) {
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.Args == nil {
		opts.Args = []string{"dsh"}
	}
	s := &Shell{out: opts.Stdout, errOut: opts.Stderr, imported: map[string]string{}}
	s.in = interp.New(interp.Options{
		Stdout: opts.Stdout, Stderr: &panicLog{w: opts.Stderr}, Args: opts.Args,
		// dsh runs on the operator's machine as the operator: scripts may
		// read the environment, run commands and exit (it is not a sandbox).
		Unrestricted:         true,
		SourcecodeFilesystem: files,
	})
	for _, syms := range []interp.Exports{stdlib.Symbols, unrestricted.Symbols, symbols.Symbols} {
		if err := s.in.Use(syms); err != nil {
			return nil, fmt.Errorf("shell: load symbols: %w", err)
		}
	}
	dsh.Use(opts.Client, opts.Tenant)
	dsh.SetOutput(opts.Stdout, opts.Stderr)
	return s, nil
}

// Interrupt cancels the evaluation running, if any (Ctrl-C): its calls to
// the platform return at once and interpreted loops stop. It reports
// whether something was running.
func (s *Shell) Interrupt() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel == nil {
		return false
	}
	s.cancel()
	return true
}

// begin makes ctx the context of one evaluation.
func (s *Shell) begin(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	s.cancel = cancel
	s.mu.Unlock()
	restore := dsh.WithContext(ctx)
	return ctx, func() {
		restore()
		s.mu.Lock()
		s.cancel = nil
		s.mu.Unlock()
		cancel()
	}
}

// ErrReported wraps an error the shell has already printed.
var ErrReported = errors.New("reported")

type reported struct{ err error }

func (r reported) Error() string   { return r.err.Error() }
func (r reported) Unwrap() []error { return []error{r.err, ErrReported} }

// report prints err as the shell shows errors and returns it marked reported.
func (s *Shell) report(err error) error {
	fmt.Fprintln(s.errOut, dsh.FormatError(err))
	return reported{err}
}

// panicLog passes the interpreter's error stream through, except the
// "L:C: panic: f(...)" lines yaegi writes for each frame a panic unwinds:
// the shell reports the panic itself, and those positions are often a
// statement off.
type panicLog struct{ w io.Writer }

var panicLine = regexp.MustCompile(`^\S*?:?\d+:\d+: panic: .*\(\.\.\.\)\n?$`)

func (p *panicLog) Write(b []byte) (int, error) {
	if panicLine.Match(b) {
		return len(b), nil
	}
	return p.w.Write(b)
}
