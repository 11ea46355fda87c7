package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/discovery-platform/discovery/bench/internal/rig"
	"github.com/discovery-platform/discovery/internal/testkit/proctest"
)

// Summary is what a run found; Failures lists the goals it missed.
type Summary struct {
	Seed       int64
	Iterations int
	Elapsed    time.Duration
	Kills      map[string]int

	Sessions, Completed                         int64
	DroppedReplica, DroppedGateway, Unexpected  int64
	Reconnected, ReconnectGone, ReconnectFailed int64
	Messages, WrongEcho                         int64
	ConnectExpected, ConnectUnexplained         int64
	EndpointRetries, EndpointStale              int64
	Rollouts, RolloutRefused                    int64

	// Converge is the time from the last fault (the kill, or etcd's
	// restart) until the platform had settled (see settled); zero when it
	// never did. Settle holds the same per kind of fault, for the faults
	// after which it settled before the next one.
	Converge time.Duration
	Settle   map[string][]time.Duration
	States   map[string]int
	Adopted  int

	Orphans, Missing, Doubles, Stuck, LostEvents []string
	Findings                                     []string
}

// Failures lists the goals the run missed; empty means it met them all.
func (s Summary) Failures() []string {
	var f []string
	if s.Iterations == 0 {
		f = append(f, "no fault was injected")
	}
	if s.Messages == 0 {
		f = append(f, "the players exchanged no message: nothing was tested")
	}
	if s.Unexpected > 0 {
		f = append(f, fmt.Sprintf("%d sessions dropped with neither their replica nor their gateway killed", s.Unexpected))
	}
	if s.WrongEcho > 0 {
		f = append(f, fmt.Sprintf("%d messages came back wrong", s.WrongEcho))
	}
	if s.ReconnectFailed > 0 {
		f = append(f, fmt.Sprintf("%d reconnects to a live replica failed", s.ReconnectFailed))
	}
	if s.ConnectUnexplained > 0 {
		// The class the chaos run itself found (a gateway answering 410 for
		// a replica another instance had just handed out): a first connect
		// that failed with no kill to explain it is a bug.
		f = append(f, fmt.Sprintf("%d first connects failed with no kill to explain them", s.ConnectUnexplained))
	}
	for _, l := range []struct {
		what string
		v    []string
	}{{"orphaned replicas", s.Orphans}, {"recorded replicas not running", s.Missing}, {"double-started replicas", s.Doubles},
		{"stuck revisions", s.Stuck}, {"lost events", s.LostEvents}} {
		if len(l.v) > 0 {
			f = append(f, fmt.Sprintf("%s: %d", l.what, len(l.v)))
		}
	}
	return f
}

func (s Summary) print(w io.Writer) {
	var kinds []string
	for _, k := range sortedKeys(s.Kills) {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, s.Kills[k]))
	}
	fmt.Fprintf(w, "\n== chaos summary (seed %d) ==\n", s.Seed)
	fmt.Fprintf(w, "iterations %d in %s; faults: %s\n", s.Iterations, s.Elapsed.Round(time.Second), strings.Join(kinds, ", "))
	fmt.Fprintf(w, "sessions %d, left normally %d; cuts: with a killed replica %d, with a killed gateway %d (then reconnected to the same replica %d, 410 on reconnect %d, reconnect failed %d); UNEXPECTED drops %d\n",
		s.Sessions, s.Completed, s.DroppedReplica, s.DroppedGateway, s.Reconnected, s.ReconnectGone, s.ReconnectFailed, s.Unexpected)
	fmt.Fprintf(w, "messages echoed %d, wrong %d; first connects failed %d (explained by a kill) + %d (unexplained); get-endpoint retries %d, stale answers %d\n",
		s.Messages, s.WrongEcho, s.ConnectExpected, s.ConnectUnexplained, s.EndpointRetries, s.EndpointStale)
	fmt.Fprintf(w, "rollouts deployed %d (refused while down %d); final revision states %v; replica_adopted events %d\n",
		s.Rollouts, s.RolloutRefused, s.States, s.Adopted)
	for _, k := range sortedKeys(s.Kills) {
		d := append([]time.Duration(nil), s.Settle[k]...)
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		if len(d) == 0 {
			fmt.Fprintf(w, "settled after %s: never before the next fault (%d faults)\n", k, s.Kills[k])
			continue
		}
		fmt.Fprintf(w, "settled after %s: %d of %d faults before the next one; p50 %s, max %s\n", k, len(d), s.Kills[k],
			d[len(d)/2].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
	}
	if s.Converge > 0 {
		fmt.Fprintf(w, "converged %s after the last fault\n", s.Converge.Round(time.Millisecond))
	} else {
		fmt.Fprintf(w, "NOT converged after the last fault\n")
	}
	fmt.Fprintf(w, "orphaned replicas %d, not running %d, double-started %d, stuck revisions %d, lost events %d\n",
		len(s.Orphans), len(s.Missing), len(s.Doubles), len(s.Stuck), len(s.LostEvents))
	for _, l := range [][]string{s.Orphans, s.Missing, s.Doubles, s.Stuck, s.LostEvents, s.Findings} {
		for i, x := range l {
			if i == 20 {
				fmt.Fprintf(w, "  ... %d more\n", len(l)-20)
				break
			}
			fmt.Fprintf(w, "  - %s\n", x)
		}
	}
	if f := s.Failures(); len(f) > 0 {
		fmt.Fprintf(w, "RESULT: FAIL: %s\n", strings.Join(f, "; "))
	} else {
		fmt.Fprintf(w, "RESULT: PASS: no session dropped but on killed processes, no orphan, no double start, nothing stuck, no event lost\n")
	}
}

