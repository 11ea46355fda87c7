package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
)

// TestOperatorDeploysFromTheShell is the original tool's workflow, typed
// into dsh on a terminal: create an app, roll out a revision, read its
// status; with completion, errors that leave the shell running, Ctrl-C that
// stops only the running call, history that outlives the session, and a lost
// platform that is a clear error.
func TestOperatorDeploysFromTheShell(t *testing.T) {
	p := startPlatform(t)
	app := build.Binary(t)
	op := newOperator(t, p)
	term := op.terminal()
	term.expect(`tenant default\. help for help`, 10*time.Second)

	term.typeLine(`apps.Create(apps.Spec{Name: "hello", HealthPath: "/healthz"})`)
	term.expect(`\ndefault/hello replicas 1 generation 0\n`, 10*time.Second)

	term.typeLine(`deploy.Rollout("hello", "` + app + `")`)
	rev := term.expect(`\n([0-9a-f]{8}) pending \(0/0 ready\) generation 1\n`, 10*time.Second)[1]

	term.typeLine(`deploy.Wait("hello", "` + rev + `", "active", time.Minute)`)
	term.expect(`\n`+rev+` active \(1/1 ready\) generation 1\n`, time.Minute)

	// deploy.Status("hello"), typed with Tab: package, function, app name.
	term.typeLine("depl\tSta\t(\"hel\t\")")
	term.expect(`\nREVISION\s+GEN\s+STATE\s+READY.*\n`+rev+`\s+1\s+active\s+1/1\s`, 10*time.Second)

	// A syntax error and a runtime error are printed; the shell goes on.
	term.typeLine("x := 1 +)")
	term.expect(`\nsyntax error: 1:9: expected operand, found '\)'`, 10*time.Second)
	term.typeLine(`var m map[string]int; m["a"] = 1`)
	term.expect(`\npanic: assignment to entry in nil map\n`, 10*time.Second)
	term.typeLine(`deploy.Retire("hello", "` + rev + `")`)
	term.expect(`\nerror: .*`+rev+`.* \(illegal_state\)\n`, 10*time.Second)
	term.typeLine("6*7")
	term.expect(`\n42\n`, 10*time.Second)

	// A block over several lines (Tab indents where there is nothing to
	// complete).
	term.typeLine("for _, r := range []string{\"a\", \"b\"} {")
	term.typeLine("\tfmt.Println(\"item\", r)")
	term.typeLine("}")
	term.expect(`\nitem a\nitem b\n`, 10*time.Second)

	// Ctrl-C stops the running call (events.Follow never returns), not dsh.
	term.typeLine(`events.Follow("hello")`)
	term.expect(`starting -> active`, 10*time.Second)
	term.send("\x03")
	term.expect(`(\n|\^C)interrupted\n`, 10*time.Second)
	term.typeLine(`"first session"`)
	term.expect(`\nfirst session\n`, 10*time.Second)
	term.expect(prompt, 10*time.Second)
	term.send("\x04")
	if code := term.exited(10 * time.Second); code != 0 {
		t.Fatalf("dsh exited %d on Ctrl-D", code)
	}

	// History is kept across sessions, readable by the operator only.
	hist := filepath.Join(op.Config, "discovery", "dsh_history")
	fi, err := os.Stat(hist)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("history mode %v, want 0600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(hist); !strings.Contains(string(b), `deploy.Rollout("hello"`) {
		t.Errorf("history lacks the rollout:\n%s", b)
	}
	term = op.terminal()
	term.expect(`tenant default\. help for help`, 10*time.Second)
	term.typeLine("\x1b[A") // Up, Enter: the last input of the first session
	term.expect(`\nfirst session\n`, 10*time.Second)

	// The platform goes away: calls fail clearly, the shell stays.
	p.Stop(t)
	term.typeLine("apps.List()")
	term.expect(`\nerror: cannot reach the platform at `+regexp.QuoteMeta(p.URL)+` \(connection refused\)\n`, 10*time.Second)
	term.typeLine("1+1")
	term.expect(`\n2\n`, 10*time.Second)
	term.typeLine("exit")
	if code := term.exited(10 * time.Second); code != 0 {
		t.Fatalf("dsh exited %d on exit", code)
	}
}

