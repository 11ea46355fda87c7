package dsh

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/discovery-platform/discovery/client"
)

func TestListsPrintAsAlignedTables(t *testing.T) {
	revs := []client.Revision{
		{ID: "1a2b3c4d", Generation: 2, State: client.Starting, Command: []string{"/bin/hello"}, CreatedAt: time.Now(),
			Replicas: []client.Replica{{State: "starting"}, {State: "ready"}}},
		{ID: "9d00cc18", Generation: 1, State: client.Active, Command: []string{"/bin/hello"}, Reason: "1/1 replicas healthy",
			CreatedAt: time.Now(), Replicas: []client.Replica{{State: "ready"}}},
	}
	got := Sprint(revs)
	lines := strings.Split(got, "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "REVISION") {
		t.Fatalf("want a header and 2 rows, got:\n%s", got)
	}
	// Columns line up: STATE starts at the same offset in every line.
	col := strings.Index(lines[0], "STATE")
	for _, l := range lines[1:] {
		if !regexp.MustCompile(`^(starting|active)\s`).MatchString(l[col:]) {
			t.Errorf("state column not aligned at %d in %q", col, l)
		}
	}
	if !strings.Contains(lines[1], "1/2") || !strings.Contains(lines[2], "1/1 replicas healthy") {
		t.Errorf("ready counts or reason missing:\n%s", got)
	}
	if Sprint([]client.App{}) != "(no apps)" {
		t.Errorf("an empty list prints %q", Sprint([]client.App{}))
	}
}

func TestOneObjectOneLine(t *testing.T) {
	r := client.Revision{ID: "9d00cc18", State: client.Active, Generation: 3, Replicas: []client.Replica{{State: "ready"}, {State: "ready"}}}
	if got := Sprint(r); got != "9d00cc18 active (2/2 ready) generation 3" {
		t.Errorf("revision prints %q", got)
	}
}

