package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	discovery "github.com/discovery-platform/discovery/sdk/go"
)

// The hub is the one goroutine that owns the world. Sessions send it commands
// over an unbuffered channel and it answers by putting JSON in their outboxes,
// never blocking on a socket. Because every reply to a session comes from
// this goroutine, a client sees replies in the order it sent requests.

// maxBatch bounds how many queued commands the hub takes in one go before it
// looks at its timers again.
const maxBatch = 256

// stateInterval is the shortest time between two state broadcasts. A change
// after a quiet spell is broadcast at once; changes that follow quickly are
// coalesced into one broadcast at most stateInterval later. Without it every
// move of N players costs N full snapshots.
const stateInterval = 100 * time.Millisecond

// closeResumedElsewhere is the close code sent to a connection whose player
// was resumed by a newer connection.
const closeResumedElsewhere = 4000

// Client -> server.
type clientMsg struct {
	Type  string `json:"type"`
	Name  string `json:"name"`  // join
	ID    string `json:"id"`    // join, to resume
	Token string `json:"token"` // join, to resume
	Dir   string `json:"dir"`   // move
	Seq   int64  `json:"seq"`   // ping
}

// Server -> client.
type (
	welcomeMsg struct {
		Type     string `json:"type"`
		ID       string `json:"id"`
		Token    string `json:"token"`
		Revision string `json:"revision"`
		Replica  string `json:"replica"`
		Respawn  bool   `json:"respawn"`
		Size     int    `json:"size"`
		MaxHP    int    `json:"max_hp"`
		Resumed  bool   `json:"resumed"`
	}
	stateMsg struct {
		Type    string        `json:"type"`
		Players []playerState `json:"players"`
		Tick    uint64        `json:"tick"`
	}
	playerState struct {
		ID        string `json:"id"`
		Name      string `json:"name"`
		X         int    `json:"x"`
		Y         int    `json:"y"`
		HP        int    `json:"hp"`
		Alive     bool   `json:"alive"`
		Score     int    `json:"score"`
		Deaths    int    `json:"deaths"`
		Connected bool   `json:"connected"`
	}
	killedMsg struct {
		Type string `json:"type"`
		By   string `json:"by"`
	}
	respawnedMsg struct {
		Type string `json:"type"`
		X    int    `json:"x"`
		Y    int    `json:"y"`
	}
	pongMsg struct {
		Type string `json:"type"`
		Seq  int64  `json:"seq"`
	}
	errorMsg struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
)

// Error codes sent with {"type":"error"}; PROTOCOL.md lists them.
const (
	codeBadJSON       = "bad_json"
	codeBinary        = "binary_unsupported"
	codeUnknownType   = "unknown_type"
	codeNotJoined     = "not_joined"
	codeAlreadyJoined = "already_joined"
	codeResumeFailed  = "resume_failed"
	codeDead          = "dead"
	codeBadDirection  = "bad_direction"
	codeMoving        = "moving"
)

// errorCode is the one place rule errors become client error codes.
func errorCode(err error) string {
	switch {
	case errors.Is(err, errUnknownPlayer), errors.Is(err, errBadToken):
		return codeResumeFailed
	case errors.Is(err, errDead):
		return codeDead
	case errors.Is(err, errBadDirection):
		return codeBadDirection
	case errors.Is(err, errMoving):
		return codeMoving
	}
	return "internal"
}

type cmdKind int

const (
	cmdMessage cmdKind = iota // a decoded client message
	cmdInvalid                // a message that could not be decoded; reply is the error
	cmdGone                   // the session's connection ended
	cmdInfo                   // a read of the counters for /info
	cmdNotice                 // the platform told the revision's state (handoff.go)
	cmdMoved                  // a handoff ended (handoff.go)
)

type command struct {
	kind   cmdKind
	sess   *session
	msg    clientMsg
	reply  errorMsg         // cmdInvalid
	info   chan<- infoMsg   // cmdInfo; buffered by the sender
	notice discovery.Notice // cmdNotice
	moved  moveResult       // cmdMoved
}

// infoMsg is the body of GET /info.
type infoMsg struct {
	Revision  string `json:"revision"`
	Replica   string `json:"replica"`
	Respawn   bool   `json:"respawn"`
	Size      int    `json:"size"`
	Players   int    `json:"players"`
	Connected int    `json:"connected"`
}