// TestEvalFlag: dsh -e evaluates, prints and exits; an API error is printed
// with its message and code and fails the command.
func TestEvalFlag(t *testing.T) {
	p := startPlatform(t)
	op := newOperator(t, p)

	r := op.dsh("", nil, "-e", `tenants.List()`)
	if r.Code != 0 || !regexp.MustCompile(`(?m)^TENANT\s+NAMESPACE.*\n^default\s+\S+`).MatchString(r.Stdout) {
		t.Fatalf("dsh -e tenants.List(): exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	r = op.dsh("", nil, "-e", `apps.Create(apps.Spec{Name: "echo", Replicas: 2})`, "-e", `a, _ := apps.Get("echo")`, "-e", `a.Replicas * 10`)
	if r.Code != 0 || !strings.HasSuffix(r.Stdout, "\n20\n") {
		t.Fatalf("several -e: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	r = op.dsh("", nil, "-e", `dsh.WhoAmI()`)
	if r.Code != 0 || r.Stdout != "admin (platform admin), tenant default\n" {
		t.Fatalf("dsh.WhoAmI(): exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	r = op.dsh("", nil, "-e", `apps.Get("nope")`, "-e", `"not reached"`)
	if r.Code != 1 || !regexp.MustCompile(`^error: .*nope.* \(not_found\)\n$`).MatchString(r.Stderr) || strings.Contains(r.Stdout, "not reached") {
		t.Fatalf("dsh -e on a missing app: exit %d\nstdout %q\nstderr %q", r.Code, r.Stdout, r.Stderr)
	}
}

// TestScriptRunTwiceChangesNothing: the example script declares an app and
// what it runs; the second run finds everything as declared.
func TestScriptRunTwiceChangesNothing(t *testing.T) {
	p := startPlatform(t)
	op := newOperator(t, p)
	env := []string{"HELLO_BIN=" + build.Binary(t)}
	script := filepath.Join("..", "..", "examples", "dsh", "hello.go")
	c := p.Client(t)
	ctx := context.Background()

	first := op.dsh("", env, "run", script)
	if first.Code != 0 || !strings.Contains(first.Stdout, "app hello: created") || !regexp.MustCompile(`hello [0-9a-f]{8}: deployed`).MatchString(first.Stdout) {
		t.Fatalf("first run: exit %d\n%s%s", first.Code, first.Stdout, first.Stderr)
	}
	revs, err := c.ListRevisions(ctx, "default", "hello")
	if err != nil || len(revs) != 1 || revs[0].State != "active" {
		t.Fatalf("after the first run: %v, %v; want one active revision", revs, err)
	}
	app, err := c.GetApp(ctx, "default", "hello")
	if err != nil {
		t.Fatal(err)
	}

	second := op.dsh("", env, "run", script)
	if second.Code != 0 || !strings.Contains(second.Stdout, "app hello: unchanged") ||
		!strings.Contains(second.Stdout, "hello "+revs[0].ID+": unchanged") || strings.Contains(second.Stdout, "deployed") {
		t.Fatalf("second run: exit %d\n%s%s", second.Code, second.Stdout, second.Stderr)
	}
	again, err := c.ListRevisions(ctx, "default", "hello")
	if err != nil || len(again) != 1 || again[0].ID != revs[0].ID {
		t.Fatalf("the second run changed the revisions: %v, %v", again, err)
	}
	if a, err := c.GetApp(ctx, "default", "hello"); err != nil || !a.UpdatedAt.Equal(app.UpdatedAt) || a.Generation != app.Generation {
		t.Fatalf("the second run changed the app: %+v -> %+v (%v)", app, a, err)
	}

	r := op.dsh("", nil, "-e", `deploy.Sessions("hello")`)
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "sessions: "+revs[0].ID+" 0") {
		t.Fatalf("deploy.Sessions: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// A change in the code is a change on the platform.
	edited := filepath.Join(t.TempDir(), "hello.go")
	src, _ := os.ReadFile(script)
	if err := os.WriteFile(edited, []byte(strings.Replace(string(src), `"GREETING": "v1"`, `"GREETING": "v2"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	third := op.dsh("", env, "run", edited)
	if third.Code != 0 || !strings.Contains(third.Stdout, "deployed (env GREETING)") {
		t.Fatalf("edited run: exit %d\n%s%s", third.Code, third.Stdout, third.Stderr)
	}
}

// TestLoginSavesURLAndToken: dsh login keeps URL, token and tenant in the
// user's config dir, mode 0600, and later runs use them.
func TestLoginSavesURLAndToken(t *testing.T) {
	p := startPlatform(t)
	op := newOperator(t, nil) // no DISCOVERY_* in the environment
	tokenFile := filepath.Join(p.DataDir, "admin.token")

	r := op.dsh("", nil, "login", "--url", p.URL, "--tenant", "default", "--token-file", tokenFile)
	if r.Code != 0 {
		t.Fatalf("dsh login: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	path := filepath.Join(op.Config, "discovery", "dsh.json")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), p.URL) || !strings.Contains(string(b), p.Token) {
		t.Errorf("config lacks URL or token:\n%s", b)
	}

	r = op.dsh("", nil, "-e", `dsh.URL()`, "-e", `tenants.List()`)
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, p.URL+"\n") || !strings.Contains(r.Stdout, "default") {
		t.Fatalf("after login: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	r = op.dsh("", []string{"DISCOVERY_TOKEN=not-a-token"}, "login", "--url", p.URL)
	if r.Code != 1 || !strings.Contains(r.Stderr, "refused the token") {
		t.Fatalf("login with a bad token: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if b2, _ := os.ReadFile(path); string(b2) != string(b) {
		t.Error("a refused login changed the saved config")
	}

	// Logged out, the platform refuses the calls, clearly.
	if r = op.dsh("", nil, "logout"); r.Code != 0 {
		t.Fatalf("dsh logout: exit %d\n%s", r.Code, r.Stderr)
	}
	if b2, _ := os.ReadFile(path); strings.Contains(string(b2), p.Token) || !strings.Contains(string(b2), p.URL) {
		t.Errorf("after logout the config is:\n%s", b2)
	}
	r = op.dsh("", nil, "-e", `apps.List()`)
	if r.Code != 1 || !strings.Contains(r.Stderr, "(unauthenticated)") {
		t.Fatalf("logged out: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// TestPipedInputSurvivesErrors: without a terminal dsh reads plain lines; a
// syntax error, a runtime error and an absent platform are each printed and
// the next line still runs.
func TestPipedInputSurvivesErrors(t *testing.T) {
	op := newOperator(t, nil)
	url := "http://" + freeAddr(t)
	in := "x := 1 +)\nvar m map[string]int; m[\"a\"] = 1\napps.List()\nfor i := 0; i < 2; i++ {\n\tfmt.Println(\"line\", i)\n}\n"
	r := op.dsh(in, []string{"DISCOVERY_URL=" + url})
	want := []string{
		"syntax error: 1:9: expected operand, found ')'",
		"panic: assignment to entry in nil map",
		"error: cannot reach the platform at " + url + " (connection refused)",
	}
	for _, w := range want {
		if !strings.Contains(r.Stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.Stderr)
		}
	}
	if r.Code != 0 || r.Stdout != "line 0\nline 1\n" {
		t.Fatalf("exit %d, stdout %q", r.Code, r.Stdout)
	}
}

// TestTenantAdministration: an admin creates a tenant, sets its quota and
// makes olivia its owner, with a token bound to it. Olivia grants alice a
// role and mints her a token bound to acme as well; neither token works in
// default, where both have roles too. The admin puts the test app into the
// image catalog: alice deploys it by its image (a raw command is refused
// until the admin trusts acme), takes a lease on it and releases it.
func TestTenantAdministration(t *testing.T) {
	p := startPlatform(t)
	app := build.Binary(t)
	op := newOperator(t, p)
	r := op.dsh("", nil,
		"-e", `tenants.Create("acme")`,
		"-e", `tenants.SetQuota("acme", client.Quota{MaxApps: 1, MaxReplicas: 4, MaxRevisions: 5, MaxCPUMillis: 1000, MaxMemoryMB: 512})`,
		"-e", `tenants.Grant("acme", "olivia", "owner")`,
		"-e", `tenants.Grant("default", "olivia", "owner")`,
		"-e", `tenants.Grant("default", "alice", "deployer")`,
		"-e", `tenants.Members("acme")`,
		"-e", `tenants.Quota("acme")`,
		"-e", `tokens.IssueFor("acme", "olivia", time.Hour)`)
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, want := range []string{"tenant acme (namespace ", "\nSUBJECT  ROLE\nolivia   owner\n", "apps 0/1, replicas 0/4, stored 0 B/4 MiB", "leases per revision 100"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.Stdout)
		}
	}
	olivia := []string{"DISCOVERY_TOKEN=" + issued(t, r.Stdout, "olivia", "acme"), "DISCOVERY_TENANT=acme"}

	// The owner mints a token bound to her tenant for a member of it.
	r = op.dsh("", olivia, "-e", `dsh.WhoAmI()`, "-e", `tenants.Grant("acme", "alice", "deployer")`, "-e", `tokens.IssueFor("acme", "alice", time.Hour)`)
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "olivia (token bound to tenant acme), owner in tenant acme\n") {
		t.Fatalf("olivia mints alice's token: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	alice := []string{"DISCOVERY_TOKEN=" + issued(t, r.Stdout, "alice", "acme"), "DISCOVERY_TENANT=acme"}
	// What her token may not do: mint an unscoped token, or one for a
	// platform admin; act in default, although she owns it too.
	refused(t, op, olivia, "(forbidden)", `tokens.Issue("alice", time.Hour)`)
	refused(t, op, olivia, "(forbidden)", `tokens.IssueFor("acme", "admin", time.Hour)`)
	refused(t, op, olivia, "(forbidden)", `tokens.IssueFor("default", "alice", time.Hour)`)
	refused(t, op, olivia, "(forbidden)", `tenants.Use("default")`)

	// Alice works in acme, within its quota, and nowhere else.
	r = op.dsh("", alice, "-e", `dsh.WhoAmI()`, "-e", `apps.Create(apps.Spec{Name: "one", HealthPath: "/healthz"})`, "-e", `apps.List()`, "-e", `images.List()`)
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "alice (token bound to tenant acme), deployer in tenant acme\n") ||
		!regexp.MustCompile(`(?m)^one\s+1\s`).MatchString(r.Stdout) || !strings.HasSuffix(r.Stdout, "(no images in the catalog)\n") {
		t.Fatalf("alice in acme: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	refused(t, op, alice, "(quota_exceeded)", `apps.Create(apps.Spec{Name: "two"})`)
	refused(t, op, append(alice, "DISCOVERY_TENANT=default"), "(forbidden)", `apps.List()`)
	// A raw command runs on the platform's machine: not hers to deploy.
	refused(t, op, alice, "deploy an image from the catalog", `deploy.Rollout("one", "`+app+`")`)
	refused(t, op, alice, "(forbidden)", `images.Put("example/hello:1", []string{"/bin/sh"}, "")`)

	// The admin puts the test app into the catalog; alice deploys it.
	r = op.dsh("", nil, "-e", `images.Put("example/hello:1", []string{"`+app+`"}, "the test app")`, "-e", `images.List()`)
	if r.Code != 0 || !regexp.MustCompile(`(?m)^IMAGE\s+COMMAND\s+UPDATED\s+DESCRIPTION\nexample/hello:1\s+`+regexp.QuoteMeta(app)+`\s+\d+s\s+the test app$`).MatchString(r.Stdout) {
		t.Fatalf("the admin fills the catalog: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = op.dsh("", alice,
		"-e", `rev, err := deploy.Rollout("one", "example/hello:1"); dsh.Check(err)`,
		"-e", `deploy.Wait("one", rev.ID, "active", time.Minute)`,
		"-e", `strings.Join(rev.Command, " ")`,
		"-e", `l, err := leases.Take("one", rev.ID, time.Minute); dsh.Check(err)`,
		"-e", `leases.List("one")`,
		"-e", `leases.Release("one", l.Lease)`,
		"-e", `leases.List("one")`)
	m := regexp.MustCompile(`^([0-9a-f]{8}) active \(1/1 ready\) generation 1\n` + regexp.QuoteMeta(app) + `\n` +
		`LEASE\s+REVISION\s+REPLICA\s+HOLDER\s+LEFT\s+TTL\n[0-9a-f]+\s+([0-9a-f]{8})\s+-\s+alice\s+\S+\s+1m0s\n\(no leases\)\n$`).FindStringSubmatch(r.Stdout)
	if r.Code != 0 || m == nil || m[1] != m[2] {
		t.Fatalf("alice deploys the catalog's image and holds it: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// Trusted, acme may deploy commands; the catalog entry can go, what
	// was deployed from it keeps running.
	r = op.dsh("", nil, "-e", `tenants.AllowCommands("acme", true)`, "-e", `images.Delete("example/hello:1")`, "-e", `images.List()`)
	if r.Code != 0 || !strings.Contains(r.Stdout, ", may deploy commands\n") || !strings.HasSuffix(r.Stdout, "(no images in the catalog)\n") {
		t.Fatalf("the admin trusts acme: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = op.dsh("", alice, "-e", `deploy.Rollout("one", "`+app+`")`, "-e", `deploy.Status("one")`)
	if r.Code != 0 || !regexp.MustCompile(`^[0-9a-f]{8} pending \(0/0 ready\) generation 2\n`).MatchString(r.Stdout) ||
		!regexp.MustCompile(`(?m)^`+m[1]+`\s+1\s+(active|draining)\s`).MatchString(r.Stdout) {
		t.Fatalf("alice deploys a command in trusted acme: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// issued finds the secret of the token tokens.IssueFor printed for subject.
func issued(t *testing.T, out, subject, tenant string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^token \S+ for ` + subject + ` in tenant ` + tenant + `, expires .*\n(\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no token for %s in:\n%s", subject, out)
	}
	return m[1]
}

// refused runs one expression with env and wants it to fail with want in
// its error.
func refused(t *testing.T, op *operator, env []string, want, expr string) {
	t.Helper()
	r := op.dsh("", env, "-e", expr)
	if r.Code != 1 || !strings.Contains(r.Stderr, want) {
		t.Errorf("%s: exit %d, want 1 and an error with %q\n%s%s", expr, r.Code, want, r.Stdout, r.Stderr)
	}
}
