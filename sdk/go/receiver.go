package discovery

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// StateTTL is how long a Receiver keeps a state its player has not come
// for: a ticket's own validity.
const StateTTL = 60 * time.Second

// Receiver defaults.
const (
	DefaultMaxStates = 4096
	DefaultMaxBytes  = 64 << 20
)

// Ticket returns the handoff ticket of a player's WebSocket upgrade
// request: the X-Discovery-Ticket header the gateway adds once it has
// checked and used up the ticket (it removes a client's own header of that
// name first). Empty when the player is not arriving from a handoff.
func Ticket(r *http.Request) string {
	return r.Header.Get(TicketHeader)
}

// Receiver keeps the states of players handed off to this replica until
// they arrive: mount it at the app's handoff_path, where the platform POSTs
// each state with its ticket, and Take a state when a player's socket
// arrives with that ticket (Ticket). A state is kept at most StateTTL and
// taken at most once.
//
// It answers 204 when it keeps the state; 400 without a ticket; 409 for a
// ticket it already holds (the first state stays: nobody can replace a
// player's state once the platform has delivered it); 413 for a state over
// MaxState; 503 when MaxStates or MaxBytes would be exceeded (the platform
// then tells the old server the target failed).
//
// The zero value is ready to use; set the limits before serving.
type Receiver struct {
	// MaxStates bounds the states kept at once (DefaultMaxStates when 0).
	MaxStates int
	// MaxBytes bounds their total size (DefaultMaxBytes when 0).
	MaxBytes int

	mu     sync.Mutex
	states map[string]heldState
	queue  []queued // arrival order, for expiry; may hold taken tickets
	bytes  int
	now    func() time.Time // tests
}

type heldState struct {
	state   []byte
	expires time.Time
}

type queued struct {
	ticket  string
	expires time.Time
}

func (rc *Receiver) clock() time.Time {
	if rc.now != nil {
		return rc.now()
	}
	return time.Now()
}

// ServeHTTP takes a state from the platform.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST a state", http.StatusMethodNotAllowed)
		return
	}
	ticket := Ticket(r)
	if !validTicket(ticket) {
		http.Error(w, "want a handoff ticket in "+TicketHeader, http.StatusBadRequest)
		return
	}
	if r.ContentLength > MaxState {
		http.Error(w, fmt.Sprintf("state over %d bytes", MaxState), http.StatusRequestEntityTooLarge)
		return
	}
	state, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxState))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, fmt.Sprintf("state over %d bytes", MaxState), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read the state: "+err.Error(), http.StatusBadRequest)
		return
	}
	if code, msg := rc.put(ticket, state); code != http.StatusNoContent {
		http.Error(w, msg, code)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *Receiver) put(ticket string, state []byte) (int, string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	now := rc.clock()
	rc.expire(now)
	if _, ok := rc.states[ticket]; ok {
		return http.StatusConflict, "a state is already kept under this ticket"
	}
	maxStates, maxBytes := rc.MaxStates, rc.MaxBytes
	if maxStates <= 0 {
		maxStates = DefaultMaxStates
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if len(rc.states) >= maxStates || rc.bytes+len(state) > maxBytes {
		return http.StatusServiceUnavailable, "this replica keeps as many handed-off states as it may; try another"
	}
	if rc.states == nil {
		rc.states = map[string]heldState{}
	}
	exp := now.Add(StateTTL)
	rc.states[ticket] = heldState{state: state, expires: exp}
	rc.queue = append(rc.queue, queued{ticket: ticket, expires: exp})
	rc.bytes += len(state)
	return http.StatusNoContent, ""
}

// Take returns the state kept under ticket and forgets it: a second Take
// of the same ticket, or one after StateTTL, finds nothing.
func (rc *Receiver) Take(ticket string) ([]byte, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.expire(rc.clock())
	h, ok := rc.states[ticket]
	if !ok {
		return nil, false
	}
	rc.drop(ticket, h)
	return h.state, true
}

// Len is how many states wait for their players.
func (rc *Receiver) Len() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.expire(rc.clock())
	return len(rc.states)
}

// expire forgets the states past their time. States arrive in time order,
// so the expired ones are at the front of the queue.
func (rc *Receiver) expire(now time.Time) {
	n := 0
	for _, q := range rc.queue {
		if now.Before(q.expires) {
			break
		}
		if h, ok := rc.states[q.ticket]; ok && h.expires.Equal(q.expires) {
			rc.drop(q.ticket, h)
		}
		n++
	}
	rc.queue = rc.queue[n:]
	// Taken tickets leave their queue entry behind: compact once they
	// outnumber the states kept.
	if len(rc.queue) > 64 && len(rc.queue) > 2*len(rc.states) {
		kept := make([]queued, 0, len(rc.states))
		for _, q := range rc.queue {
			if h, ok := rc.states[q.ticket]; ok && h.expires.Equal(q.expires) {
				kept = append(kept, q)
			}
		}
		rc.queue = kept
	}
}

func (rc *Receiver) drop(ticket string, h heldState) {
	delete(rc.states, ticket)
	rc.bytes -= len(h.state)
}

// validTicket accepts the platform's tickets (26 characters of base32) and
// anything of the same kind up to 64 characters, so a longer format does
// not break old servers.
func validTicket(t string) bool {
	if t == "" || len(t) > 64 {
		return false
	}
	for _, c := range t {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
