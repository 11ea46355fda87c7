package main

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	discovery "github.com/discovery-platform/discovery/sdk/go"
)

// How the arena cooperates with the platform that runs it (sdk/PROTOCOL.md,
// through the Go SDK): it hears that its revision drains and tells its
// players; in handoff mode it moves each of them, with their state, to the
// active revision, and takes in the players moved to it.

// The paths the app's drain_hook and handoff_path settings name.
const (
	drainHookPath = "/discovery/drain"
	handoffPath   = "/discovery/handoff"
)

// Handoff tuning.
const (
	// maxMovesInFlight bounds the handoff calls made at once, so a drain
	// with many players does not open as many connections to the API.
	maxMovesInFlight = 32
	// A handoff the target refused (502), with no room (503) or not
	// answered is tried handoffAttempts times, handoffRetryWait apart
	// (doubling), each attempt at most handoffTimeout.
	handoffAttempts  = 3
	handoffRetryWait = 200 * time.Millisecond
	handoffTimeout   = 15 * time.Second
)

// handoffer moves a player's state to the active revision
// (*discovery.Replica).
type handoffer interface {
	Handoff(ctx context.Context, state []byte) (discovery.Moved, error)
}

// noticeMsg tells players the revision's state, server -> client.
type noticeMsg struct {
	Type           string     `json:"type"` // "notice"
	State          string     `json:"state"`
	ActiveRevision string     `json:"active_revision"`
	Reason         string     `json:"reason,omitempty"`
	Deadline       *time.Time `json:"deadline,omitempty"`
}

// moveResult is how a player's handoff ended.
type moveResult struct {
	player string
	moved  discovery.Moved
	err    error
}

// usePlatform wires the server to the platform, when it runs on one.
func (s *server) usePlatform(cfg config) {
	if cfg.platform == nil {
		return
	}
	s.platform = cfg.platform
	s.platform.Log = s.log
	if cfg.handoff {
		s.hub.handoff = cfg.platform
		s.hub.receiver = &discovery.Receiver{}
	}
}

// platformRoutes mounts what the platform calls: the drain hook, and in
// handoff mode the handoff receiver.
func (s *server) platformRoutes(mux *http.ServeMux) {
	if s.platform == nil {
		return
	}
	mux.Handle("POST "+drainHookPath, s.platform.DrainHook())
	if s.hub.receiver != nil {
		mux.Handle("POST "+handoffPath, s.hub.receiver)
	}
}

// followPlatform hands the revision's notices to the hub, from the drain
// hook and from the platform's notice stream, which it follows until ctx
// ends. wait returns once it has stopped following.
func (s *server) followPlatform(ctx context.Context) (wait func()) {
	if s.platform == nil {
		return func() {}
	}
	s.platform.OnNotice(s.hub.notify)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.platform.FollowNotices(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("not following the platform's notices; the drain hook still tells them", "err", err)
		}
	}()
	return func() { <-done }
}

// notify hands a notice to the hub; dropped once the hub has stopped.
func (h *hub) notify(n discovery.Notice) {
	h.submit(context.Background(), command{kind: cmdNotice, notice: n})
}

// handleNotice tells every joined player the revision's new state and, in
// handoff mode, moves them all when it drains.
func (h *hub) handleNotice(n discovery.Notice) {
	msg := noticeMsg{Type: "notice", State: n.State, ActiveRevision: n.ActiveRevision, Reason: n.Reason}
	if !n.Deadline.IsZero() {
		msg.Deadline = &n.Deadline
	}
	h.notice = nil
	if n.Draining() {
		h.notice = &msg
	}
	players := h.joined()
	h.log.Info("notice", "state", n.State, "active_revision", n.ActiveRevision, "reason", n.Reason,
		"players", len(players), "handoff", h.handoff != nil)
	for _, s := range players {
		h.send(s, msg)
	}
	if n.Draining() && h.handoff != nil {
		for _, s := range players {
			h.startMove(s)
		}
	}
}

// joined lists the sessions that play, in their players' join order.
func (h *hub) joined() []*session {
	ss := make([]*session, 0, len(h.byPlayer))
	for _, p := range h.world.snapshot() {
		if s := h.byPlayer[p.id]; s != nil {
			ss = append(ss, s)
		}
	}
	return ss
}

