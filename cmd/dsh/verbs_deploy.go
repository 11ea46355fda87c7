package main

// dsh deploy, rollback, retire and scale: the verbs that change what runs.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/chzyer/readline"

	"github.com/discovery-platform/discovery/client"
)

// envFlags is a repeated --env K=V.
type envFlags map[string]string

func (e envFlags) String() string { return "" }

func (e envFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("--env %q: want KEY=VALUE", v)
	}
	e[k] = val
	return nil
}

// waitFlags are --wait and --timeout, for the verbs that start a revision.
type waitFlags struct {
	wait    *bool
	timeout *time.Duration
}

func declareWait(fs *flag.FlagSet) waitFlags {
	return waitFlags{
		wait:    fs.Bool("wait", false, "follow the revision until it is active (exit 0) or failed (exit 1, with its output)"),
		timeout: fs.Duration("timeout", 10*time.Minute, "with --wait: give up after this long (exit 1)"),
	}
}

func deployVerb(fs *flag.FlagSet) func(*call) error {
	env := envFlags{}
	fs.Var(env, "env", "set an environment variable `KEY=VALUE` (repeatable)")
	label := fs.String("label", "", "a version name shown with the revision (v1.4.2)")
	note := fs.String("note", "", "what changed, shown with the revision")
	w := declareWait(fs)
	return func(x *call) error {
		spec := client.RevisionSpec{Image: x.arg(1), Command: x.command, Label: *label, Note: *note}
		switch {
		case spec.Image != "" && len(spec.Command) > 0:
			return usageError{"give an IMAGE or -- COMMAND, not both"}
		case spec.Image == "" && len(spec.Command) == 0:
			return usageError{"missing IMAGE (or -- COMMAND ARG...)"}
		case strings.ContainsAny(spec.Image[:min(1, len(spec.Image))], "/.~") || strings.ContainsAny(spec.Image, " \t"):
			return usageError{fmt.Sprintf("%q is a command, not an image: dsh deploy %s -- %s", spec.Image, x.app(), spec.Image)}
		}
		if len(env) > 0 {
			spec.Env = env
		}
		rev, err := x.c.Deploy(x.ctx, x.tenant, x.app(), spec)
		if err != nil {
			return err
		}
		return x.started(rev, "deployed", w)
	}
}

// started reports a revision just deployed and, with --wait, follows it.
func (x *call) started(rev client.Revision, what string, w waitFlags) error {
	if !*w.wait {
		if x.json {
			return x.printJSON(rev)
		}
		fmt.Fprintf(x.stdout, "%s %s: revision %s (generation %d), %s\n", what, x.app(), rev.ID, rev.Generation, rev.State)
		return nil
	}
	if !x.json {
		fmt.Fprintf(x.stdout, "%s %s: revision %s (generation %d)\n", what, x.app(), rev.ID, rev.Generation)
	}
	return x.waitActive(rev.ID, *w.timeout)
}

// progress is the live line of a revision being waited for: on a terminal
// one line rewritten in place, otherwise one line per change.
type progress struct {
	w    io.Writer
	tty  bool
	last string
	open bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		p.tty = readline.IsTerminal(int(f.Fd()))
	}
	return p
}

// show prints line (the elapsed time added on a terminal, where the line
// is rewritten; elsewhere only a changed line is printed).
func (p *progress) show(line string, elapsed time.Duration) {
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s (%s)", line, elapsed.Round(time.Second))
		p.open = true
		return
	}
	if line != p.last {
		fmt.Fprintln(p.w, line)
		p.last = line
	}
}

// end finishes a rewritten line.
func (p *progress) end() {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}

// progressLine says where a revision stands.
func progressLine(r client.Revision) string {
	ready, running := r.Ready()
	s := fmt.Sprintf("revision %s %s, %d/%d ready", r.ID, r.State, ready, running)
	if r.Crashes > 0 {
		s += fmt.Sprintf(", %d crashed", r.Crashes)
	}
	if r.State == client.Active {
		s += ": " + r.Reason
	}
	return s
}

// waitActive follows a revision until it is active (nil), failed (its
// output printed, exit 1), superseded, or the timeout.
func (x *call) waitActive(id string, timeout time.Duration) error {
	out := x.stdout
	if x.json {
		out = x.stderr // stdout is for the one JSON document
	}
	p := newProgress(out)
	defer p.end()
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	interval := 200 * time.Millisecond
	for {
		r, err := x.c.GetRevision(x.ctx, x.tenant, x.app(), id)
		switch {
		case errors.Is(err, client.ErrUnavailable):
		case err != nil:
			return err
		default:
			p.show(progressLine(r), time.Since(start))
			switch r.State {
			case client.Active:
				p.end()
				if x.json {
					return x.printJSON(r)
				}
				return nil
			case client.Failed:
				p.end()
				x.failure(r)
				if x.json {
					_ = x.printJSON(r)
				}
				return exitCode(exitError)
			case client.Draining, client.Retired:
				p.end()
				if x.json {
					_ = x.printJSON(r)
				}
				return fmt.Errorf("revision %s will not become active: it is %s (%s)", r.ID, r.State, r.Reason)
			}
		}
		select {
		case <-x.ctx.Done():
			return x.ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("revision %s is not active after %s (dsh status %s)", id, timeout, x.app())
		case <-time.After(interval):
		}
		interval = min(interval*3/2, time.Second)
	}
}

