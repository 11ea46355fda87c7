package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
)

// TestOperatorWatchesADrainWithHandoffs: an operator declares a game that
// takes drain notices and handed-off players, and follows a deploy from dsh.
// A player plays on a socket while get-endpoint holds a place for another:
// deploy.Sessions tells the connection from the reservation. The next
// deploy drains the first revision: the activity log marks the notice (its
// replica was told) and, once the old server hands its player off, the
// handoff with how many moved and how many fell back.
func TestOperatorWatchesADrainWithHandoffs(t *testing.T) {
	p := startPlatform(t)
	app := build.Binary(t)
	op := newOperator(t, p)
	c := p.Client(t)
	ctx := context.Background()

	r := op.dsh("", nil,
		"-e", `apps.Create(apps.Spec{Name: "game", HealthPath: "/healthz", ClientPath: "/ws", DrainHook: "/discovery/drain", `+
			`HandoffPath: "/discovery/handoff", ReservationTTL: 2 * time.Minute, ReconnectGrace: 2 * time.Minute})`,
		"-e", `rev, err := deploy.Rollout("game", "`+app+`"); dsh.Check(err)`,
		"-e", `deploy.Wait("game", rev.ID, "active", time.Minute)`,
		"-e", `apps.Settings("game")`)
	m := regexp.MustCompile(`^default/game replicas 1 generation 0, client /ws, drain hook /discovery/drain, handoff /discovery/handoff\n` +
		`([0-9a-f]{8}) active \(1/1 ready\) generation 1\n`).FindStringSubmatch(r.Stdout)
	if r.Code != 0 || m == nil {
		t.Fatalf("create and deploy: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	v1 := m[1]
	for _, want := range []string{`(?m)^client_path\s+/ws$`, `(?m)^drain_hook\s+/discovery/drain$`, `(?m)^handoff_path\s+/discovery/handoff$`, `(?m)^reservation_ttl\s+2m0s$`} {
		if !regexp.MustCompile(want).MatchString(r.Stdout) {
			t.Errorf("apps.Settings lacks %s:\n%s", want, r.Stdout)
		}
	}

	// A player on the socket get-endpoint answered; another place reserved
	// by dsh's own get-endpoint, no socket on it.
	ep, err := c.GetEndpoint(ctx, "default", "game")
	if err != nil {
		t.Fatal(err)
	}
	conn, _, err := websocket.DefaultDialer.Dial(ep.Socket, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", ep.Socket, err)
	}
	defer conn.Close()
	r = op.dsh("", nil, "-e", `endpoint.Get("", "game")`)
	if r.Code != 0 || !regexp.MustCompile(`^ws://\S+/ws \(revision `+v1+`, replica \S+, held 120s\)\n$`).MatchString(r.Stdout) {
		t.Fatalf("endpoint.Get: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	eventually(t, "a connection and a reservation", func() (bool, string) {
		r := op.dsh("", nil, "-e", `deploy.Sessions("game")`)
		return r.Code == 0 && r.Stdout == "sessions: "+v1+" 2 (1 connection, 1 reservation)\n", r.Stdout + r.Stderr
	})

	// The next deploy drains v1: its replica is told.
	r = op.dsh("", nil, "-e", `rev, err := deploy.Rollout("game", "`+app+`"); dsh.Check(err)`, "-e", `deploy.Wait("game", rev.ID, "active", time.Minute)`)
	m = regexp.MustCompile(`([0-9a-f]{8}) active`).FindStringSubmatch(r.Stdout)
	if r.Code != 0 || m == nil {
		t.Fatalf("the second deploy: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	v2 := m[1]
	eventually(t, "the drain notice", func() (bool, string) {
		r := op.dsh("", nil, "-e", `events.Notices("game")`)
		return regexp.MustCompile(`(?m)^\S+\s+` + v1 + `\s+draining\s+` + v2 + `\s+1/1\s+/discovery/drain$`).MatchString(r.Stdout), r.Stdout + r.Stderr
	})

	// v1's server hands its player off (testapp's /discovery/send asks the
	// platform, as a game server would).
	resp, err := http.Post(ep.URL+"discovery/send", "application/octet-stream", strings.NewReader("hp=3"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("handoff: %s", resp.Status)
	}
	eventually(t, "the handoff", func() (bool, string) {
		r := op.dsh("", nil, "-e", `events.Handoffs("game")`)
		return regexp.MustCompile(`(?m)^TIME\s+FROM\s+TO\s+MOVED\s+FELL BACK\n\S+\s+` + v1 + `\s+` + v2 + `\s+1\s+0$`).MatchString(r.Stdout), r.Stdout + r.Stderr
	})
	r = op.dsh("", nil, "-e", `events.List("game")`)
	for _, want := range []string{
		`(?m)^\S+\s+⚑ notice\s+` + v1 + `\s+drain notice \(draining, new players go to ` + v2 + `\): told 1 of 1 replicas at /discovery/drain$`,
		`(?m)^\S+\s+⇄ handoff\s+` + v1 + `\s+handoff ` + v1 + ` -> ` + v2 + `: 1 players moved$`,
	} {
		if !regexp.MustCompile(want).MatchString(r.Stdout) {
			t.Errorf("events.List lacks %s:\n%s%s", want, r.Stdout, r.Stderr)
		}
	}
	// The handed-off player's place is held on v2 until its client comes.
	eventually(t, "the handed-off player's reservation on v2", func() (bool, string) {
		r := op.dsh("", nil, "-e", `s, err := deploy.Sessions("game"); dsh.Check(err)`, "-e", `s.RevisionKinds["`+v2+`"].Reservations`)
		return r.Code == 0 && r.Stdout == "1\n", r.Stdout + r.Stderr
	})
}

// eventually runs check until it is true, for at most 20 s; on timeout it
// fails with what check saw last.
func eventually(t *testing.T, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, saw := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 20s; last saw:\n%s", what, saw)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
