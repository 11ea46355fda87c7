package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	discovery "github.com/discovery-platform/discovery/sdk/go"
)

// Drain notices and handoffs against a stand-in platform: real arenas on
// loopback ports, real WebSocket clients, and an httptest server playing
// the platform's API (sdk/PROTOCOL.md §3-4) and, where a client arrives
// with a ticket, its gateway.

const (
	v1 = "9d00cc18" // the draining revision
	v2 = "5be2a1f0" // the active one
)

// platform plays the API: the notice stream, and handoffs that forward the
// state to the target arena as the real platform does.
type platform struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	target   *arena // where handoffs go (a replica of v2)
	fail     int    // when set, handoffs answer this status instead
	handoffs int    // handoff calls
	streams  map[string][]chan string
	current  map[string]string // each revision's notice now (active until told otherwise)
	started  time.Time
}

func startPlatform(t *testing.T) *platform {
	p := &platform{t: t, streams: map[string][]chan string{}, current: map[string]string{}, started: time.Now()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/tenants/acme/apps/arena/revisions/{rev}/handoffs", p.handoff)
	mux.HandleFunc("GET /api/v1/tenants/acme/apps/arena/revisions/{rev}/notices", p.noticeStream)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close) // registered first: runs after the arenas have stopped following
	return p
}

// env is what the platform sets for a replica of rev, in handoff mode or not.
func (p *platform) env(rev, replica string, handoff bool) map[string]string {
	return map[string]string{
		"DISCOVERY_API": p.srv.URL, "DISCOVERY_LEASE_TOKEN": "cap-" + rev,
		"DISCOVERY_TENANT": "acme", "DISCOVERY_APP": "arena", "DISCOVERY_REVISION": rev, "DISCOVERY_REPLICA": replica,
		"HANDOFF": fmt.Sprint(handoff),
	}
}

