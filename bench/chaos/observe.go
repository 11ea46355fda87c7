package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/discovery-platform/discovery/bench/internal/rig"
	"github.com/discovery-platform/discovery/internal/testkit/proctest"
)

// sampler looks at the replica processes every few hundred milliseconds for
// the whole run: every replica id it ever saw (the event check wants an
// event for each) and any id seen running twice at once (a double start,
// whatever happens afterwards).
type sampler struct {
	marker string

	mu      sync.Mutex
	seen    map[string]string // replica id → revision
	doubles map[string]string // replica id → the pids seen at once
}

func newSampler(marker string) *sampler {
	return &sampler{marker: marker, seen: map[string]string{}, doubles: map[string]string{}}
}

func (s *sampler) run(ctx context.Context) {
	for rig.Sleep(ctx, 300*time.Millisecond) {
		s.sample()
	}
}

func (s *sampler) sample() {
	byID := map[string][]int{}
	for pid, r := range proctest.Find(s.marker) {
		if r.Replica != "" {
			byID[r.Replica] = append(byID[r.Replica], pid)
			s.mu.Lock()
			s.seen[r.Replica] = r.Revision
			s.mu.Unlock()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, pids := range byID {
		if len(pids) > 1 {
			sort.Ints(pids)
			s.doubles[id] = fmt.Sprintf("replica %s ran as pids %v at once", id, pids)
		}
	}
}

func (s *sampler) results() (seen, doubles map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen, doubles = map[string]string{}, map[string]string{}
	for k, v := range s.seen {
		seen[k] = v
	}
	for k, v := range s.doubles {
		doubles[k] = v
	}
	return seen, doubles
}

// eventLog collects the app's activity log as the run goes, since the
// platform keeps only the newest 500 events per app.
type eventLog struct {
	mu     sync.Mutex
	byID   map[string]rig.Event
	cursor string
	// full counts answers that came back with a whole page: events may have
	// been missed between two polls, which would be this program's fault.
	full int
}

func newEventLog() *eventLog { return &eventLog{byID: map[string]rig.Event{}} }

func (l *eventLog) run(ctx context.Context, api *rig.API) {
	for rig.Sleep(ctx, 2*time.Second) {
		_ = l.poll(ctx, api)
	}
}

func (l *eventLog) poll(ctx context.Context, api *rig.API) error {
	l.mu.Lock()
	cursor := l.cursor
	l.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	evs, err := api.Events(cctx, appName, cursor)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(evs) >= 500 {
		l.full++
	}
	var newest time.Time
	for _, e := range evs {
		l.byID[e.ID] = e
		if e.Time.After(newest) {
			newest = e.Time
		}
	}
	// The cursor trails the newest event by ten seconds: an event's id comes
	// from its writer's clock before its transaction commits, so an event can
	// land after one with a newer id was read. Re-reading overlaps is cheap.
	for id, e := range l.byID {
		if e.Time.Before(newest.Add(-10*time.Second)) && id > l.cursor {
			l.cursor = id
		}
	}
	return nil
}

// sorted returns every event collected, oldest first.
func (l *eventLog) sorted() []rig.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]rig.Event, 0, len(l.byID))
	for _, e := range l.byID {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// checkEvents checks the activity log against what happened: every
// revision has its "deployed" event and an unbroken chain of transitions
// ending in the state it is in (or a terminal one, if it was pruned), and
// every replica process ever seen has a "replica_started" (or
// "replica_adopted") event.
func (c *chaos) checkEvents(revs []rig.Revision) (lost []string, adopted int) {
	evs := c.evs.sorted()
	state := map[string]string{}
	for _, r := range revs {
		state[r.ID] = r.State
	}
	ids := map[string]bool{}
	c.mu.Lock()
	for _, id := range c.deployed {
		ids[id] = true
	}
	c.mu.Unlock()
	for id := range state {
		ids[id] = true
	}
	chain := map[string][]rig.Event{}
	started := map[string]bool{}
	for _, e := range evs {
		switch e.Type {
		case "deployed", "transition":
			chain[e.Revision] = append(chain[e.Revision], e)
			ids[e.Revision] = true
		case "replica_started":
			started[e.Replica] = true
		case "replica_adopted":
			started[e.Replica] = true
			adopted++
		}
	}
	for id := range ids {
		lost = append(lost, checkChain(id, chain[id], state[id])...)
	}
	seen, _ := c.seen.results()
	for id, rev := range seen {
		if !started[id] {
			lost = append(lost, fmt.Sprintf("replica %s of revision %s ran, but no replica_started event names it", id, rev))
		}
	}
	c.evs.mu.Lock()
	full := c.evs.full
	c.evs.mu.Unlock()
	if full > 0 {
		lost = append(lost, fmt.Sprintf("(%d event polls came back full: this program may have missed events)", full))
	}
	sort.Strings(lost)
	return lost, adopted
}

// checkChain checks one revision's deployed event and transitions.
func checkChain(id string, evs []rig.Event, now string) []string {
	if len(evs) == 0 || evs[0].Type != "deployed" {
		return []string{fmt.Sprintf("revision %s: no deployed event", id)}
	}
	var lost []string
	at := evs[0].To
	for _, e := range evs[1:] {
		if e.Type != "transition" {
			lost = append(lost, fmt.Sprintf("revision %s: a second deployed event %s", id, e.ID))
			continue
		}
		if e.From != at {
			lost = append(lost, fmt.Sprintf("revision %s: transition %s -> %s follows %s: a transition is missing", id, e.From, e.To, at))
		}
		at = e.To
	}
	switch {
	case now != "" && now != at:
		lost = append(lost, fmt.Sprintf("revision %s is %s but its last event says %s", id, now, at))
	case now == "" && at != "retired" && at != "failed":
		lost = append(lost, fmt.Sprintf("revision %s is gone from the API but its last event says %s", id, at))
	}
	return lost
}
