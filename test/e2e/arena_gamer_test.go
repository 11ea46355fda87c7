package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	discovery "github.com/discovery-platform/discovery/sdk/go"
)

// A Go client of the arena (examples/arena/PROTOCOL.md) that follows the
// platform's client protocol (sdk/PROTOCOL.md §2) as sdk/js does: one
// gamer per player, playing from its own goroutine.

// arenaMsg is any arena message (server -> client) a test reads.
type arenaMsg struct {
	Type     string       `json:"type"`
	ID       string       `json:"id"`
	Token    string       `json:"token"`
	Revision string       `json:"revision"`
	Replica  string       `json:"replica"`
	Resumed  bool         `json:"resumed"`
	Seq      int64        `json:"seq"`
	Code     string       `json:"code"`
	Message  string       `json:"message"`
	Players  []arenaState `json:"players"`
}

// arenaState is one player's line in a state broadcast: everything a
// handoff must carry over.
type arenaState struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	X      int    `json:"x"`
	Y      int    `json:"y"`
	HP     int    `json:"hp"`
	Alive  bool   `json:"alive"`
	Score  int    `json:"score"`
	Deaths int    `json:"deaths"`
}

// stateBytes is the size of the state the arena hands off for s (its
// movedPlayer JSON; no respawn is due when respawn is off).
func (s arenaState) stateBytes() int {
	b, _ := json.Marshal(struct {
		V int `json:"v"`
		arenaState
	}{1, s})
	return len(b)
}

// endpointAt calls get-endpoint (with a ticket, if any) without failing
// the test: gamers call it from their own goroutines.
func endpointAt(f *Framework, app, ticket string) (Endpoint, int, error) {
	url := f.APIURL() + "/api/v1/tenants/default/apps/" + app + "/endpoint"
	if ticket != "" {
		url += "?ticket=" + ticket
	}
	client := http.Client{Timeout: 15 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return Endpoint{}, 0, err
	}
	defer resp.Body.Close()
	var ep Endpoint
	if resp.StatusCode == 200 {
		err = json.NewDecoder(resp.Body).Decode(&ep)
	}
	return ep, resp.StatusCode, err
}

// gamer is one arena client. Its methods run on one goroutine at a time
// and return errors rather than failing the test.
type gamer struct {
	f       *Framework
	socks   *sockets
	app     string
	name    string
	conn    *websocket.Conn
	socket  string // the socket it plays on, without a ticket
	welcome arenaMsg
	// lastState is the newest state broadcast seen, as it came.
	lastState []byte
	seq       int64
	// openedAt and welcomedAt are when the last socket opened and its
	// welcome came.
	openedAt, welcomedAt time.Time
}

// sockets are the arena connections of a test's gamers: all closed at its
// end, and any opened after that closed at once.
type sockets struct {
	mu    sync.Mutex
	over  bool
	conns []*websocket.Conn
}

func (s *sockets) add(c *websocket.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.over {
		_ = c.Close()
		return
	}
	s.conns = append(s.conns, c)
}

func (s *sockets) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.over = true
	for _, c := range s.conns {
		_ = c.Close()
	}
}

// errNoSocket: a socket that could not be dialled (PROTOCOL.md §2's
// "the dial fails"), as opposed to one that opened and then misbehaved.
var errNoSocket = errors.New("the socket did not open")

// play dials socket, sends join and reads up to the first state that shows
// the player; the connection stays open.
func (g *gamer) play(socket string, join map[string]string, deadline time.Time) error {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial(socket, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
			resp.Body.Close()
		}
		return fmt.Errorf("%w: %s: %v (HTTP %d)", errNoSocket, socket, err, status)
	}
	g.socks.add(conn)
	g.conn, g.welcome, g.lastState, g.openedAt = conn, arenaMsg{}, nil, time.Now()
	g.socket, _, _ = strings.Cut(socket, "?")
	if err := g.send(join); err != nil {
		return err
	}
	for {
		m, err := g.read(deadline)
		if err != nil {
			return err
		}
		switch {
		case m.Type == "welcome":
			g.welcome, g.welcomedAt = m, time.Now()
		case m.Type == "error":
			return fmt.Errorf("join: %s: %s", m.Code, m.Message)
		case m.Type == "state" && g.welcome.ID != "":
			if _, ok := g.mine(); ok {
				return nil
			}
		}
	}
}

func (g *gamer) send(v any) error {
	_ = g.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return g.conn.WriteJSON(v)
}