// finish ends the run: the platform settles under the players' steady
// load, then the players leave and every revision but the active one must
// retire; then the end state and the activity log are checked.
func (c *chaos) finish(ctx context.Context, pl *players, iterations int) Summary {
	c.mu.Lock()
	healed := c.lastFault
	sum := Summary{Seed: c.cfg.Seed, Iterations: iterations, Kills: map[string]int{}, Settle: map[string][]time.Duration{}}
	for k, n := range c.kills {
		sum.Kills[k] = n
	}
	for k, d := range c.settleTimes {
		sum.Settle[k] = append([]time.Duration(nil), d...)
	}
	c.mu.Unlock()
	if healed.IsZero() {
		healed = time.Now()
	}

	pl.frozen.Store(true)
	c.printf("faults over; players keep their sessions while the platform settles (bound %s)", c.cfg.Converge)
	var why string
	settle := func(empty bool) func() bool {
		return func() bool {
			ok, w := c.settled(ctx, empty)
			why = w
			return ok
		}
	}
	if rig.Poll(ctx, c.cfg.Converge, 200*time.Millisecond, settle(false)) {
		sum.Converge = time.Since(healed)
		c.printf("settled %s after the last fault", sum.Converge.Round(time.Millisecond))
	} else {
		sum.Stuck = append(sum.Stuck, fmt.Sprintf("not settled %s after the last fault: %s", c.cfg.Converge, why))
	}

	pl.close()
	c.printf("players left; every revision but the active one must retire (bound %s)", c.cfg.Grace+c.cfg.Converge)
	if !rig.Poll(ctx, c.cfg.Grace+c.cfg.Converge, 200*time.Millisecond, settle(true)) {
		sum.Stuck = append(sum.Stuck, "after the players left: "+why)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	revs, err := c.api.Revisions(cctx, appName)
	if err != nil {
		sum.Stuck = append(sum.Stuck, "revisions unreadable at the end: "+err.Error())
	}
	sum.Orphans, sum.Missing = c.orphans(revs)
	sum.States = map[string]int{}
	for _, r := range revs {
		sum.States[r.State]++
	}
	if err := c.evs.poll(ctx, c.api); err != nil {
		sum.LostEvents = append(sum.LostEvents, "the activity log is unreadable at the end: "+err.Error())
	}
	lost, adopted := c.checkEvents(revs)
	sum.LostEvents, sum.Adopted = append(sum.LostEvents, lost...), adopted
	_, doubles := c.seen.results()
	for _, d := range doubles {
		sum.Doubles = append(sum.Doubles, d)
	}
	sort.Strings(sum.Doubles)

	st := &c.stats
	sum.Elapsed = time.Since(c.start)
	sum.Sessions, sum.Completed = st.sessions.Load(), st.completed.Load()
	sum.DroppedReplica, sum.DroppedGateway, sum.Unexpected = st.droppedReplica.Load(), st.droppedGateway.Load(), st.unexpected.Load()
	sum.Reconnected, sum.ReconnectGone, sum.ReconnectFailed = st.reconnected.Load(), st.reconnectGone.Load(), st.reconnectFailed.Load()
	sum.Messages, sum.WrongEcho = st.messages.Load(), st.wrongEcho.Load()
	sum.ConnectExpected, sum.ConnectUnexplained = st.connectExpected.Load(), st.connectUnexplained.Load()
	sum.EndpointRetries, sum.EndpointStale = st.endpointRetries.Load(), st.endpointStale.Load()
	sum.Rollouts, sum.RolloutRefused = st.rollouts.Load(), st.rolloutRefused.Load()
	st.mu.Lock()
	sum.Findings = append(sum.Findings, st.findings...)
	st.mu.Unlock()
	return sum
}

// settled reports whether the platform is at rest, and if not why: no
// revision pending or starting, one active revision with all its replicas
// ready, every replica of a serving revision running exactly once and
// nothing else running. With empty (the players have left) no revision may
// be draining either.
func (c *chaos) settled(ctx context.Context, empty bool) (bool, string) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	revs, err := c.api.Revisions(cctx, appName)
	if err != nil {
		return false, "API: " + err.Error()
	}
	procs, dups := proctest.Replicas(c.marker)
	if len(dups) > 0 {
		return false, fmt.Sprintf("replica ids running twice: %v", dups)
	}
	active := 0
	recorded := map[string]string{}
	for _, r := range revs {
		switch r.State {
		case "pending", "starting":
			return false, fmt.Sprintf("revision %s is %s (%s)", r.ID, r.State, r.Reason)
		case "active":
			active++
			if len(r.Replicas) != replicasPerRevision {
				return false, fmt.Sprintf("active revision %s has %d replica records", r.ID, len(r.Replicas))
			}
		case "draining":
			if empty {
				return false, fmt.Sprintf("revision %s is still draining (%s)", r.ID, r.Reason)
			}
		default:
			continue
		}
		for _, rep := range r.Replicas {
			if rep.State != "ready" || rep.Stopping {
				return false, fmt.Sprintf("replica %s of %s revision %s is %s (stopping %v)", rep.ID, r.State, r.ID, rep.State, rep.Stopping)
			}
			recorded[rep.ID] = r.ID
		}
	}
	if active != 1 {
		return false, fmt.Sprintf("%d active revisions", active)
	}
	for id, p := range procs {
		if recorded[id] != p.Revision {
			return false, fmt.Sprintf("process %d runs replica %s of revision %s, which no serving revision records", p.PID, id, p.Revision)
		}
	}
	for id, rev := range recorded {
		if _, ok := procs[id]; !ok {
			return false, fmt.Sprintf("replica %s of revision %s is recorded but does not run", id, rev)
		}
	}
	return true, ""
}

