package client

import (
	"strings"
	"testing"
	"time"
)

// TestEventCountsAreRead reads the counts the platform writes into notice
// and handoff events (deployer/notify.go, endpoint/handoff.go wrote these
// messages).
func TestEventCountsAreRead(t *testing.T) {
	for _, tc := range []struct {
		e       Event
		notice  *DrainNotice
		handoff *HandoffCount
	}{
		{Event{Type: EventNotice, Revision: "9d00cc18", Message: "drain notice (draining, new players go to 5be2a1f0): told 2 of 3 replicas at /discovery/drain; not told: [a1b2c3: 503 Service Unavailable]"},
			&DrainNotice{Revision: "9d00cc18", State: "draining", Active: "5be2a1f0", Told: 2, Replicas: 3, Hook: "/discovery/drain"}, nil},
		{Event{Type: EventNotice, Revision: "9d00cc18", Message: "drain notice (active, new players go to 9d00cc18): told 1 of 1 replicas at /hook"},
			&DrainNotice{Revision: "9d00cc18", State: "active", Active: "9d00cc18", Told: 1, Replicas: 1, Hook: "/hook"}, nil},
		{Event{Type: EventHandoff, Revision: "9d00cc18", Message: "handoff 9d00cc18 -> 5be2a1f0: 12 players moved"},
			nil, &HandoffCount{From: "9d00cc18", To: "5be2a1f0", Moved: 12}},
		{Event{Type: EventHandoff, Revision: "9d00cc18", Message: "handoff 9d00cc18 -> 5be2a1f0: 1 players moved, 2 could not be (they reconnect through get-endpoint)"},
			nil, &HandoffCount{From: "9d00cc18", To: "5be2a1f0", Moved: 1, FellBack: 2}},
		{Event{Type: EventHandoff, Revision: "9d00cc18", Message: "handoff 9d00cc18 -> the active revision: 0 players moved, 1 could not be (they reconnect through get-endpoint)"},
			nil, &HandoffCount{From: "9d00cc18", To: "the active revision", FellBack: 1}},
		// The figures the platform records win over the message's words.
		{Event{Type: EventNotice, Revision: "9d00cc18", Message: "reworded", NoticeFigures: &NoticeFigures{State: "draining", ActiveRevision: "5be2a1f0", Told: 3, Replicas: 4, Hook: "/d"}},
			&DrainNotice{Revision: "9d00cc18", State: "draining", Active: "5be2a1f0", Told: 3, Replicas: 4, Hook: "/d"}, nil},
		{Event{Type: EventHandoff, Revision: "9d00cc18", Message: "reworded", HandoffFigures: &HandoffFigures{To: "5be2a1f0", Moved: 7, Failed: 1}},
			nil, &HandoffCount{From: "9d00cc18", To: "5be2a1f0", Moved: 7, FellBack: 1}},
		// Another type with the same words is not a notice; an unreadable
		// message is not read.
		{Event{Type: EventTransition, Message: "drain notice (draining, new players go to x): told 1 of 1 replicas at /h"}, nil, nil},
		{Event{Type: EventHandoff, Message: "handoffs paused"}, nil, nil},
	} {
		n, ok := tc.e.Notice()
		n.Time = time.Time{}
		if ok != (tc.notice != nil) || (ok && n != *tc.notice) {
			t.Errorf("%q: Notice() = %+v, %v; want %+v", tc.e.Message, n, ok, tc.notice)
		}
		h, ok := tc.e.Handoff()
		h.Time = time.Time{}
		if ok != (tc.handoff != nil) || (ok && h != *tc.handoff) {
			t.Errorf("%q: Handoff() = %+v, %v; want %+v", tc.e.Message, h, ok, tc.handoff)
		}
	}
}

func TestEventPrintsWithItsSymbol(t *testing.T) {
	e := Event{Time: time.Date(2026, 12, 2, 17, 0, 0, 0, time.Local), Type: EventHandoff, Revision: "9d00cc18",
		Message: "handoff 9d00cc18 -> 5be2a1f0: 3 players moved"}
	if want := "17:00:00 ⇄ handoff          9d00cc18 handoff 9d00cc18 -> 5be2a1f0: 3 players moved"; e.String() != want {
		t.Errorf("prints %q, want %q", e, want)
	}
	if s := (Event{Type: "something_new"}).Symbol(); s != "?" {
		t.Errorf("an unknown type's symbol %q", s)
	}
}

func TestAppPrintsItsProtocolPaths(t *testing.T) {
	a := App{Tenant: "acme", Name: "arena", Replicas: 2, Generation: 3}
	if want := "acme/arena replicas 2 generation 3"; a.String() != want {
		t.Errorf("prints %q, want %q", a, want)
	}
	a.ClientPath, a.DrainHook = "/ws", "/discovery/drain"
	if want := "acme/arena replicas 2 generation 3, client /ws, drain hook /discovery/drain"; a.String() != want {
		t.Errorf("prints %q, want %q", a, want)
	}
	a.ReservationTTL = Duration(time.Minute)
	got := map[string]string{}
	var names []string
	for _, s := range a.Settings() {
		got[s.Name] = s.Value
		names = append(names, s.Name)
	}
	for name, want := range map[string]string{"client_path": "/ws", "drain_hook": "/discovery/drain", "reservation_ttl": "1m0s", "max_sessions": "no cap"} {
		if got[name] != want {
			t.Errorf("setting %s = %q, want %q", name, got[name], want)
		}
	}
	if !strings.HasPrefix(got["handoff_path"], "none") {
		t.Errorf("an unset handoff_path shows %q", got["handoff_path"])
	}
	// Every setting AppSpec can change is listed.
	for _, f := range strings.Fields("port health_path client_path drain_hook handoff_path replicas max_sessions target_sessions min_replicas max_replicas scale_down_delay reservation_ttl strategy reconnect_grace drain_timeout shutdown_grace start_timeout") {
		if _, ok := got[f]; !ok {
			t.Errorf("Settings lacks %s (has %v)", f, names)
		}
	}
}
