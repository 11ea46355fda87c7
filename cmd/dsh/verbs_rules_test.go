package main

import (
	"testing"
	"time"

	"github.com/discovery-platform/discovery/client"
)

func TestSuggestNamesTheClosestVerb(t *testing.T) {
	for typed, want := range map[string]string{
		"stauts": "status", "deplyo": "deploy", "log": "logs", "evnets": "events", "sesions": "sessions",
		"rolback": "rollback", "app": "apps", "xyzzy": "", "completoin": "completion", "q": "",
	} {
		if got := suggest(typed); got != want {
			t.Errorf("suggest(%q) = %q, want %q", typed, got, want)
		}
	}
}

func TestUnseenIsWhatALogTailAdds(t *testing.T) {
	for _, tc := range []struct{ prev, cur, want string }{
		{"", "a\nb\n", "a\nb\n"},
		{"a\nb\n", "a\nb\nc\n", "c\n"},
		{"a\nb\n", "a\nb\n", ""},
		{"a\nb\nc\n", "b\nc\nd\n", "d\n"}, // the tail's start was dropped
		{"a\nb\n", "x\ny\n", "x\ny\n"},    // lost track: all of it
	} {
		if got := unseen(tc.prev, tc.cur); got != tc.want {
			t.Errorf("unseen(%q, %q) = %q, want %q", tc.prev, tc.cur, got, tc.want)
		}
	}
	if got := lastBytes("one\ntwo\nthree\n", 8); got != "three\n" {
		t.Errorf("lastBytes = %q", got)
	}
}

func TestRollbackTargetIsTheRevisionActiveBefore(t *testing.T) {
	at := time.Now()
	rev := func(id string, gen int64, st client.RevisionState, wasActive bool) client.Revision {
		r := client.Revision{ID: id, Generation: gen, State: st}
		if wasActive {
			r.ActivatedAt = &at
		}
		return r
	}
	for _, tc := range []struct {
		name string
		revs []client.Revision
		rev  string
		want string // "" for an error
	}{
		{"the draining one", []client.Revision{rev("c", 3, client.Active, true), rev("b", 2, client.Draining, true), rev("a", 1, client.Retired, true)}, "", "b"},
		{"past a failed deploy", []client.Revision{rev("d", 4, client.Failed, false), rev("c", 3, client.Active, true), rev("b", 2, client.Retired, true)}, "", "b"},
		{"never active is skipped", []client.Revision{rev("c", 3, client.Active, true), rev("b", 2, client.Retired, false), rev("a", 1, client.Retired, true)}, "", "a"},
		{"nothing before", []client.Revision{rev("a", 1, client.Active, true)}, "", ""},
		{"named", []client.Revision{rev("c", 3, client.Active, true), rev("b", 2, client.Draining, true)}, "b", "b"},
		{"named, the active one", []client.Revision{rev("c", 3, client.Active, true)}, "c", ""},
		{"named, unknown", []client.Revision{rev("c", 3, client.Active, true)}, "z", ""},
	} {
		got, err := rollbackTarget(tc.revs, tc.rev)
		if (err == nil) != (tc.want != "") || (err == nil && got.ID != tc.want) {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got.ID, err, tc.want)
		}
	}
}