// orphans compares the replica processes running at the end with the
// records: a process that no active revision records is an orphan, a
// recorded replica of the active revision that does not run is missing.
func (c *chaos) orphans(revs []rig.Revision) (orphans, missing []string) {
	procs, _ := proctest.Replicas(c.marker)
	state := map[string]string{}
	record := map[string]rig.Replica{}
	for _, r := range revs {
		state[r.ID] = r.State
		for _, rep := range r.Replicas {
			record[rep.ID] = rep
			if _, ok := procs[rep.ID]; !ok && r.State == "active" {
				missing = append(missing, fmt.Sprintf("replica %s of active revision %s does not run", rep.ID, r.ID))
			}
		}
	}
	for id, p := range procs {
		rec, ok := record[id]
		switch {
		case !ok:
			orphans = append(orphans, fmt.Sprintf("process %d runs replica %s of revision %s (%s) with no record", p.PID, id, p.Revision, orNone(state[p.Revision])))
		case state[p.Revision] != "active":
			orphans = append(orphans, fmt.Sprintf("process %d runs replica %s of %s revision %s (record %s, stopping %v)", p.PID, id, state[p.Revision], p.Revision, rec.State, rec.Stopping))
		}
	}
	sort.Strings(orphans)
	sort.Strings(missing)
	return orphans, missing
}

func orNone(s string) string {
	if s == "" {
		return "not listed"
	}
	return s
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
