package apps

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"time"
)

// A handoff moves a player from a replica of a draining revision to one of
// the active revision: the old replica sends the player's state, the
// platform forwards it to a replica it picks and gives back a ticket, and
// the player's client presents the ticket when it connects there. The
// platform never stores the state; it stores the ticket, which names the
// target and can be used once before it expires. See sdk/PROTOCOL.md.

const (
	// MaxHandoffState bounds a handed-off player's state.
	MaxHandoffState = 1 << 20
	// TicketTTL is how long a ticket can be used.
	TicketTTL = 60 * time.Second
)

// ErrGone: a ticket that is unknown, used or expired (410).
var ErrGone = errors.New("apps: gone")

// Ticket is a handoff's proof, bound to the replica it moves a player to.
type Ticket struct {
	ID string `json:"-"`
	// Tenant, App, Revision and Replica name the target.
	Tenant   string `json:"tenant"`
	App      string `json:"app"`
	Revision string `json:"revision"`
	Replica  string `json:"replica"`
	// FromRevision and FromReplica name where the player was.
	FromRevision string    `json:"from_revision"`
	FromReplica  string    `json:"from_replica,omitempty"`
	Expires      time.Time `json:"expires"`
	// Used is set when a client has presented it.
	Used bool `json:"used,omitempty"`
}

// Target is the replica the ticket moves a player to.
func (t Ticket) Target() ReplicaID {
	return ReplicaID{Tenant: t.Tenant, App: t.App, Revision: t.Revision, Replica: t.Replica}
}

// ticketEncoding writes 16 random bytes as 26 characters, no padding.
var ticketEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewTicketID returns a fresh ticket id: 128 random bits in 26 characters
// of base32.
func NewTicketID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return ticketEncoding.EncodeToString(b[:])
}

// ValidTicketID reports whether s has a ticket id's shape (before any
// lookup: a malformed id is refused without a store read).
func ValidTicketID(s string) bool {
	if len(s) != 26 {
		return false
	}
	b, err := ticketEncoding.DecodeString(s)
	return err == nil && len(b) == 16
}