func (p *platform) handoff(w http.ResponseWriter, r *http.Request) {
	rev := r.PathValue("rev")
	if r.Header.Get(discovery.LeaseTokenHeader) != "cap-"+rev || r.Header.Get(discovery.ReplicaHeader) == "" {
		http.Error(w, `{"error":{"code":"forbidden","message":"not this revision's capability"}}`, http.StatusForbidden)
		return
	}
	state, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.handoffs++
	n, fail, target := p.handoffs, p.fail, p.target
	p.mu.Unlock()
	if fail != 0 {
		http.Error(w, `{"error":{"code":"refused","message":"the stand-in says no"}}`, fail)
		return
	}
	ticket := fmt.Sprintf("TICKET%020d", n)
	fwd, _ := http.NewRequest("POST", target.base+strings.TrimPrefix(handoffPath, "/"), bytes.NewReader(state))
	fwd.Header.Set(discovery.TicketHeader, ticket)
	fwd.Header.Set("X-Discovery-From-Revision", rev)
	resp, err := http.DefaultClient.Do(fwd)
	if err != nil {
		http.Error(w, `{"error":{"code":"bad_gateway","message":"target unreachable"}}`, http.StatusBadGateway)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		http.Error(w, `{"error":{"code":"bad_gateway","message":"target refused"}}`, http.StatusBadGateway)
		return
	}
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"ticket":%q,"socket":%q,"revision":%q,"replica":"r-2","expires_in":60}`,
		ticket, target.ws+"?discovery_ticket="+ticket, v2)
}

// noticeStream holds the stream open and writes what tell sends.
func (p *platform) noticeStream(w http.ResponseWriter, r *http.Request) {
	rev := r.PathValue("rev")
	if r.Header.Get(discovery.LeaseTokenHeader) != "cap-"+rev {
		http.Error(w, `{"error":{"code":"forbidden","message":"no"}}`, http.StatusForbidden)
		return
	}
	ch := make(chan string, 4)
	p.mu.Lock()
	p.streams[rev] = append(p.streams[rev], ch)
	now, ok := p.current[rev]
	p.mu.Unlock()
	if !ok { // active since the platform started, before any drain
		now = noticeAt("active", rev, "", p.started)
	}
	w.Header().Set("Content-Type", "text/event-stream")
	_, _ = io.WriteString(w, "data: "+now+"\n\n")
	w.(http.Flusher).Flush()
	for {
		select {
		case n := <-ch:
			_, _ = io.WriteString(w, "data: "+n+"\n\n")
			w.(http.Flusher).Flush()
		case <-r.Context().Done():
			return
		}
	}
}

// tell sends a notice on rev's open streams; false while none is open.
func (p *platform) tell(rev, notice string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.current[rev] = notice
	for _, ch := range p.streams[rev] {
		ch <- notice
	}
	return len(p.streams[rev]) > 0
}

func (p *platform) setTarget(a *arena) { p.mu.Lock(); p.target = a; p.mu.Unlock() }
func (p *platform) setFail(status int) { p.mu.Lock(); p.fail = status; p.mu.Unlock() }
func (p *platform) calls() int         { p.mu.Lock(); defer p.mu.Unlock(); return p.handoffs }

// noticeJSON is a notice about v1, sent now.
func noticeJSON(state, active, reason string) string {
	return noticeAt(state, active, reason, time.Now())
}

func noticeAt(state, active, reason string, sentAt time.Time) string {
	return fmt.Sprintf(`{"state":%q,"tenant":"acme","app":"arena","revision":%q,"active_revision":%q,"reason":%q,"deadline":null,"sent_at":%q}`,
		state, v1, active, reason, sentAt.UTC().Format(time.RFC3339Nano))
}

// drain makes v1 draining and posts the notice to a's drain hook, as the
// platform does (its stream, if a follows it, then starts with it too).
func (p *platform) drain(t *testing.T, a *arena) {
	t.Helper()
	n := noticeJSON("draining", v2, "superseded by "+v2)
	p.mu.Lock()
	p.current[v1] = n
	p.mu.Unlock()
	require.Equal(t, http.StatusNoContent, postHook(t, a, n))
}

func postHook(t *testing.T, a *arena, body string) int {
	t.Helper()
	resp, err := http.Post(a.base+strings.TrimPrefix(drainHookPath, "/"), "application/json", strings.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// dialTicket connects to socket as the gateway passes on a client that
// presents ticket: with the X-Discovery-Ticket header.
func dialTicket(t *testing.T, socket, ticket string) *client {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(socket, http.Header{discovery.TicketHeader: {ticket}})
	require.NoError(t, err)
	_ = resp.Body.Close()
	t.Cleanup(func() { _ = conn.Close() })
	return &client{t: t, conn: conn}
}

// awaitCloseFrame reads until the server closes the connection.
func (c *client) awaitCloseFrame() *websocket.CloseError {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetReadDeadline(time.Now().Add(readTimeout)))
	for {
		_, _, err := c.conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		require.ErrorAs(c.t, err, &ce, "want a close frame")
		return ce
	}
}

// info reads a's /info.
func (a *arena) info(t *testing.T) infoMsg {
	t.Helper()
	body, _ := get(t, a.base+"info")
	var inf infoMsg
	require.NoError(t, json.Unmarshal([]byte(body), &inf))
	return inf
}

func TestHandoffMovesEveryPlayerWithItsState(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	rules := map[string]string{"ARENA_SIZE": "2", "ARENA_HP": "3", "RESPAWN_DELAY": "10ms"}
	newer := startArena(t, merge(rules, p.env(v2, "r-2", true)))
	older := startArena(t, merge(rules, p.env(v1, "r-0", true)))
	p.setTarget(newer)

	// On v1, on a 2x2 grid where everyone is in reach: alice kills bob
	// (three hits), hits him again once he is back; bob hits her once.
	alice, bob := older.dial(t), older.dial(t)
	alice.join("alice")
	bob.join("bob")
	alice.awaitState("bob joined", func(m serverMsg) bool { _, ok := m.player(bob.id); return ok })
	for range 3 {
		alice.send(map[string]string{"type": "attack"})
	}
	bob.awaitType("killed")
	bob.awaitType("respawned")
	alice.send(map[string]string{"type": "attack"})
	bob.awaitState("bob hurt", func(m serverMsg) bool { b, _ := m.player(bob.id); return b.Alive && b.HP == 2 })
	bob.send(map[string]string{"type": "attack"})
	before := alice.awaitState("alice hurt", func(m serverMsg) bool { a, _ := m.player(alice.id); return a.HP == 2 })
	lurker := older.dial(t) // connected, never joined: nobody to move
	lurker.ping(1)

	p.drain(t, older)

	type arrival struct {
		c      *client
		ticket string
	}
	var arrivals []arrival
	for _, c := range []*client{alice, bob} {
		n := c.awaitType("notice")
		assert.Equal(t, serverMsg{Type: "notice", State: "draining", ActiveRevision: v2, Reason: "superseded by " + v2}, n)
		ce := c.awaitCloseFrame()
		assert.Equal(t, discovery.CloseMoved, ce.Code)
		ticket, ok := discovery.TicketFromReason(ce.Text)
		require.True(t, ok, "close reason %q", ce.Text)
		arrivals = append(arrivals, arrival{c, ticket})
	}
	lurker.ping(2) // still there
	assert.Equal(t, 0, older.info(t).Players, "moved players leave v1")
	stale := older.dial(t)
	stale.resume(alice.id, alice.token)
	stale.awaitError(codeResumeFailed)

	// Each reconnects to v2 with its ticket (the client SDK dials the
	// socket the platform answered; the gateway adds the header) and
	// resumes exactly as it was.
	var moved []*client
	for _, a := range arrivals {
		c := dialTicket(t, newer.ws+"?discovery_ticket="+a.ticket, a.ticket)
		c.resume(a.c.id, a.c.token) // what a page does after a reconnect; the ticket wins
		w := c.awaitType("welcome")
		assert.True(t, w.Resumed)
		assert.Equal(t, a.c.id, w.ID, "the same id")
		assert.NotEqual(t, a.c.token, w.Token, "a new token")
		assert.Equal(t, v2, w.Revision)
		assert.Equal(t, 3, w.MaxHP)
		c.id, c.token = w.ID, w.Token
		moved = append(moved, c)
	}
	after := moved[1].awaitState("both on v2", func(m serverMsg) bool { return len(m.Players) == 2 })
	for _, id := range []string{alice.id, bob.id} {
		was, _ := before.player(id)
		is, ok := after.player(id)
		require.True(t, ok, id)
		assert.Equal(t, was, is, "position, hit points, score, deaths, name")
	}
	assert.Equal(t, 2, p.calls())
	assert.Zero(t, newer.info(t).Players-2)

	// Played on v2: the new token resumes there.
	require.NoError(t, moved[0].conn.Close())
	again := newer.dial(t)
	again.resume(moved[0].id, moved[0].token)
	assert.True(t, again.awaitType("welcome").Resumed)
}

func TestDrainNoticeWithoutHandoff(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	a := startArena(t, p.env(v1, "r-0", false))
	alice := a.dial(t)
	alice.join("alice")

	assert.Equal(t, http.StatusBadRequest, postHook(t, a, strings.Replace(noticeJSON("draining", v2, ""), `"revision":"`+v1, `"revision":"00000000`, 1)),
		"a notice for another revision")
	p.drain(t, a)

	n := alice.awaitType("notice")
	assert.Equal(t, "draining", n.State)
	assert.Equal(t, v2, n.ActiveRevision)
	alice.ping(1) // stays: the revision serves its players to the end
	alice.send(map[string]string{"type": "move", "dir": "up"})
	alice.ping(2)

	late := a.dial(t)
	late.join("late") // a reservation made before the switch
	assert.Equal(t, "draining", late.awaitType("notice").State, "told right after its welcome")

	require.Equal(t, http.StatusNoContent, postHook(t, a, noticeJSON("active", v1, "re-activated")))
	n = alice.awaitType("notice")
	assert.Equal(t, "active", n.State, "rolled back to: the banner goes")
	assert.Equal(t, v1, n.ActiveRevision)

	_, resp := get(t, a.base+"discovery/handoff")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "no receiver without handoff mode")
}

func TestDrainNoticeFromTheStream(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	a := startArena(t, p.env(v1, "r-0", false))
	alice := a.dial(t)
	alice.join("alice")
	require.Eventually(t, func() bool { return p.tell(v1, noticeJSON("draining", v2, "superseded")) },
		readTimeout, 10*time.Millisecond, "the arena follows its revision's stream")

	n := alice.awaitType("notice")
	assert.Equal(t, "draining", n.State)

	// The same notice through the hook is not told twice.
	p.drain(t, a)
	alice.ping(1)
	alice.send(map[string]any{"type": "ping", "seq": 2})
	for m := alice.read(); m.Type != "pong"; m = alice.read() {
		assert.NotEqual(t, "notice", m.Type)
	}
}

func TestFailedHandoffSendsThePlayerElsewhere(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	p.setFail(http.StatusBadGateway)
	a := startArena(t, p.env(v1, "r-0", true))
	alice := a.dial(t)
	alice.join("alice")

	p.drain(t, a)

	alice.awaitType("notice")
	ce := alice.awaitCloseFrame()
	assert.Equal(t, discovery.CloseGoElsewhere, ce.Code)
	assert.Equal(t, handoffAttempts, p.calls(), "a target that refused is tried again")
	assert.Equal(t, 0, a.info(t).Players)
}

func TestRefusedHandoffKeepsThePlayer(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	p.setFail(http.StatusConflict) // e.g. the app sets no handoff_path
	a := startArena(t, p.env(v1, "r-0", true))
	alice := a.dial(t)
	alice.join("alice")

	p.drain(t, a)
	alice.awaitType("notice")

	require.Eventually(t, func() bool { return p.calls() == 1 }, readTimeout, 10*time.Millisecond)
	// Once the refusal is handled the player plays on; until then it is
	// frozen (error "moving").
	require.Eventually(t, func() bool {
		alice.send(map[string]string{"type": "move", "dir": "up"})
		alice.send(map[string]any{"type": "ping", "seq": 1})
		var moving bool
		for m := alice.read(); m.Type != "pong"; m = alice.read() {
			moving = moving || (m.Type == "error" && m.Code == codeMoving)
		}
		return !moving
	}, readTimeout, 10*time.Millisecond)
	assert.Equal(t, 1, p.calls(), "a refusal is not retried")
	assert.Equal(t, 1, a.info(t).Players)
}

func TestPlayerJoiningADrainingReplicaIsMovedOn(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	newer := startArena(t, p.env(v2, "r-2", true))
	older := startArena(t, p.env(v1, "r-0", true))
	p.setTarget(newer)
	p.drain(t, older)
	require.Eventually(t, func() bool { return older.info(t).Players == 0 }, readTimeout, 10*time.Millisecond)

	late := older.dial(t)
	late.join("late")
	late.awaitType("notice")
	ce := late.awaitCloseFrame()
	require.Equal(t, discovery.CloseMoved, ce.Code)
	ticket, _ := discovery.TicketFromReason(ce.Text)

	c := dialTicket(t, newer.ws, ticket)
	c.send(map[string]string{"type": "join", "name": "ignored: the ticket says who"})
	w := c.awaitType("welcome")
	assert.True(t, w.Resumed)
	assert.Equal(t, late.id, w.ID)
}

func TestTicketWithoutAStateJoinsAfresh(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	a := startArena(t, p.env(v2, "r-2", true))
	c := dialTicket(t, a.ws, "TICKETNEVERDELIVERED000000")
	w := c.join("alice")
	assert.False(t, w.Resumed)
}

func TestHandoffReceiverRefusesOversizedStates(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	a := startArena(t, p.env(v2, "r-2", true))
	req, err := http.NewRequest("POST", a.base+"discovery/handoff", bytes.NewReader(make([]byte, discovery.MaxState+1)))
	require.NoError(t, err)
	req.Header.Set(discovery.TicketHeader, "TICKET00000000000000000001")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
}