// failure prints why a revision failed: the reason, the output its last
// crashed replica left, and its crash events.
func (x *call) failure(r client.Revision) {
	w := x.stderr
	fmt.Fprintf(w, "revision %s failed: %s\n", r.ID, r.Reason)
	printed := false
	if out := strings.TrimRight(r.LastOutput, "\n"); out != "" {
		fmt.Fprintln(w, "output of its last crashed replica:")
		for _, line := range strings.Split(out, "\n") {
			fmt.Fprintln(w, "  | "+line)
		}
		printed = true
	}
	if !printed {
		for _, p := range r.Replicas {
			out, err := x.c.ReplicaLogs(x.ctx, x.tenant, x.app(), r.ID, p.ID, 4<<10)
			if err != nil || strings.TrimSpace(out) == "" {
				continue
			}
			fmt.Fprintf(w, "output of replica %s:\n", p.ID)
			for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
				fmt.Fprintln(w, "  | "+line)
			}
			printed = true
		}
	}
	evs, err := x.c.QueryEvents(x.ctx, x.tenant, x.app(), client.EventQuery{Type: client.EventReplicaCrashed, Limit: 500})
	if err != nil {
		return
	}
	var crashes []string
	for _, e := range evs {
		if e.Revision == r.ID {
			crashes = append(crashes, strings.Join(strings.Fields(e.String()), " "))
		}
	}
	if len(crashes) > 0 {
		fmt.Fprintln(w, "crashes:")
		for _, c := range crashes[max(0, len(crashes)-5):] {
			fmt.Fprintln(w, "  "+c)
		}
	} else if !printed {
		fmt.Fprintln(w, "(no output kept)")
	}
}

func rollbackVerb(fs *flag.FlagSet) func(*call) error {
	w := declareWait(fs)
	return func(x *call) error {
		revs, err := x.c.ListRevisions(x.ctx, x.tenant, x.app())
		if err != nil {
			return err
		}
		target, err := rollbackTarget(revs, x.arg(1))
		if err != nil {
			return err
		}
		if target.State == client.Draining {
			r, err := x.c.Activate(x.ctx, x.tenant, x.app(), target.ID)
			if err != nil {
				return err
			}
			if x.json {
				return x.printJSON(r)
			}
			fmt.Fprintf(x.stdout, "rolled back %s: revision %s (generation %d) is %s again\n", x.app(), r.ID, r.Generation, r.State)
			return nil
		}
		// Gone (retired): what it ran is deployed again, as a new revision.
		rev, err := x.c.Deploy(x.ctx, x.tenant, x.app(), target.Spec())
		if err != nil {
			return err
		}
		return x.started(rev, fmt.Sprintf("revision %s is %s; redeployed what it ran to", target.ID, target.State), w)
	}
}

// rollbackTarget is the revision to roll back to: rev when named, else the
// newest revision that was once active, below the active one.
func rollbackTarget(revs []client.Revision, rev string) (client.Revision, error) {
	if rev != "" {
		for _, r := range revs {
			if r.ID == rev {
				if r.State == client.Active {
					return r, fmt.Errorf("revision %s is the active one already", rev)
				}
				return r, nil
			}
		}
		return client.Revision{}, fmt.Errorf("no revision %s (dsh status lists them)", rev)
	}
	var active *client.Revision
	for i := range revs {
		if revs[i].State == client.Active {
			active = &revs[i]
			break
		}
	}
	for _, r := range revs { // newest first
		if r.ActivatedAt == nil || r.State == client.Active || r.State == client.Failed {
			continue
		}
		if active == nil || r.Generation < active.Generation {
			return r, nil
		}
	}
	return client.Revision{}, errors.New("no earlier revision was active: nothing to roll back to")
}

func retireVerb(*flag.FlagSet) func(*call) error {
	return func(x *call) error {
		r, err := x.c.Retire(x.ctx, x.tenant, x.app(), x.arg(1))
		if err != nil {
			return err
		}
		if x.json {
			return x.printJSON(r)
		}
		fmt.Fprintf(x.stdout, "retiring %s: revision %s is %s\n", x.app(), r.ID, r.State)
		return nil
	}
}

func scaleVerb(fs *flag.FlagSet) func(*call) error {
	minR := fs.Int("min", -1, "the autoscaler's fewest replicas")
	maxR := fs.Int("max", -1, "the autoscaler's most replicas")
	target := fs.Int("target", -1, "sessions per replica the autoscaler aims for (0 turns it off)")
	return func(x *call) error {
		var spec client.AppSpec
		if n := x.arg(1); n != "" {
			var v int
			if _, err := fmt.Sscan(n, &v); err != nil || v < 0 {
				return usageError{fmt.Sprintf("N %q: want a number of replicas (0 or more)", n)}
			}
			spec.Replicas = client.Int(v)
		}
		for _, f := range []struct {
			v *int
			p **int
		}{{minR, &spec.MinReplicas}, {maxR, &spec.MaxReplicas}, {target, &spec.TargetSessions}} {
			if *f.v >= 0 {
				*f.p = client.Int(*f.v)
			}
		}
		if spec == (client.AppSpec{}) {
			return usageError{"missing N (or --min, --max, --target)"}
		}
		a, err := x.c.UpdateApp(x.ctx, x.tenant, x.app(), spec)
		if err != nil {
			return err
		}
		if x.json {
			return x.printJSON(a)
		}
		s := fmt.Sprintf("scaled %s: replicas %d", a.Name, a.Replicas)
		if a.TargetSessions > 0 {
			s += fmt.Sprintf(", autoscaler %d-%d at %d sessions each", a.MinReplicas, a.MaxReplicas, a.TargetSessions)
		}
		fmt.Fprintln(x.stdout, s)
		return nil
	}
}
