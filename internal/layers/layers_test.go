package layers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/discovery-platform/discovery"

// order is the layering, top to bottom, by part (a package's top-level
// folder). A package may import packages of its own part and of
// the parts on lower layers, never of a part on a higher layer. Parts on one
// layer may import each other as far as this test goes.
var order = [][]string{
	// Programs and the tests that run them: nothing imports them.
	{"cmd", "bench", "examples", "test"},
	// dsh's side: the REPL engine over the Go REST client. They sit above
	// the server's layers so they may use its types; the server never
	// imports them.
	{"shell"},
	{"client"},
	// The server, from the HTTP surfaces down to the domain.
	{"api", "bridge"},
	{"endpoint", "deployer"},
	{"apps", "images", "authz"},
	{"tenants"},
	// Shared helpers (etcd mirror, store errors, …), and deploy, which holds
	// only manifests and their test.
	{"internal", "deploy"},
	// The SDKs games build on (sdk/go, and sdk/js's test runner): standalone,
	// they import nothing of the platform; examples use them.
	{"sdk"},
}

// harnesses is the part outside the layering: test harnesses run the real
// thing and may import any layer; only tests and bench/ may import them
// (see TestTestHarnessesStayOutOfProduction).
const harnesses = "internal/testkit"

// pkg is one package of the graph, as go list reports it.
type pkg struct {
	ImportPath string
	Imports    []string
	Error      *struct{ Err string }
}

type graph map[string]*pkg

var loaded graph

// load reads the non-test import graph of every package of the module and
// of everything they depend on, once for all tests.
func load(t *testing.T) graph {
	t.Helper()
	if loaded != nil {
		return loaded
	}
	cmd := exec.Command("go", "list", "-e", "-deps", "-json=ImportPath,Imports,Error", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	g := graph{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		g[p.ImportPath] = &p
	}
	var ours int
	for _, p := range g {
		if own(p.ImportPath) {
			ours++
			if p.Error != nil {
				// A package go list cannot read has an incomplete import
				// list: nothing can be vouched for.
				t.Errorf("go list: %s: %s", p.ImportPath, p.Error.Err)
			}
		}
	}
	if ours < 10 {
		t.Fatalf("go list found %d packages of %s: not the module's graph", ours, module)
	}
	touchSources(t)
	loaded = g
	return g
}

// touchSources lists every directory of the module and opens go.mod: go
// test caches a passing result until a file the test opened changes, and
// the graph comes from a go list child it does not see into. Listed
// directories make any change to a .go file (or a new one) rerun the test.
func touchSources(t *testing.T) {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if _, err := os.ReadFile(gomod); err != nil {
		t.Fatalf("read go.mod: %v", err)
	}
	err = filepath.WalkDir(filepath.Dir(gomod), func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if name := d.Name(); path != filepath.Dir(gomod) && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") ||
			name == "testdata" || name == "node_modules") {
			return filepath.SkipDir // where go list looks for no package
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk the module: %v", err)
	}
}

func own(path string) bool { return path == module || strings.HasPrefix(path, module+"/") }

// rel is a module package's path inside the module ("apps", "cmd/platform").
func rel(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, module), "/") }

// under reports whether rel path p is dir or inside it.
func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// ours lists the module's packages, sorted.
func (g graph) ours() []string {
	var out []string
	for path := range g {
		if own(path) {
			out = append(out, path)
		}
	}
	sort.Strings(out)
	return out
}

// chain returns the shortest import chain from "from" to a package matching
// target, following only packages through may pass (the target itself
// excepted); nil if there is none.
func (g graph) chain(from string, target, through func(string) bool) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		p := g[cur]
		if p == nil {
			continue
		}
		for _, imp := range p.Imports {
			if _, seen := prev[imp]; seen {
				continue
			}
			prev[imp] = cur
			if target(imp) {
				var c []string
				for at := imp; at != ""; at = prev[at] {
					c = append(c, at)
				}
				slices.Reverse(c)
				return c
			}
			if through(imp) {
				queue = append(queue, imp)
			}
		}
	}
	return nil
}

