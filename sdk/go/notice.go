package discovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// The states a Notice tells.
const (
	// StateDraining: a newer revision is active (or this one was rolled
	// back from). New players go to ActiveRevision; this revision keeps
	// its sessions until it is empty or its Deadline.
	StateDraining = "draining"
	// StateActive: this revision is active again (a rollback to it).
	StateActive = "active"
)

// Notice tells a replica that its revision drains or is active again
// (sdk/PROTOCOL.md §3). The drain hook and the notice stream carry the same
// JSON.
type Notice struct {
	// State is StateDraining or StateActive.
	State    string `json:"state"`
	Tenant   string `json:"tenant"`
	App      string `json:"app"`
	Revision string `json:"revision"`
	// ActiveRevision is the revision new players now get.
	ActiveRevision string `json:"active_revision"`
	// Reason says why, e.g. "superseded by 5be2a1f0" or "re-activated".
	Reason string `json:"reason,omitempty"`
	// Deadline is when the revision is retired whatever its sessions; zero
	// when it drains until it is empty.
	Deadline time.Time `json:"deadline,omitzero"`
	// SentAt is when the platform told it.
	SentAt time.Time `json:"sent_at,omitzero"`
}

// Draining reports whether the notice says the revision drains.
func (n Notice) Draining() bool { return n.State == StateDraining }

// errNotMine: a notice about another revision (or of an unknown state).
var errNotMine = errors.New("discovery: notice not for this replica")

// check tells why n is not a notice for r, if it is not.
func (r *Replica) check(n Notice) error {
	if n.State != StateDraining && n.State != StateActive {
		return fmt.Errorf("%w: state %q, want %q or %q", errNotMine, n.State, StateDraining, StateActive)
	}
	if n.Tenant != r.Tenant || n.App != r.App || n.Revision != r.Revision {
		return fmt.Errorf("%w: it is about %s/%s revision %s, this replica runs %s/%s revision %s",
			errNotMine, n.Tenant, n.App, n.Revision, r.Tenant, r.App, r.Revision)
	}
	return nil
}

// dispatcher delivers each new notice once, whichever way it came.
//
// A notice is new when its (state, active revision) differs from the last
// one delivered, and it is not older than that one (a stream that
// reconnects repeats the current state; a hook call retried after a
// re-activation must not undo it). Before any notice, the revision counts
// as active and serving itself, so a stream's first "active" is not news.
type dispatcher struct {
	deliver sync.Mutex // held while one notice is checked and delivered, so deliveries keep their order
	last    Notice
	started bool

	mu sync.Mutex // guards ch and fn
	ch chan Notice
	fn func(Notice)
}

func (d *dispatcher) channel() chan Notice {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ch == nil {
		d.ch = make(chan Notice, 1)
	}
	return d.ch
}

// Notices returns the channel on which each new notice is delivered. It
// holds one notice: an unread notice is replaced by a newer one, so a slow
// reader always finds the latest state and never holds the platform up.
func (r *Replica) Notices() <-chan Notice {
	return r.notices.channel()
}

// OnNotice sets a function called with each new notice, one at a time and
// in order, before the drain hook answers (keep it short: the platform
// waits 2 s) or before the stream is read further. nil removes it.
func (r *Replica) OnNotice(fn func(Notice)) {
	r.notices.mu.Lock()
	r.notices.fn = fn
	r.notices.mu.Unlock()
}

// offer delivers n if it is news; it reports whether it was.
func (r *Replica) offer(n Notice) bool {
	d := &r.notices
	d.deliver.Lock()
	defer d.deliver.Unlock()
	last := d.last
	if !d.started {
		last = Notice{State: StateActive, ActiveRevision: r.Revision}
	}
	if n.State == last.State && n.ActiveRevision == last.ActiveRevision {
		return false
	}
	if d.started && !n.SentAt.IsZero() && !last.SentAt.IsZero() && n.SentAt.Before(last.SentAt) {
		return false // older than what was delivered: a late retry
	}
	d.last, d.started = n, true

	ch := d.channel()
	select {
	case <-ch: // replace the unread one
	default:
	}
	ch <- n // cannot block: only offer sends, under d.deliver, and ch was just emptied
	d.mu.Lock()
	fn := d.fn
	d.mu.Unlock()
	if fn != nil {
		fn(n)
	}
	return true
}

// maxNoticeBytes bounds a notice's JSON.
const maxNoticeBytes = 64 << 10

// DrainHook returns the handler to mount at the app's drain_hook path (a
// POST from the platform, sdk/PROTOCOL.md §3a). It answers 400 to a body
// that is not a notice for this replica's tenant, app and revision (or of
// a state other than draining and active), 204 otherwise, once the notice
// is delivered (or found to repeat one already delivered).
func (r *Replica) DrainHook() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST a notice", http.StatusMethodNotAllowed)
			return
		}
		var n Notice
		dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, maxNoticeBytes))
		if err := dec.Decode(&n); err != nil {
			http.Error(w, "not a notice: "+err.Error(), http.StatusBadRequest)
			return
		}
		if _, err := dec.Token(); err != io.EOF {
			http.Error(w, "not a notice: more than one JSON value", http.StatusBadRequest)
			return
		}
		if err := r.check(n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.offer(n)
		w.WriteHeader(http.StatusNoContent)
	})
}
