package main

// The verbs: dsh apps, status, deploy, rollback, retire, scale, logs,
// events, sessions and completion. Each is one call or a few to package
// client (the REPL's client), printed as a table for people or, with
// --json, as JSON for scripts.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/discovery-platform/discovery/client"
)

// verb is one sub-command of dsh.
type verb struct {
	name string
	// args is the positional arguments as the usage shows them; min and max
	// bound their count (max -1: any).
	args     string
	min, max int
	summary  string
	// setup declares the verb's own flags and returns what runs once they
	// are parsed.
	setup func(fs *flag.FlagSet) func(x *call) error
}

// verbs is every verb, in the order the usage lists them.
var verbs []*verb

func init() {
	verbs = []*verb{
		{name: "apps", max: 0, summary: "list the apps: active revision, replicas, sessions, last deploy", setup: appsVerb},
		{name: "status", args: "APP", min: 1, max: 1, summary: "an app's revisions, replicas and sessions", setup: statusVerb},
		{name: "deploy", args: "APP IMAGE | APP -- COMMAND [ARG...]", min: 1, max: 2,
			summary: "deploy a revision; --wait follows it until active or failed", setup: deployVerb},
		{name: "rollback", args: "APP [REV]", min: 1, max: 2,
			summary: "re-activate REV, by default the revision that was active before", setup: rollbackVerb},
		{name: "retire", args: "APP REV", min: 2, max: 2, summary: "retire a revision now, whatever its sessions", setup: retireVerb},
		{name: "scale", args: "APP [N]", min: 1, max: 2,
			summary: "set the active revision's replicas (or --min/--max/--target for the autoscaler)", setup: scaleVerb},
		{name: "logs", args: "APP [REV[/REPLICA]]", min: 1, max: 2,
			summary: "replicas' output (the current revision by default); -f follows", setup: logsVerb},
		{name: "events", args: "APP", min: 1, max: 1, summary: "an app's activity log; -f follows it live", setup: eventsVerb},
		{name: "sessions", args: "APP", min: 1, max: 1,
			summary: "connections, reservations and leases per revision and replica", setup: sessionsVerb},
		{name: "completion", args: "bash|zsh", min: 1, max: 1, summary: "print a shell completion script", setup: completionVerb},
	}
	usage += "\nEveryday verbs, no Go needed (--json on each; dsh help VERB for its flags):\n" + verbsUsage()
}

func findVerb(name string) *verb {
	for _, v := range verbs {
		if v.name == name {
			return v
		}
	}
	return nil
}

// call is one run of a verb: its arguments, the client and where to print.
type call struct {
	verb *verb
	// args are the positional arguments; command what followed "--".
	args    []string
	command []string
	json    bool
	ctx     context.Context
	c       *client.Client
	tenant  string
	stdout  io.Writer
	stderr  io.Writer
}

// usageError is bad input: exit 2 with the verb's usage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// exitCode ends a verb with a status once it has said why itself.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

