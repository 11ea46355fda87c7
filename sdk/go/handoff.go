package discovery

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Close codes of the platform's range (4900-4999) a game server closes a
// player's WebSocket with (sdk/PROTOCOL.md §2).
const (
	// CloseMoved: the player was handed off; the close reason is
	// CloseReason(ticket) and the client reconnects with the ticket.
	CloseMoved = 4901
	// CloseGoElsewhere: the server asks the client to leave this replica
	// without its state (a handoff failed, or the server drains and will
	// not hand over); the client calls get-endpoint afresh.
	CloseGoElsewhere = 4902
)

// MaxState is the largest state a handoff carries: 1 MiB.
const MaxState = 1 << 20

// reasonPrefix starts a CloseMoved close reason.
const reasonPrefix = "ticket="

// CloseReason is the close reason of CloseMoved for a ticket: "ticket=T".
func CloseReason(ticket string) string { return reasonPrefix + ticket }

// TicketFromReason reads the ticket of a CloseMoved close reason (for
// clients written in Go: bots, load tests).
func TicketFromReason(reason string) (string, bool) {
	t, ok := strings.CutPrefix(reason, reasonPrefix)
	if !ok || t == "" {
		return "", false
	}
	return t, true
}

// Moved is where a handed-off player goes.
type Moved struct {
	// Ticket is the single-use proof the player presents at the target.
	Ticket string `json:"ticket"`
	// Socket is the target's WebSocket URL, carrying the ticket.
	Socket string `json:"socket"`
	// Revision and Replica name the target.
	Revision string `json:"revision"`
	Replica  string `json:"replica"`
	// ExpiresIn is how long the ticket can be used (60 s).
	ExpiresIn time.Duration `json:"-"`
}

// CloseReason is the reason to close the player's WebSocket with, along
// with CloseMoved.
func (m Moved) CloseReason() string { return CloseReason(m.Ticket) }

// Handoff moves a player to the active revision with its state (any bytes,
// at most MaxState; sdk/PROTOCOL.md §4). The platform forwards the state to
// a replica of the active revision and answers a ticket; the caller then
// closes the player's WebSocket with CloseMoved and m.CloseReason().
//
// Errors match ErrConflict (this revision is not draining, the app sets no
// handoff_path, or there is no active revision: the player may stay),
// ErrNotFound, ErrTooLarge, ErrTargetFailed (the target did not take the
// state; retry or fall back), ErrUnavailable (no replica has room) or
// ErrUnauthorized; a network error is returned as it is. A player who
// cannot be moved may be sent away with CloseGoElsewhere.
func (r *Replica) Handoff(ctx context.Context, state []byte) (Moved, error) {
	if len(state) > MaxState {
		return Moved{}, &Error{Op: "handoff", Status: http.StatusRequestEntityTooLarge,
			Message: fmt.Sprintf("state of %d bytes, at most %d (checked before sending)", len(state), MaxState)}
	}
	if state == nil {
		state = []byte{}
	}
	var out struct {
		Moved
		ExpiresIn int `json:"expires_in"`
	}
	err := r.do(ctx, call{op: "handoff", method: http.MethodPost, path: r.revisionPath("handoffs"),
		header:     http.Header{"Content-Type": {"application/octet-stream"}, ReplicaHeader: {r.Name}},
		body:       state,
		capability: true, ok: []int{http.StatusCreated, http.StatusOK}, out: &out})
	if err != nil {
		return Moved{}, err
	}
	m := out.Moved
	m.ExpiresIn = time.Duration(out.ExpiresIn) * time.Second
	if m.Ticket == "" || m.Socket == "" {
		return Moved{}, fmt.Errorf("discovery: handoff: the platform answered no ticket or socket")
	}
	return m, nil
}