func TestErrorsPrintAsTheAPIsMessage(t *testing.T) {
	apiErr := &client.Error{Status: 409, Code: "illegal_state", Message: "revision 9d00cc18 is active: retire another"}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{apiErr, "error: revision 9d00cc18 is active: retire another (illegal_state)"},
		{Stop{apiErr}, "error: revision 9d00cc18 is active: retire another (illegal_state)"},
		{fmt.Errorf("get: %w", context.Canceled), "interrupted"},
		{&client.UnreachableError{URL: "http://127.0.0.1:4000", Err: errors.New("connection refused")},
			"error: cannot reach the platform at http://127.0.0.1:4000 (connection refused)"},
	} {
		if got := FormatError(tc.err); got != tc.want {
			t.Errorf("FormatError(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestWithoutSessionEveryCallSaysSo(t *testing.T) {
	Use(nil, "")
	if _, err := Connected(); !errors.Is(err, ErrNoSession) {
		t.Fatalf("Connected() error %v, want ErrNoSession", err)
	}
}

func TestCatalogAndLeasesPrintAsTables(t *testing.T) {
	imgs := Sprint([]client.Image{{Ref: "example/arena:0.2", Command: []string{"/srv/arena", "--fast"}, Description: "the arena", UpdatedAt: time.Now()}})
	if !regexp.MustCompile(`^IMAGE\s+COMMAND\s+UPDATED\s+DESCRIPTION\nexample/arena:0\.2\s+/srv/arena --fast\s+\d+s\s+the arena$`).MatchString(imgs) {
		t.Errorf("the catalog prints:\n%s", imgs)
	}
	leases := Sprint([]client.Lease{{Lease: "7a", Revision: "9d00cc18", Holder: "alice", TTL: client.Duration(time.Minute), ExpiresIn: client.Duration(41500 * time.Millisecond)}})
	if !regexp.MustCompile(`^LEASE\s+REVISION\s+REPLICA\s+HOLDER\s+LEFT\s+TTL\n7a\s+9d00cc18\s+-\s+alice\s+42s\s+1m0s$`).MatchString(leases) {
		t.Errorf("leases print:\n%s", leases)
	}
	if Sprint([]client.Lease{}) != "(no leases)" || Sprint([]client.Image{}) != "(no images in the catalog)" {
		t.Error("empty lists")
	}
	ten := Sprint([]client.Tenant{{Name: "acme", Namespace: "discovery-acme", AllowCommands: true}})
	if !regexp.MustCompile(`COMMANDS\s+STATUS\nacme\s.*\sallowed\s+ok$`).MatchString(ten) {
		t.Errorf("tenants print:\n%s", ten)
	}
}

// TestNoticesAndHandoffsStandOut: the activity log marks each type with its
// symbol; notices and handoffs list as tables of their counts.
func TestNoticesAndHandoffsStandOut(t *testing.T) {
	at := time.Date(2026, 12, 2, 17, 0, 0, 0, time.Local)
	evs := []client.Event{
		{Time: at, Type: client.EventTransition, Revision: "9d00cc18", From: client.Active, To: client.Draining, Message: "active -> draining: superseded by 5be2a1f0"},
		{Time: at, Type: client.EventNotice, Revision: "9d00cc18", Message: "drain notice (draining, new players go to 5be2a1f0): told 1 of 2 replicas at /discovery/drain"},
		{Time: at, Type: client.EventHandoff, Revision: "9d00cc18", Message: "handoff 9d00cc18 -> 5be2a1f0: 3 players moved, 1 could not be (they reconnect through get-endpoint)"},
	}
	got := Sprint(evs)
	for _, want := range []string{`(?m)^17:00:00\s+→ transition\s+9d00cc18\s+active -> draining`, `(?m)^17:00:00\s+⚑ notice\s+9d00cc18\s+drain notice .*told 1 of 2 replicas`,
		`(?m)^17:00:00\s+⇄ handoff\s+9d00cc18\s+handoff 9d00cc18 -> 5be2a1f0: 3 players moved, 1 could not be`} {
		if !regexp.MustCompile(want).MatchString(got) {
			t.Errorf("the log lacks %s:\n%s", want, got)
		}
	}
	var notices []client.DrainNotice
	var handoffs []client.HandoffCount
	for _, e := range evs {
		if n, ok := e.Notice(); ok {
			notices = append(notices, n)
		}
		if h, ok := e.Handoff(); ok {
			handoffs = append(handoffs, h)
		}
	}
	if got := Sprint(notices); !regexp.MustCompile(`^TIME\s+REVISION\s+TOLD IT IS\s+NEW PLAYERS GO TO\s+REPLICAS TOLD\s+HOOK\n17:00:00\s+9d00cc18\s+draining\s+5be2a1f0\s+1/2\s+/discovery/drain$`).MatchString(got) {
		t.Errorf("notices print:\n%s", got)
	}
	if got := Sprint(handoffs); !regexp.MustCompile(`^TIME\s+FROM\s+TO\s+MOVED\s+FELL BACK\n17:00:00\s+9d00cc18\s+5be2a1f0\s+3\s+1$`).MatchString(got) {
		t.Errorf("handoffs print:\n%s", got)
	}
	if Sprint([]client.HandoffCount{}) != "(no handoffs)" || Sprint([]client.DrainNotice{}) != "(no drain notices)" {
		t.Error("empty lists")
	}
	settings := Sprint(client.App{ClientPath: "/ws", DrainHook: "/discovery/drain", ReservationTTL: client.Duration(time.Minute)}.Settings())
	for _, want := range []string{`(?m)^SETTING\s+VALUE$`, `(?m)^client_path\s+/ws$`, `(?m)^drain_hook\s+/discovery/drain$`, `(?m)^handoff_path\s+none`, `(?m)^reservation_ttl\s+1m0s$`} {
		if !regexp.MustCompile(want).MatchString(settings) {
			t.Errorf("settings lack %s:\n%s", want, settings)
		}
	}
}