type hub struct {
	world    *world
	identity infoMsg // revision, replica, respawn, size
	log      *slog.Logger
	cmds     chan command
	stopped  chan struct{}

	// Handoff mode (handoff.go), set before run: handoff moves players
	// when the revision drains (nil: they stay), receiver keeps the states
	// of players moved here.
	handoff  handoffer
	receiver *discovery.Receiver
	moves    sync.WaitGroup // handoffs in flight
	// moveSlots bounds the handoffs in flight at once.
	moveSlots chan struct{}

	// Owned by the run goroutine.
	byPlayer  map[string]*session // the live connection of each connected player
	dirty     bool                // the world changed since the last broadcast
	tick      uint64              // number of state broadcasts so far
	lastState time.Time           // when the last state broadcast went out
	ctx       context.Context     // run's, for the handoffs it starts
	notice    *noticeMsg          // the drain notice, while the revision drains
}

func newHub(w *world, identity infoMsg, log *slog.Logger) *hub {
	return &hub{
		world:     w,
		identity:  identity,
		log:       log,
		cmds:      make(chan command),
		stopped:   make(chan struct{}),
		byPlayer:  map[string]*session{},
		moveSlots: make(chan struct{}, maxMovesInFlight),
	}
}

// run owns the world until ctx is done.
func (h *hub) run(ctx context.Context) {
	defer close(h.stopped)
	h.ctx = ctx
	rules := time.NewTimer(time.Hour) // the world's next respawn or removal
	rules.Stop()
	state := time.NewTimer(time.Hour) // a coalesced state broadcast
	state.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-h.cmds:
			h.handle(c)
			h.drain()
		case <-rules.C:
			h.expire()
		case <-state.C:
		}
		if h.dirty {
			if wait := time.Until(h.lastState.Add(stateInterval)); wait > 0 {
				state.Reset(wait)
			} else {
				h.broadcastState()
			}
		}
		if next, ok := h.world.nextDeadline(); ok {
			rules.Reset(time.Until(next))
		} else {
			rules.Stop()
		}
	}
}

// submit hands c to the hub; false once the hub has stopped or ctx is done.
func (h *hub) submit(ctx context.Context, c command) bool {
	select {
	case h.cmds <- c:
		return true
	case <-h.stopped:
		return false
	case <-ctx.Done():
		return false
	}
}

// info reads the counters through the hub, so it is consistent with every
// message the hub has already answered.
func (h *hub) info(ctx context.Context) (infoMsg, bool) {
	reply := make(chan infoMsg, 1)
	if !h.submit(ctx, command{kind: cmdInfo, info: reply}) {
		return infoMsg{}, false
	}
	return <-reply, true // the hub answers a command before it can stop
}

// drain handles commands already waiting, so one broadcast covers them all.
func (h *hub) drain() {
	for range maxBatch {
		select {
		case c := <-h.cmds:
			h.handle(c)
		default:
			return
		}
	}
}

func (h *hub) handle(c command) {
	switch c.kind {
	case cmdMessage:
		h.handleMessage(c.sess, c.msg)
	case cmdInvalid:
		h.send(c.sess, c.reply)
	case cmdGone:
		h.gone(c.sess)
	case cmdInfo:
		inf := h.identity
		for _, p := range h.world.snapshot() {
			inf.Players++
			if p.connected {
				inf.Connected++
			}
		}
		c.info <- inf
	case cmdNotice:
		h.handleNotice(c.notice)
	case cmdMoved:
		h.handleMoved(c.sess, c.moved)
	}
}

func (h *hub) handleMessage(s *session, m clientMsg) {
	switch m.Type {
	case "ping":
		h.send(s, pongMsg{Type: "pong", Seq: m.Seq})
		return
	case "join":
		h.join(s, m)
		return
	case "move", "attack", "leave":
	default:
		h.sendError(s, codeUnknownType, "unknown message type "+quote(m.Type))
		return
	}
	if s.player == "" {
		h.sendError(s, codeNotJoined, "send join first")
		return
	}
	switch m.Type {
	case "move":
		if err := h.world.move(s.player, direction(m.Dir)); err != nil {
			h.sendError(s, errorCode(err), err.Error())
			return
		}
		h.dirty = true
	case "attack":
		victims, err := h.world.attack(s.player)
		if err != nil {
			h.sendError(s, errorCode(err), err.Error())
			return
		}
		for _, v := range victims {
			h.log.Info("kill", "player", s.player, "victim", v)
			if vs := h.byPlayer[v]; vs != nil {
				h.send(vs, killedMsg{Type: "killed", By: s.player})
			}
		}
		h.dirty = true // hit points, if nothing else
	case "leave":
		h.log.Info("leave", "player", s.player)
		h.world.leave(s.player)
		delete(h.byPlayer, s.player)
		s.player = ""
		h.dirty = true
	}
}