// read reads one message. A state broadcast (the whole world, kilobytes
// for a hundred players, several times a second) is only kept: mine
// decodes the newest one when the test needs it.
func (g *gamer) read(deadline time.Time) (arenaMsg, error) {
	_ = g.conn.SetReadDeadline(deadline)
	var m arenaMsg
	_, data, err := g.conn.ReadMessage()
	if err != nil {
		return m, err
	}
	if bytes.HasPrefix(data, []byte(`{"type":"state"`)) {
		g.lastState, m.Type = data, "state"
		return m, nil
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("arena sent %q: %w", data, err)
	}
	return m, nil
}

// mine is the player's own line in the newest state seen; false when that
// state does not show it.
func (g *gamer) mine() (arenaState, bool) { return g.line(g.welcome.ID) }

// line is player id's line in the newest state seen.
func (g *gamer) line(id string) (arenaState, bool) {
	var m arenaMsg
	if g.lastState == nil || json.Unmarshal(g.lastState, &m) != nil {
		return arenaState{}, false
	}
	for _, p := range m.Players {
		if p.ID == id {
			return p, true
		}
	}
	return arenaState{}, false
}

// seeing reads until a state shows player id.
func (g *gamer) seeing(id string, deadline time.Time) error {
	for {
		if _, ok := g.line(id); ok {
			return nil
		}
		if _, err := g.read(deadline); err != nil {
			return fmt.Errorf("%s never saw %s: %w", g.name, id, err)
		}
	}
}

// act sends moves and attacks, then a ping: once its pong is back, the
// arena has applied them (errors such as "dead" are part of the game).
func (g *gamer) act(moves []string, attacks int) error {
	for _, dir := range moves {
		if err := g.send(map[string]string{"type": "move", "dir": dir}); err != nil {
			return err
		}
	}
	for range attacks {
		if err := g.send(map[string]string{"type": "attack"}); err != nil {
			return err
		}
	}
	g.seq++
	if err := g.send(map[string]any{"type": "ping", "seq": g.seq}); err != nil {
		return err
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		m, err := g.read(deadline)
		if err != nil || m.Type == "pong" && m.Seq == g.seq {
			return err
		}
	}
}

// ride is how one player went through a handoff.
type ride struct {
	before   arenaState // its line in the last state of the old replica
	code     int        // the old replica's close code
	closedAt time.Time
	ticket   string
	target   string    // the replica get-endpoint?ticket named, if it answered
	foundAt  time.Time // get-endpoint?ticket= answered
	fellBack string    // why it called a fresh get-endpoint; "" if it did not
	welcome  arenaMsg
	after    arenaState // its line in the first state of the replica it plays on now
	backAt   time.Time
	err      error
}

// ride reads until the old replica closes, then follows the close as sdk/js
// does (PROTOCOL.md §2): 4901 -> get-endpoint?ticket= and its socket, at
// once; a 410 or a failed dial there, or 4902 -> a fresh get-endpoint. Each
// ticket is offered on moved, and followed once hold is closed (nil: at
// once).
func (g *gamer) ride(deadline time.Time, moved chan<- string, hold <-chan struct{}) (r ride) {
	var ce *websocket.CloseError
	for {
		_, err := g.read(deadline)
		if err != nil {
			r.closedAt = time.Now()
			r.before, _ = g.mine()
			if !errors.As(err, &ce) {
				r.err = fmt.Errorf("the old replica's socket ended without a close frame: %w", err)
				return r
			}
			break
		}
	}
	_ = g.conn.Close()
	r.code = ce.Code
	switch r.code {
	case discovery.CloseMoved:
		var ok bool
		if r.ticket, ok = discovery.TicketFromReason(ce.Text); !ok {
			r.err = fmt.Errorf("4901 with reason %q", ce.Text)
			return r
		}
		select {
		case moved <- r.ticket:
		default:
		}
		if hold != nil {
			select {
			case <-hold:
			case <-time.After(time.Until(deadline)):
				r.err = errors.New("never released")
				return r
			}
		}
		r.fellBack, r.err = g.follow(r.ticket, &r, deadline)
	case discovery.CloseGoElsewhere:
		r.fellBack = "closed with 4902: " + ce.Text
	default:
		r.err = fmt.Errorf("closed with %d %q", ce.Code, ce.Text)
	}
	if r.err == nil && r.fellBack != "" {
		r.err = g.fresh(deadline)
	}
	r.backAt, r.welcome = time.Now(), g.welcome
	r.after, _ = g.mine()
	if r.err == nil {
		go func(c *websocket.Conn) { // keep reading what the arena broadcasts, until cleanup
			_ = c.SetReadDeadline(time.Time{})
			for {
				if _, _, err := c.NextReader(); err != nil {
					return
				}
			}
		}(g.conn)
	}
	return r
}