// joinedWhileDraining tells a player who joins a draining revision so, and
// in handoff mode moves it on at once.
func (h *hub) joinedWhileDraining(s *session) {
	if h.notice == nil {
		return
	}
	h.send(s, *h.notice)
	if h.handoff != nil {
		h.startMove(s)
	}
}

// arriving returns the state of a player moved here, when its connection
// came with a handoff ticket whose state this arena holds. The ticket is
// tried once.
func (h *hub) arriving(s *session) (movedPlayer, bool) {
	ticket := s.ticket
	s.ticket = ""
	if ticket == "" || h.receiver == nil {
		return movedPlayer{}, false
	}
	b, ok := h.receiver.Take(ticket)
	if !ok {
		h.log.Info("a ticket with no state here (expired, or taken): joining afresh")
		return movedPlayer{}, false
	}
	m, err := decodeMoved(b)
	if err != nil {
		h.log.Warn("a handed-off state that cannot be restored: joining afresh", "err", err)
		return movedPlayer{}, false
	}
	return m, true
}

// startMove freezes s's player and hands its state to the platform on
// another goroutine; handleMoved finishes the move.
func (h *hub) startMove(s *session) {
	id := s.player
	m, ok := h.world.export(id)
	if !ok {
		return // gone, or already moving
	}
	state, ctx := m.encode(), h.ctx
	h.moves.Go(func() {
		res := moveResult{player: id}
		res.moved, res.err = h.handOff(ctx, state)
		h.submit(ctx, command{kind: cmdMoved, sess: s, moved: res})
	})
}

// handOff calls the platform, retrying what a retry may fix.
func (h *hub) handOff(ctx context.Context, state []byte) (discovery.Moved, error) {
	select {
	case h.moveSlots <- struct{}{}:
		defer func() { <-h.moveSlots }()
	case <-ctx.Done():
		return discovery.Moved{}, ctx.Err()
	}
	wait := handoffRetryWait
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, handoffTimeout)
		m, err := h.handoff.Handoff(actx, state)
		cancel()
		if err == nil || attempt == handoffAttempts || !retryable(err) {
			return m, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return discovery.Moved{}, err
		case <-t.C:
		}
		wait *= 2
	}
}

// retryable: the target refused or had no room, the platform asked to
// slow down, or the call did not get an answer.
func retryable(err error) bool {
	var e *discovery.Error
	return !errors.As(err, &e) || slices.Contains([]error{discovery.ErrTargetFailed, discovery.ErrUnavailable, discovery.ErrRateLimited}, e.Unwrap())
}

// handleMoved ends a player's move. Moved: it leaves this world and its
// connection is closed with 4901 and the ticket. Refused because no
// handoff can happen now (the revision is active again, the app sets no
// handoff_path, no active revision): it plays on here. Failed otherwise:
// it leaves and is sent elsewhere with 4902, starting afresh.
func (h *hub) handleMoved(s *session, r moveResult) {
	if !h.world.thaw(r.player) {
		return // it left, or its reconnect window passed, meanwhile
	}
	log := h.log.With("player", r.player)
	cur := h.byPlayer[r.player]
	switch {
	case cur != s:
		// Its connection ended (or another resumed it) before it could be
		// told: the ticket is lost with that connection. It stays here and
		// is moved again over the connection it comes back with.
		log.Info("handoff outlived its connection; the player stays", "err", r.err)
		if cur != nil && h.notice != nil && h.handoff != nil {
			h.startMove(cur)
		}
		return
	case r.err == nil:
		log.Info("moved", "to_revision", r.moved.Revision, "to_replica", r.moved.Replica)
		h.sendAway(s, discovery.CloseMoved, r.moved.CloseReason())
	case errors.Is(r.err, discovery.ErrConflict), errors.Is(r.err, discovery.ErrNotFound):
		log.Warn("handoff refused; the player stays", "err", r.err)
	default:
		log.Warn("handoff failed; sending the player elsewhere", "err", r.err)
		h.sendAway(s, discovery.CloseGoElsewhere, "handoff failed: get a new endpoint")
	}
}

// sendAway removes s's player from the world and closes s with code and
// reason, once the replies queued for it are written.
func (h *hub) sendAway(s *session, code int, reason string) {
	h.world.leave(s.player)
	delete(h.byPlayer, s.player)
	s.player = ""
	s.closeFlushed(code, reason)
	h.dirty = true
}