// runVerb runs the verb args[0]; flagURL and flagTenant are dsh's own
// --url and --tenant (the verb's own flags of the same names win).
func runVerb(args []string, flagURL, flagTenant string) int {
	v := findVerb(args[0])
	if v == nil {
		fmt.Fprintf(os.Stderr, "dsh: unknown command %q", args[0])
		if s := suggest(args[0]); s != "" {
			fmt.Fprintf(os.Stderr, "; did you mean %q?", s)
		}
		fmt.Fprint(os.Stderr, "\n"+usage)
		return exitUsage
	}
	fs := flag.NewFlagSet("dsh "+v.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	x := &call{verb: v, stdout: os.Stdout, stderr: os.Stderr}
	url := fs.String("url", flagURL, "the platform's API URL")
	tenant := fs.String("tenant", flagTenant, "the tenant to work in")
	fs.BoolVar(&x.json, "json", false, "print JSON (JSON lines when following)")
	run := v.setup(fs)
	rest := args[1:]
	if v.name == "deploy" {
		for i, a := range rest {
			if a == "--" {
				rest, x.command = rest[:i], rest[i+1:]
				break
			}
		}
	}
	pos, err := parseInterspersed(fs, rest)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(os.Stdout, verbUsage(v, fs))
		return exitOK
	case err != nil:
		fmt.Fprintf(os.Stderr, "dsh %s: %v\n%s", v.name, err, verbUsage(v, fs))
		return exitUsage
	case len(pos) < v.min:
		fmt.Fprintf(os.Stderr, "dsh %s: missing %s\n%s", v.name, strings.Fields(v.args)[len(pos)], verbUsage(v, fs))
		return exitUsage
	case v.max >= 0 && len(pos) > v.max:
		fmt.Fprintf(os.Stderr, "dsh %s: too many arguments (%s)\n%s", v.name, strings.Join(pos[v.max:], " "), verbUsage(v, fs))
		return exitUsage
	}
	x.args = pos
	if v.name != "completion" {
		set, c, err := session(*url, *tenant)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dsh:", err)
			return exitError
		}
		x.c, x.tenant = c, set.Tenant
	}
	ctx, stop := interrupts()
	defer stop()
	x.ctx = ctx
	err = run(x)
	var ue usageError
	var code exitCode
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "dsh %s: %s\n%s", v.name, ue.msg, verbUsage(v, fs))
		return exitUsage
	case errors.As(err, &code):
		return int(code)
	case ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "interrupted")
		return exitInterrupted
	}
	fmt.Fprintf(os.Stderr, "dsh %s: %v\n", v.name, err)
	return exitError
}

// parseInterspersed parses flags wherever they are among the positional
// arguments (dsh deploy hello img:1 --wait), as operators type them.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// verbUsage is one verb's usage: its line and its flags.
func verbUsage(v *verb, fs *flag.FlagSet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: dsh %s %s [flags]\n  %s\nflags:\n", v.name, v.args, v.summary)
	w := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		name, what := flag.UnquoteUsage(f)
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		fmt.Fprintf(w, "  %s%s %s\t%s\n", dash, f.Name, name, what)
	})
	w.Flush()
	return b.String()
}

// verbsUsage is the verbs' lines of dsh's usage.
func verbsUsage() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	for _, v := range verbs {
		fmt.Fprintf(w, "  dsh %s %s\t%s\n", v.name, v.args, v.summary)
	}
	w.Flush()
	return b.String()
}

// suggest is the command closest to a mistyped one, or "".
func suggest(typed string) string {
	names := []string{"run", "login", "logout", "help"}
	for _, v := range verbs {
		names = append(names, v.name)
	}
	best, bestD := "", 3
	for _, n := range names {
		d := distance(typed, n)
		if strings.HasPrefix(n, typed) && len(typed) >= 2 {
			d = min(d, 2) // "dep" for deploy
		}
		if d < bestD || (d == bestD && best != "" && n < best) {
			best, bestD = n, d
		}
	}
	if bestD > len(typed)/2+1 {
		return ""
	}
	return best
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// printJSON writes v as one indented JSON document.
func (x *call) printJSON(v any) error {
	enc := json.NewEncoder(x.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printLine writes v as one line of JSON (a followed stream).
func (x *call) printLine(v any) error { return json.NewEncoder(x.stdout).Encode(v) }

// table prints rows aligned under header (tab-separated columns; no
// header line when it is "").
func (x *call) table(header string, rows [][]string) {
	w := tabwriter.NewWriter(x.stdout, 0, 8, 2, ' ', 0)
	if header != "" {
		fmt.Fprintln(w, header)
	}
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	w.Flush()
}

// app is the APP argument.
func (x *call) app() string { return x.args[0] }

// arg is the i-th positional argument, "" when not given.
func (x *call) arg(i int) string {
	if i < len(x.args) {
		return x.args[i]
	}
	return ""
}

// or is v, or dash when v is empty (a table's empty cell).
func or(v string) string {
	if v == "" {
		return "-"
	}
	return v
}

// sortedKeys are m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