// follow presents the ticket; it returns why the player must fall back, or
// an error the client cannot recover from.
func (g *gamer) follow(ticket string, r *ride, deadline time.Time) (string, error) {
	ep, code, err := endpointAt(g.f, g.app, ticket)
	if code != 200 {
		return fmt.Sprintf("get-endpoint?ticket= answered %d %v", code, err), nil
	}
	r.target, r.foundAt = ep.Replica, time.Now()
	err = g.play(ep.Socket, map[string]string{"type": "join", "id": g.welcome.ID, "token": g.welcome.Token}, deadline)
	if errors.Is(err, errNoSocket) {
		return err.Error(), nil
	}
	return "", err
}

// fresh joins afresh through get-endpoint, retrying what may pass until
// deadline, with backoff.
func (g *gamer) fresh(deadline time.Time) error {
	wait := 50 * time.Millisecond
	for {
		ep, code, err := endpointAt(g.f, g.app, "")
		if code == 200 {
			if err = g.play(ep.Socket, map[string]string{"type": "join", "name": g.name}, deadline); err == nil || !errors.Is(err, errNoSocket) {
				return err
			}
		}
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("no new endpoint by the deadline: %d %v", code, err)
		}
		time.Sleep(wait) // backoff between attempts, as sdk/js does
		wait = min(2*wait, time.Second)
	}
}

// joinArena brings n players into app, a few at a time; their sockets
// are closed at the test's end.
func (f *Framework) joinArena(app string, n int) []*gamer {
	f.t.Helper()
	socks := &sockets{}
	f.t.Cleanup(socks.closeAll)
	gs := make([]*gamer, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range gs {
		gs[i] = &gamer{f: f, socks: socks, app: app, name: fmt.Sprintf("player-%03d", i)}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = gs[i].fresh(time.Now().Add(30 * time.Second))
		})
	}
	wg.Wait()
	require.NoError(f.t, errors.Join(errs...))
	return gs
}

// everyone runs do for each gamer at once and fails the test on any error.
func everyone(t *testing.T, gs []*gamer, do func(i int, g *gamer) error) {
	t.Helper()
	errs := make([]error, len(gs))
	var wg sync.WaitGroup
	for i, g := range gs {
		wg.Go(func() { errs[i] = do(i, g) })
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
}

// settle returns once every gamer has seen a state made after all it did
// (the arena coalesces broadcasts, so the newest state a player saw may lag
// its last act by up to 100 ms): a newcomer joins each replica they play
// on, each of them reads up to a state that shows it, and it leaves.
func settle(t *testing.T, gs []*gamer) {
	t.Helper()
	bySocket := map[string][]*gamer{}
	for _, g := range gs {
		bySocket[g.socket] = append(bySocket[g.socket], g)
	}
	deadline := time.Now().Add(20 * time.Second)
	for socket, group := range bySocket {
		newcomer := &gamer{f: group[0].f, socks: group[0].socks, app: group[0].app, name: "newcomer"}
		require.NoError(t, newcomer.play(socket, map[string]string{"type": "join", "name": newcomer.name}, deadline))
		everyone(t, group, func(_ int, g *gamer) error { return g.seeing(newcomer.welcome.ID, deadline) })
		require.NoError(t, newcomer.send(map[string]string{"type": "leave"}))
		require.NoError(t, newcomer.act(nil, 0)) // its leave is done
		_ = newcomer.conn.Close()
	}
}

// rideAll starts every gamer's ride; the returned function waits for them.
// At the test's end their sockets are closed and the rides waited for.
func rideAll(t *testing.T, gs []*gamer, within time.Duration, moved chan<- string, hold <-chan struct{}) func() []ride {
	deadline := time.Now().Add(within)
	rides := make([]ride, len(gs))
	var wg sync.WaitGroup
	for i, g := range gs {
		wg.Go(func() { rides[i] = g.ride(deadline, moved, hold) })
	}
	t.Cleanup(func() { gs[0].socks.closeAll(); wg.Wait() })
	return func() []ride { wg.Wait(); return rides }
}
