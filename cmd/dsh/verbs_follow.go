package main

// dsh logs and dsh events: replicas' output and the activity log, once or
// followed (-f) until Ctrl-C, which ends them with exit 0.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/discovery-platform/discovery/client"
)

// logLine is one line of a replica's output as --json writes it.
type logLine struct {
	Revision string `json:"revision"`
	Replica  string `json:"replica"`
	Line     string `json:"line"`
}

// logsPoll is how often logs -f reads the replicas' output again.
const logsPoll = 500 * time.Millisecond

func logsVerb(fs *flag.FlagSet) func(*call) error {
	follow := fs.Bool("f", false, "follow: print new output as it comes, until Ctrl-C")
	tail := fs.Int("tail", 8<<10, "bytes of each replica's output to show first")
	return func(x *call) error {
		rev, replica, _ := strings.Cut(x.arg(1), "/")
		if *tail <= 0 || *tail > 1<<20 {
			return usageError{"--tail: want 1 to 1048576 bytes"}
		}
		seen := map[string]string{} // replica -> the output printed of it
		printed := false
		// Without -f, --json is one document: the lines are gathered.
		var gathered *[]logLine
		if x.json && !*follow {
			gathered = &[]logLine{}
		}
		for {
			r, err := x.logsRevision(rev)
			if err != nil {
				if *follow && x.ctx.Err() != nil {
					return nil
				}
				return err
			}
			for _, p := range r.Replicas {
				if (replica != "" && p.ID != replica) || (replica == "" && p.State == "exited") {
					continue
				}
				out, err := x.c.ReplicaLogs(x.ctx, x.tenant, x.app(), r.ID, p.ID, 1<<20)
				switch {
				case x.ctx.Err() != nil && *follow:
					return nil
				case errors.Is(err, client.ErrNotFound) || errors.Is(err, client.ErrGone):
					continue // gone meanwhile
				case err != nil:
					return err
				}
				prev, known := seen[p.ID]
				fresh := unseen(prev, out)
				if !known {
					fresh = lastBytes(out, *tail)
				}
				complete := fresh[:strings.LastIndexByte(fresh, '\n')+1]
				if !*follow {
					complete = fresh // the partial last line too: nothing comes after
				}
				seen[p.ID] = out[:len(out)-(len(fresh)-len(complete))]
				if err := x.printLog(gathered, r.ID, p.ID, complete, replica != ""); err != nil {
					return err
				}
				printed = printed || complete != ""
			}
			if !*follow {
				if !printed && replica == "" {
					x.lastOutput(gathered, r)
				}
				if gathered != nil {
					return x.printJSON(*gathered)
				}
				return nil
			}
			select {
			case <-x.ctx.Done():
				return nil
			case <-time.After(logsPoll):
			}
		}
	}
}

// logsRevision is the revision logs reads: rev, or else the app's current
// one (see client.Current), or else its newest.
func (x *call) logsRevision(rev string) (client.Revision, error) {
	if rev != "" {
		return x.c.GetRevision(x.ctx, x.tenant, x.app(), rev)
	}
	revs, err := x.c.ListRevisions(x.ctx, x.tenant, x.app())
	if err != nil {
		return client.Revision{}, err
	}
	if r, ok := client.Current(revs); ok {
		return r, nil
	}
	if len(revs) == 0 {
		return client.Revision{}, fmt.Errorf("app %s has no revision", x.app())
	}
	return revs[0], nil
}

// printLog prints a replica's lines, each prefixed with "<replica>| "
// unless the replica was named; with --json, a JSON line each, or into
// gathered when not nil.
func (x *call) printLog(gathered *[]logLine, rev, replica, out string, bare bool) error {
	if out == "" {
		return nil
	}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var err error
		switch {
		case gathered != nil:
			*gathered = append(*gathered, logLine{Revision: rev, Replica: replica, Line: line})
		case x.json:
			err = x.printLine(logLine{Revision: rev, Replica: replica, Line: line})
		case bare:
			_, err = fmt.Fprintln(x.stdout, line)
		default:
			_, err = fmt.Fprintf(x.stdout, "%s| %s\n", replica, line)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// lastOutput prints what the platform kept of a revision whose replicas are
// gone (a failed deploy).
func (x *call) lastOutput(gathered *[]logLine, r client.Revision) {
	if r.LastOutput == "" {
		fmt.Fprintf(x.stderr, "(no output from revision %s, %s)\n", r.ID, r.State)
		return
	}
	fmt.Fprintf(x.stderr, "(revision %s is %s; the last output of its last crashed replica:)\n", r.ID, r.State)
	_ = x.printLog(gathered, r.ID, "crashed", strings.TrimRight(r.LastOutput, "\n")+"\n", false)
}

// unseen is what cur (a replica's output tail, read again) holds after
// prev (what was read before). The platform keeps a bounded tail, so the
// start of prev may have gone: the end of prev is looked for in cur.
func unseen(prev, cur string) string {
	if strings.HasPrefix(cur, prev) {
		return cur[len(prev):]
	}
	anchor := prev[len(prev)-min(512, (len(prev)+1)/2):]
	if i := strings.LastIndex(cur, anchor); i >= 0 {
		return cur[i+len(anchor):]
	}
	return cur // lost track (a restart of the output): all of it is new
}

// lastBytes is the end of s, at most n bytes, from a line's start.
func lastBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func eventsVerb(fs *flag.FlagSet) func(*call) error {
	follow := fs.Bool("f", false, "follow the live stream, until Ctrl-C")
	n := fs.Int("n", 30, "how many recent events to show first (at most 500)")
	typ := fs.String("type", "", "only events of this type (deployed, transition, replica_crashed…)")
	actor := fs.String("actor", "", "only events of this actor (a token's subject, or platform)")
	return func(x *call) error {
		if *n < 1 || *n > 500 {
			return usageError{"-n: want 1 to 500"}
		}
		q := client.EventQuery{Limit: *n, Type: *typ, Actor: *actor}
		if !*follow {
			evs, err := x.c.QueryEvents(x.ctx, x.tenant, x.app(), q)
			if err != nil {
				return err
			}
			if x.json {
				if evs == nil {
					evs = []client.Event{}
				}
				return x.printJSON(evs)
			}
			if len(evs) == 0 {
				fmt.Fprintln(x.stdout, "(no events)")
			}
			for _, e := range evs {
				fmt.Fprintln(x.stdout, e)
			}
			return nil
		}
		for {
			err := x.c.StreamEvents(x.ctx, x.tenant, x.app(), q, func(e client.Event) error {
				q.After = e.ID
				if x.json {
					return x.printLine(e)
				}
				_, err := fmt.Fprintln(x.stdout, e)
				return err
			})
			switch {
			case x.ctx.Err() != nil:
				return nil
			case errors.Is(err, client.ErrAppDeleted):
				fmt.Fprintf(x.stderr, "(app %s was deleted)\n", x.app())
				return nil
			case !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, client.ErrUnreachable) && !errors.Is(err, client.ErrUnavailable):
				return err
			}
			// The platform ended the stream (a restart): go on where it was.
			select {
			case <-x.ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		}
	}
}