func (h *hub) join(s *session, m clientMsg) {
	if s.player != "" {
		h.sendError(s, codeAlreadyJoined, "this connection already plays "+s.player)
		return
	}
	var p player
	resumed := m.ID != ""
	if mp, ok := h.arriving(s); ok {
		p, resumed = h.world.restore(mp), true
		h.log.Info("arrived", "player", p.id, "name", p.name)
	} else if resumed {
		var err error
		if p, err = h.world.resume(m.ID, m.Token); err != nil {
			h.sendError(s, errorCode(err), err.Error())
			return
		}
		if old := h.byPlayer[p.id]; old != nil {
			old.player = ""
			old.close(closeResumedElsewhere, "resumed elsewhere")
		}
		h.log.Info("resume", "player", p.id)
	} else {
		p = h.world.join(m.Name)
		h.log.Info("join", "player", p.id, "name", p.name)
	}
	s.player = p.id
	h.byPlayer[p.id] = s
	h.send(s, welcomeMsg{
		Type: "welcome", ID: p.id, Token: p.token,
		Revision: h.identity.Revision, Replica: h.identity.Replica,
		Respawn: h.identity.Respawn, Size: h.identity.Size, MaxHP: h.world.rules.hp, Resumed: resumed,
	})
	h.dirty = true
	h.joinedWhileDraining(s)
}

// gone marks the session's player disconnected, unless a newer connection
// has resumed it meanwhile.
func (h *hub) gone(s *session) {
	if s.player == "" || h.byPlayer[s.player] != s {
		return
	}
	h.world.disconnect(s.player)
	delete(h.byPlayer, s.player)
	s.player = ""
	h.dirty = true
}

func (h *hub) expire() {
	res := h.world.runTimers()
	for _, p := range res.respawned {
		if s := h.byPlayer[p.id]; s != nil {
			h.send(s, respawnedMsg{Type: "respawned", X: p.x, Y: p.y})
		}
	}
	for _, id := range res.removed {
		h.log.Info("removed after reconnect window", "player", id)
	}
	h.dirty = h.dirty || len(res.respawned) > 0 || len(res.removed) > 0
}

// broadcastState sends the whole world to every connected player.
func (h *hub) broadcastState() {
	h.dirty = false
	h.lastState = time.Now()
	h.tick++
	snap := h.world.snapshot()
	st := stateMsg{Type: "state", Tick: h.tick, Players: make([]playerState, len(snap))}
	for i, p := range snap {
		st.Players[i] = playerState{
			ID: p.id, Name: p.name, X: p.x, Y: p.y, HP: p.hp, Alive: p.alive,
			Score: p.score, Deaths: p.deaths, Connected: p.connected,
		}
	}
	b := mustMarshal(st)
	for _, s := range h.byPlayer {
		s.offerState(b)
	}
}

func (h *hub) send(s *session, v any) {
	s.enqueue(mustMarshal(v))
}

func (h *hub) sendError(s *session, code, message string) {
	h.send(s, errorMsg{Type: "error", Code: code, Message: message})
}

// mustMarshal encodes the server's own message structs, which cannot fail.
func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("arena: marshal " + err.Error())
	}
	return b
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// decodeClientMsg turns one WebSocket message into a command for the hub.
func decodeClientMsg(s *session, messageType int, data []byte) command {
	if messageType != websocket.TextMessage {
		return command{kind: cmdInvalid, sess: s, reply: errorMsg{Type: "error", Code: codeBinary, Message: "send JSON text messages"}}
	}
	var m clientMsg
	if err := json.Unmarshal(data, &m); err != nil {
		return command{kind: cmdInvalid, sess: s, reply: errorMsg{Type: "error", Code: codeBadJSON, Message: "invalid JSON: " + err.Error()}}
	}
	return command{kind: cmdMessage, sess: s, msg: m}
}