func show(chain []string) string {
	out := make([]string, len(chain))
	for i, p := range chain {
		if own(p) {
			p = rel(p)
		}
		out[i] = p
	}
	return strings.Join(out, " → ")
}

func anything(string) bool { return true }
func direct(string) bool   { return false }

// prefixed matches an import path equal to one of prefixes or below it.
func prefixed(prefixes ...string) func(string) bool {
	return func(p string) bool {
		for _, pre := range prefixes {
			if p == pre || strings.HasPrefix(p, pre+"/") {
				return true
			}
		}
		return false
	}
}

// ownUnder matches the module's packages inside one of dirs.
func ownUnder(dirs ...string) func(string) bool {
	return func(p string) bool {
		if !own(p) {
			return false
		}
		for _, d := range dirs {
			if under(rel(p), d) {
				return true
			}
		}
		return false
	}
}

// rule: packages matching who must not reach a package matching forbidden
// through packages matching through.
type rule struct {
	name      string
	who       func(string) bool
	forbidden func(string) bool
	through   func(string) bool
}

func (r rule) check(t *testing.T, g graph) {
	t.Helper()
	var checked []string
	for _, p := range g.ours() {
		if !r.who(p) {
			continue
		}
		checked = append(checked, rel(p))
		if c := g.chain(p, r.forbidden, r.through); c != nil {
			t.Errorf("%s: %s", r.name, show(c))
		}
	}
	if len(checked) == 0 {
		t.Errorf("%s: no package to check; the rule names a part that is gone", r.name)
	}
	t.Logf("%s: checked %d packages: %s", r.name, len(checked), strings.Join(checked, " "))
}

// The domain knows nothing of HTTP or of the parts that serve it. net/http
// counts when a domain package or another package of this module on its
// way imports it; a third-party library's own use (grpc inside the etcd
// client) is not the domain's doing. Fiber and the upper parts count
// however they are reached.
func TestDomainIsFreeOfHTTP(t *testing.T) {
	g := load(t)
	domain := ownUnder("apps", "tenants", "images", "authz")
	for _, r := range []rule{
		{"a domain package imports net/http (itself or through this module)", domain, prefixed("net/http"), own},
		{"a domain package imports fiber", domain, prefixed("github.com/gofiber"), anything},
		{"a domain package imports deployer, endpoint or api", domain, ownUnder("deployer", "endpoint", "api"), anything},
	} {
		r.check(t, g)
	}
}

// The API maps domain errors only: internal/storeerr turns etcd's and
// gRPC's into the sentinels it knows, so api itself names neither.
func TestAPIImportsNoEtcdOrGRPC(t *testing.T) {
	rule{"api imports etcd or gRPC directly", ownUnder("api"),
		prefixed("go.etcd.io/etcd", "google.golang.org/grpc"), direct}.check(t, load(t))
}

// The gateway reads routes through the etcd client (and etcdmirror), never
// etcd's wire types.
func TestEndpointImportsNoEtcdWireTypes(t *testing.T) {
	rule{"endpoint imports go.etcd.io/etcd/api directly", ownUnder("endpoint"),
		prefixed("go.etcd.io/etcd/api"), direct}.check(t, load(t))
}

// Test harnesses are for tests and bench programs only: a production
// package reaching one, by any chain, fails. Harnesses use one another.
func TestTestHarnessesStayOutOfProduction(t *testing.T) {
	production := func(p string) bool { return !ownUnder(harnesses, "bench")(p) }
	rule{"a non-test package outside bench/ imports a test harness", production,
		ownUnder(harnesses), anything}.check(t, load(t))
}

// part names the part a module package belongs to ("" for the harnesses,
// which are outside the layering), and its layer (0 = top); ok is false
// for a part the layering does not place.
func part(path string) (name string, layer int, ok bool) {
	r := rel(path)
	if under(r, harnesses) {
		return "", 0, true
	}
	name, _, _ = strings.Cut(r, "/")
	for i, parts := range order {
		if slices.Contains(parts, name) {
			return name, i, true
		}
	}
	return name, 0, false
}

