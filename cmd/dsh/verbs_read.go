package main

// dsh apps, dsh status and dsh sessions: what runs, read-only.

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/discovery-platform/discovery/client"
)

// appLine is one app as dsh apps --json writes it.
type appLine struct {
	Name string `json:"name"`
	// Active is the active revision's id ("" when none), Label its label.
	Active string `json:"active_revision,omitempty"`
	Label  string `json:"label,omitempty"`
	// Ready and Running count the active revision's replicas.
	Ready    int `json:"ready"`
	Running  int `json:"running"`
	Replicas int `json:"replicas"`
	// Sessions is every serving revision's sessions.
	Sessions   int                  `json:"sessions"`
	LastDeploy *client.DeployStatus `json:"last_deploy,omitempty"`
	Deleting   bool                 `json:"deleting,omitempty"`
	App        client.App           `json:"app"`
}

func appsVerb(fs *flag.FlagSet) func(*call) error {
	quiet := fs.Bool("q", false, "print the names only, one a line")
	return func(x *call) error {
		list, err := x.c.ListApps(x.ctx, x.tenant)
		if err != nil {
			return err
		}
		if *quiet {
			for _, a := range list {
				fmt.Fprintln(x.stdout, a.Name)
			}
			return nil
		}
		lines := make([]appLine, 0, len(list))
		for _, a := range list {
			l := appLine{Name: a.Name, Replicas: a.Replicas, LastDeploy: a.LastDeploy, Deleting: a.Deleting, App: a}
			revs, err := x.c.ListRevisions(x.ctx, x.tenant, a.Name)
			if err != nil {
				return err
			}
			for _, r := range revs {
				if r.State == client.Active {
					l.Active, l.Label = r.ID, r.Label
					l.Ready, l.Running = r.Ready()
				}
			}
			s, err := x.c.Sessions(x.ctx, x.tenant, a.Name)
			if err != nil {
				return err
			}
			for _, n := range s.Revisions {
				l.Sessions += n
			}
			lines = append(lines, l)
		}
		if x.json {
			return x.printJSON(lines)
		}
		if len(lines) == 0 {
			fmt.Fprintln(x.stdout, "(no apps)")
			return nil
		}
		rows := make([][]string, 0, len(lines))
		for _, l := range lines {
			active := or(l.Active)
			if l.Label != "" {
				active += " (" + l.Label + ")"
			}
			replicas := fmt.Sprintf("%d/%d", l.Ready, l.App.Replicas)
			if a := l.App; a.TargetSessions > 0 {
				replicas = fmt.Sprintf("%d ready (auto %d-%d)", l.Ready, a.MinReplicas, a.MaxReplicas)
			}
			rows = append(rows, []string{l.Name, active, replicas, fmt.Sprint(l.Sessions), lastDeploy(l.App)})
		}
		x.table("APP\tACTIVE\tREPLICAS\tSESSIONS\tLAST DEPLOY", rows)
		return nil
	}
}

// lastDeploy says how the app's last deploy went.
func lastDeploy(a client.App) string {
	d := a.LastDeploy
	switch {
	case a.Deleting:
		return "deleting"
	case d == nil:
		return "-"
	case d.Failed:
		return d.Revision + " failed: " + d.Reason
	}
	return d.Revision + " " + string(d.State)
}

// appStatus is dsh status --json.
type appStatus struct {
	App       client.App        `json:"app"`
	Revisions []client.Revision `json:"revisions"`
	Sessions  client.Sessions   `json:"sessions"`
}

