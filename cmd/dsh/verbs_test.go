package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/discovery-platform/discovery/client"
	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
)

// TestOperatorDeploysWithVerbs is an operator's day with dsh's verbs, no
// Go typed: deploy and watch the revision come up, deploy again, read the
// apps, the status and the sessions (as tables and as JSON a script
// parses), roll back, watch a broken deploy fail with what its replica
// said, follow the logs and the activity log and leave them with Ctrl-C.
func TestOperatorDeploysWithVerbs(t *testing.T) {
	p := startPlatform(t)
	bin := build.Binary(t)
	op := newOperator(t, p)
	c := p.Client(t)
	ctx := context.Background()
	// A long reconnect_grace: the replaced revision still drains when the
	// operator rolls back to it.
	if _, err := c.CreateApp(ctx, "default", client.AppSpec{Name: "hello", HealthPath: client.String("/healthz"),
		ReconnectGrace: client.Dur(5 * time.Minute)}); err != nil {
		t.Fatal(err)
	}

	// deploy --wait: a line per state, then active, exit 0.
	r := op.dsh("", nil, "deploy", "hello", "--wait", "--label", "v1", "--", bin)
	m := regexp.MustCompile(`(?m)^deployed hello: revision ([0-9a-f]{8}) \(generation 1\)\n(revision [0-9a-f]{8} (pending|starting).*\n)+revision ([0-9a-f]{8}) active, 1/1 ready: .*\n$`).FindStringSubmatch(r.Stdout)
	if r.Code != 0 || m == nil || m[1] != m[4] {
		t.Fatalf("deploy --wait: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	v1 := m[1]

	// Again with --json: progress on stderr, the active revision on stdout.
	r = op.dsh("", nil, "deploy", "hello", "--env", "GREETING=v2", "--wait", "--json", "--", bin)
	var v2 client.Revision
	if err := json.Unmarshal([]byte(r.Stdout), &v2); r.Code != 0 || err != nil || v2.State != client.Active || v2.Env["GREETING"] != "v2" {
		t.Fatalf("deploy --wait --json: exit %d, %v\n%s%s", r.Code, err, r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "revision "+v2.ID+" active") {
		t.Errorf("deploy --json: no progress on stderr:\n%s", r.Stderr)
	}

	// The apps, the status and the sessions, for people and for scripts.
	r = op.dsh("", nil, "apps")
	if r.Code != 0 || !regexp.MustCompile(`(?m)^APP\s+ACTIVE\s+REPLICAS\s+SESSIONS\s+LAST DEPLOY\nhello\s+`+v2.ID+`\s+1/1\s+0\s+`+v2.ID+` active$`).MatchString(r.Stdout) {
		t.Fatalf("dsh apps: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	var list []appLine
	r = op.dsh("", nil, "apps", "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &list); r.Code != 0 || err != nil || len(list) != 1 || list[0].Active != v2.ID || list[0].Ready != 1 {
		t.Fatalf("dsh apps --json: exit %d, %v\n%s%s", r.Code, err, r.Stdout, r.Stderr)
	}
	r = op.dsh("", nil, "status", "hello")
	for _, want := range []string{`(?m)^app\s+default/hello$`, `(?m)^` + v2.ID + `\s+2\s+active\s+1/1\s+0\s`, `(?m)^` + v1 + `\s+1\s+draining\s+1/1\s+0\s.*\sv1$`,
		`(?m)^REPLICA\s+REVISION\s+STATE\s+ADDRESS\s+SESSIONS\n`, `(?m)^\S+\s+` + v2.ID + `\s+ready\s+127\.0\.0\.1:\d+\s+0 \(0 connections, 0 reservations\)$`} {
		if !regexp.MustCompile(want).MatchString(r.Stdout) {
			t.Errorf("dsh status lacks %s: exit %d\n%s%s", want, r.Code, r.Stdout, r.Stderr)
		}
	}
	var st appStatus
	r = op.dsh("", nil, "status", "hello", "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &st); r.Code != 0 || err != nil || st.App.Name != "hello" || len(st.Revisions) != 2 || st.Revisions[0].ID != v2.ID {
		t.Fatalf("dsh status --json: exit %d, %v\n%s%s", r.Code, err, r.Stdout, r.Stderr)
	}
	if _, err := c.GetEndpoint(ctx, "default", "hello"); err != nil { // a reservation on v2
		t.Fatal(err)
	}
	var ss client.Sessions
	r = op.dsh("", nil, "sessions", "hello", "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &ss); r.Code != 0 || err != nil || ss.Revisions[v2.ID] != 1 || ss.RevisionKinds[v2.ID].Reservations != 1 {
		t.Fatalf("dsh sessions --json: exit %d, %v\n%s%s", r.Code, err, r.Stdout, r.Stderr)
	}
	r = op.dsh("", nil, "sessions", "hello")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "REVISION  REPLICA  SESSIONS  CONNECTIONS  RESERVATIONS  LEASES\n") ||
		!regexp.MustCompile(`(?m)^`+v1+`\s+\(all\)\s+0\s+0\s+0\s+0\n`+v1+`\s+\S+\s+0\s`).MatchString(r.Stdout) ||
		!regexp.MustCompile(`(?m)^`+v2.ID+`\s+\(all\)\s+1\s+0\s+1\s+0\n`+v2.ID+`\s+\S+\s+1\s+0\s+1\s+0$`).MatchString(r.Stdout) {
		t.Fatalf("dsh sessions: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// rollback: v1 still drains, so it is active again at once.
	r = op.dsh("", nil, "rollback", "hello")
	if r.Code != 0 || r.Stdout != "rolled back hello: revision "+v1+" (generation 1) is active again\n" {
		t.Fatalf("dsh rollback: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if rev, err := c.GetRevision(ctx, "default", "hello", v1); err != nil || rev.State != client.Active {
		t.Fatalf("after rollback %s is %s (%v)", v1, rev.State, err)
	}

	// A broken deploy: it fails, says what its replica printed, exit 1; v1
	// serves on.
	r = op.dsh("", nil, "deploy", "hello", "--wait", "--", "/bin/sh", "-c", "echo boom >&2; exit 3")
	if r.Code != 1 || !regexp.MustCompile(`(?m)^revision [0-9a-f]{8} failed: replicas exited \d+ times`).MatchString(r.Stdout+r.Stderr) ||
		!strings.Contains(r.Stderr, "  | boom") {
		t.Fatalf("a failing deploy: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = op.dsh("", nil, "apps")
	if !regexp.MustCompile(`(?m)^hello\s+` + v1 + ` \(v1\)\s+1/1\s+\d+\s+[0-9a-f]{8} failed: replicas exited`).MatchString(r.Stdout) {
		t.Errorf("dsh apps after the failed deploy:\n%s%s", r.Stdout, r.Stderr)
	}

	// logs and events, once and followed; Ctrl-C ends a follow with exit 0.
	r = op.dsh("", nil, "logs", "hello")
	if r.Code != 0 || !regexp.MustCompile(`(?m)^\S+\| listening on 127\.0\.0\.1:\d+$`).MatchString(r.Stdout) {
		t.Fatalf("dsh logs: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	var lines []logLine
	r = op.dsh("", nil, "logs", "hello", "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &lines); r.Code != 0 || err != nil || len(lines) == 0 || !strings.HasPrefix(lines[0].Line, "listening on ") {
		t.Fatalf("dsh logs --json: exit %d, %v\n%s%s", r.Code, err, r.Stdout, r.Stderr)
	}
	logs := op.start("logs", "hello", "-f")
	logs.expect(t, `(?m)^\S+\| listening on 127\.0\.0\.1:\d+$`)
	// Scaled up while followed: the new replica's output comes too.
	r = op.dsh("", nil, "scale", "hello", "2", "--json")
	var a client.App
	if err := json.Unmarshal([]byte(r.Stdout), &a); r.Code != 0 || err != nil || a.Replicas != 2 {
		t.Errorf("dsh scale: exit %d, %v\n%s%s", r.Code, err, r.Stdout, r.Stderr)
	}
	logs.expect(t, `(?m)^(\S+)\| listening on .*\n(?:.*\n)*(\S+)\| listening on `)
	logs.interrupt(t)
	if m := regexp.MustCompile(`(?m)^(\S+)\| listening on`).FindAllStringSubmatch(logs.output(), -1); len(m) != 2 || m[0][1] == m[1][1] {
		t.Errorf("logs -f through a scale-up, want each replica's start once:\n%s", logs.output())
	}
	events := op.start("events", "hello", "-f", "--json")
	events.expect(t, `"type":"transition".*"to":"active"`)
	events.interrupt(t)
	for _, line := range strings.Split(strings.TrimSpace(events.output()), "\n") {
		var e client.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil || e.App != "hello" {
			t.Errorf("events -f --json line %q: %v", line, err)
		}
	}
	r = op.dsh("", nil, "events", "hello", "--type", "deployed")
	if r.Code != 0 || len(regexp.MustCompile(`(?m)^\S+ ↑ deployed `).FindAllString(r.Stdout, -1)) != 3 {
		t.Errorf("dsh events --type deployed: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// Bad input: a typo, a missing argument, an API error.
	r = op.dsh("", nil, "stauts", "hello")
	if r.Code != 2 || !strings.Contains(r.Stderr, `unknown command "stauts"; did you mean "status"?`) {
		t.Errorf("a typo: exit %d\n%s", r.Code, r.Stderr)
	}
	r = op.dsh("", nil, "logs")
	if r.Code != 2 || !strings.HasPrefix(r.Stderr, "dsh logs: missing APP\nusage: dsh logs APP [REV[/REPLICA]] [flags]\n") {
		t.Errorf("no app: exit %d\n%s", r.Code, r.Stderr)
	}
	r = op.dsh("", nil, "status", "nope")
	if r.Code != 1 || !regexp.MustCompile(`^dsh status: .*nope.* \(not_found\)\n$`).MatchString(r.Stderr) {
		t.Errorf("a missing app: exit %d\n%s", r.Code, r.Stderr)
	}
	r = op.dsh("", nil, "retire", "hello", v1)
	if r.Code != 1 || !strings.Contains(r.Stderr, "(illegal_state)") {
		t.Errorf("retire the active revision: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = op.dsh("", nil, "retire", "hello", v2.ID)
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "retiring hello: revision "+v2.ID+" is ") {
		t.Errorf("retire v2: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// Rolled back to a retired revision, what it ran is deployed again; on
	// a terminal the progress is one line rewritten in place.
	out, code := op.onTerminal(t, "rollback", "hello", v2.ID, "--wait")
	if code != 0 || !regexp.MustCompile(`^revision `+v2.ID+` is retired; redeployed what it ran to hello: revision ([0-9a-f]{8}) \(generation 4\)\r?\n(\r\x1b\[Krevision [0-9a-f]{8} \w+, \d/\d ready[^\r\n]*)+\r\x1b\[Krevision [0-9a-f]{8} active, 2/2 ready: [^\r\n]*\r?\n$`).MatchString(out) {
		t.Errorf("rollback to a retired revision on a terminal: exit %d\n%q", code, out)
	}

	// Completion: verbs, flags, and the app names from the platform.
	for line, want := range map[string]string{"dsh sta": "status", "dsh deploy --wa": "--wait", "dsh logs he": "hello", "dsh completion z": "zsh"} {
		words := strings.Fields(line)
		script := `eval "$(dsh completion bash)"; COMP_WORDS=(` + line + `); COMP_CWORD=` + fmt.Sprint(len(words)-1) + `; _dsh; echo "${COMPREPLY[*]}"`
		cmd := exec.Command("bash", "-c", script)
		cmd.Env = append(append([]string{}, op.Env...), "PATH="+filepath.Dir(dshBin)+":"+os.Getenv("PATH"))
		got, err := cmd.Output()
		if err != nil || strings.TrimSpace(string(got)) != want {
			t.Errorf("completing %q: %q, %v; want %q", line, got, err, want)
		}
	}

	r = op.dsh("", nil, "scale", "hello")
	if r.Code != 2 || !strings.HasPrefix(r.Stderr, "dsh scale: missing N (or --min, --max, --target)\nusage: dsh scale APP [N] [flags]\n") {
		t.Errorf("dsh scale without N: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// onTerminal runs dsh on a pseudo-terminal to its end (at most 60 s): what
// it wrote, control characters included, and its exit status.
func (o *operator) onTerminal(t *testing.T, args ...string) (string, int) {
	t.Helper()
	bin, _ := binaries(t)
	cmd := exec.Command(bin, args...)
	cmd.Env = o.Env
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(f); done <- b }() // ends with EIO once dsh is gone
	var out []byte
	select {
	case out = <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("dsh %v on a terminal: still running after 60s", args)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// follower is a dsh that runs until interrupted (logs -f, events -f).
type follower struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	errs bytes.Buffer
	done chan struct{}
	err  error
}

// Write collects stdout; safe while the test reads it.
func (f *follower) Write(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.Write(b)
}

func (f *follower) output() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.String()
}

// start runs dsh in the background; it is killed at cleanup if still there.
func (o *operator) start(args ...string) *follower {
	o.t.Helper()
	bin, _ := binaries(o.t)
	f := &follower{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	f.cmd.Env = o.Env
	f.cmd.Stdout, f.cmd.Stderr = f, &f.errs
	if err := f.cmd.Start(); err != nil {
		o.t.Fatal(err)
	}
	go func() { f.err = f.cmd.Wait(); close(f.done) }()
	o.t.Cleanup(func() {
		select {
		case <-f.done:
		default:
			_ = f.cmd.Process.Kill()
			<-f.done
		}
	})
	return f
}

// expect waits (at most 20 s) for stdout to match re.
func (f *follower) expect(t *testing.T, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(20 * time.Second)
	for !rx.MatchString(f.output()) {
		select {
		case <-f.done:
			t.Fatalf("dsh %v exited (%v) before printing %s:\n%s%s", f.cmd.Args[1:], f.err, re, f.output(), f.errs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("dsh %v printed no %s within 20s:\n%s", f.cmd.Args[1:], re, f.output())
		}
	}
}

// interrupt sends Ctrl-C's SIGINT and wants dsh to exit 0 within 10 s.
func (f *follower) interrupt(t *testing.T) {
	t.Helper()
	if err := f.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		_ = f.cmd.Process.Signal(syscall.SIGQUIT)
		t.Fatalf("dsh %v still runs 10s after SIGINT", f.cmd.Args[1:])
	}
	if f.err != nil {
		t.Fatalf("dsh %v after SIGINT: %v\n%s", f.cmd.Args[1:], f.err, f.errs.String())
	}
}