// No package imports one on a layer above its own. A chain that climbs has
// an import that climbs, so each package's own imports are checked.
func TestNoImportClimbsTheLayering(t *testing.T) {
	g := load(t)
	var lines []string
	for i, parts := range order {
		lines = append(lines, strings.Repeat("  ", i)+strings.Join(parts, ", "))
	}
	t.Logf("layering, top to bottom (%s: outside it):\n%s", harnesses, strings.Join(lines, "\n"))

	var checked, edges int
	for _, p := range g.ours() {
		name, layer, ok := part(p)
		if !ok {
			t.Errorf("%s: part %q has no place in the layering: add it to order in this test", rel(p), name)
			continue
		}
		if name == "" {
			continue
		}
		checked++
		for _, imp := range g[p].Imports {
			if !own(imp) {
				continue
			}
			edges++
			iname, ilayer, ok := part(imp)
			if ok && iname != "" && ilayer < layer {
				t.Errorf("%s (layer %q) imports a layer above it: %s (layer %q)", rel(p), name, show([]string{p, imp}), iname)
			}
		}
	}
	t.Logf("checked %d imports between the module's packages, from %d packages", edges, checked)
}

// TestCheckerFindsChains runs the checks on a made-up graph, so a rule that
// passes above passes because the tree keeps it, not because it finds
// nothing.
func TestCheckerFindsChains(t *testing.T) {
	m := func(r string) string { return module + "/" + r }
	g := graph{
		m("apps"):                   {ImportPath: m("apps"), Imports: []string{m("tenants"), "go.etcd.io/etcd/client/v3"}},
		m("tenants"):                {ImportPath: m("tenants"), Imports: []string{m("internal/helper")}},
		m("internal/helper"):        {ImportPath: m("internal/helper"), Imports: []string{"net/http/httputil"}},
		"go.etcd.io/etcd/client/v3": {ImportPath: "go.etcd.io/etcd/client/v3", Imports: []string{"google.golang.org/grpc"}},
		"google.golang.org/grpc":    {ImportPath: "google.golang.org/grpc", Imports: []string{"net/http"}},
	}
	for _, tc := range []struct {
		what      string
		forbidden func(string) bool
		through   func(string) bool
		want      string
	}{
		{"through the module", prefixed("net/http"), own, "apps → tenants → internal/helper → net/http/httputil"},
		{"through anything", prefixed("google.golang.org/grpc"), anything, "apps → go.etcd.io/etcd/client/v3 → google.golang.org/grpc"},
		{"through the module only: not through a library", prefixed("google.golang.org/grpc"), own, ""},
		{"direct only", prefixed("net/http"), direct, ""},
		{"direct only, a direct import", prefixed("go.etcd.io/etcd"), direct, "apps → go.etcd.io/etcd/client/v3"},
		{"a prefix is a path element", prefixed("go.etcd.io/etc"), anything, ""},
	} {
		got := ""
		if c := g.chain(m("apps"), tc.forbidden, tc.through); c != nil {
			got = show(c)
		}
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.what, got, tc.want)
		}
	}

	for path, want := range map[string]struct {
		name  string
		layer int
		ok    bool
	}{
		m("cmd/platform"):              {"cmd", 0, true},
		m("api"):                       {"api", 3, true},
		m("apps"):                      {"apps", 5, true},
		m("internal/storeerr"):         {"internal", 7, true},
		m("internal/testkit/etcdtest"): {"", 0, true},
		m("internal/testkitten"):       {"internal", 7, true},
		m("newpart/x"):                 {"newpart", 0, false},
	} {
		name, layer, ok := part(path)
		if name != want.name || layer != want.layer || ok != want.ok {
			t.Errorf("part(%s) = %q, %d, %v; want %q, %d, %v", rel(path), name, layer, ok, want.name, want.layer, want.ok)
		}
	}
}