func statusVerb(*flag.FlagSet) func(*call) error {
	return func(x *call) error {
		a, err := x.c.GetApp(x.ctx, x.tenant, x.app())
		if err != nil {
			return err
		}
		revs, err := x.c.ListRevisions(x.ctx, x.tenant, x.app())
		if err != nil {
			return err
		}
		s, err := x.c.Sessions(x.ctx, x.tenant, x.app())
		if err != nil {
			return err
		}
		if x.json {
			return x.printJSON(appStatus{App: a, Revisions: revs, Sessions: s})
		}
		if a.LastDeploy == nil && len(revs) > 0 {
			// A single app's answer does not carry it; the apps list's is
			// the newest revision.
			r := revs[0]
			a.LastDeploy = &client.DeployStatus{Revision: r.ID, Generation: r.Generation, State: r.State, Reason: r.Reason,
				Label: r.Label, Failed: r.State == client.Failed}
		}
		replicas := fmt.Sprint(a.Replicas)
		if a.TargetSessions > 0 {
			replicas = fmt.Sprintf("%d-%d, %d sessions each", a.MinReplicas, a.MaxReplicas, a.TargetSessions)
		}
		x.table("", [][]string{
			{"app", a.Tenant + "/" + a.Name},
			{"replicas", replicas},
			{"generation", fmt.Sprint(a.Generation)},
			{"last deploy", lastDeploy(a)},
			{"sessions", strings.TrimPrefix(s.String(), "sessions: ")},
		})
		if len(revs) == 0 {
			fmt.Fprintln(x.stdout, "\n(no revisions)")
			return nil
		}
		fmt.Fprintln(x.stdout)
		rows := make([][]string, 0, len(revs))
		var replicaRows [][]string
		for _, r := range revs {
			ready, running := r.Ready()
			sessions := "-"
			if n, ok := s.Revisions[r.ID]; ok {
				sessions = fmt.Sprint(n)
			}
			rows = append(rows, []string{r.ID, fmt.Sprint(r.Generation), string(r.State), fmt.Sprintf("%d/%d", ready, running),
				sessions, since(r.CreatedAt), or(r.What()), or(r.Reason), or(r.Label)})
			for _, p := range r.Replicas {
				n := "-"
				if k, ok := s.Replica(p.ID); ok {
					n = fmt.Sprintf("%d (%s)", k.Total(), k)
				} else if v, ok := s.Replicas[p.ID]; ok {
					n = fmt.Sprint(v)
				}
				state := p.State
				if p.Stopping && state != "stopping" {
					state += " (stopping)"
				}
				replicaRows = append(replicaRows, []string{p.ID, r.ID, state, or(p.Address), n})
			}
		}
		x.table("REVISION\tGEN\tSTATE\tREADY\tSESSIONS\tAGE\tRUNS\tREASON\tLABEL", rows)
		fmt.Fprintln(x.stdout)
		if len(replicaRows) == 0 {
			fmt.Fprintln(x.stdout, "(no replicas)")
			return nil
		}
		x.table("REPLICA\tREVISION\tSTATE\tADDRESS\tSESSIONS", replicaRows)
		return nil
	}
}

// since is how long ago t was, coarsely ("42s", "5m", "3h", "2d").
func since(t time.Time) string {
	d := time.Since(t)
	switch {
	case t.IsZero():
		return "-"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func sessionsVerb(*flag.FlagSet) func(*call) error {
	return func(x *call) error {
		s, err := x.c.Sessions(x.ctx, x.tenant, x.app())
		if err != nil {
			return err
		}
		if x.json {
			return x.printJSON(s)
		}
		if !s.Known {
			fmt.Fprintln(x.stderr, "(the platform's session table is still loading: the counts may be low)")
		}
		if len(s.Revisions) == 0 {
			fmt.Fprintln(x.stdout, "(no serving revision)")
			return nil
		}
		// Which revision each replica serves: from the revisions list.
		revs, err := x.c.ListRevisions(x.ctx, x.tenant, x.app())
		if err != nil {
			return err
		}
		of := map[string]string{}
		for _, r := range revs {
			for _, p := range r.Replicas {
				of[p.ID] = r.ID
			}
		}
		var rows [][]string
		row := func(rev, replica string, total int, k client.SessionKinds, split bool) {
			if !split {
				rows = append(rows, []string{rev, replica, fmt.Sprint(total), "-", "-", "-"})
				return
			}
			rows = append(rows, []string{rev, replica, fmt.Sprint(total), fmt.Sprint(k.Connections), fmt.Sprint(k.Reservations), fmt.Sprint(k.Leases)})
		}
		for _, rev := range sortedKeys(s.Revisions) {
			k, ok := s.Revision(rev)
			row(rev, "(all)", s.Revisions[rev], k, ok)
			for _, p := range sortedKeys(s.Replicas) {
				if of[p] != rev {
					continue
				}
				k, ok := s.Replica(p)
				row(rev, p, s.Replicas[p], k, ok)
			}
		}
		x.table("REVISION\tREPLICA\tSESSIONS\tCONNECTIONS\tRESERVATIONS\tLEASES", rows)
		return nil
	}
}
