package endpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/discovery-platform/discovery/apps"
)

// Handoff errors, beside the apps ones (not found, conflict, invalid).
var (
	// ErrStateTooLarge: a state over apps.MaxHandoffState (413).
	ErrStateTooLarge = errors.New("endpoint: handoff state too large")
	// ErrTargetRefused: the target replica did not take the state (502).
	ErrTargetRefused = errors.New("endpoint: the target replica did not take the handoff")
)

// HandoffRequest is a draining replica's request to move one player.
type HandoffRequest struct {
	Tenant, App string
	// Revision is the caller's (draining) revision; FromReplica, if set,
	// names the caller among its replicas.
	Revision, FromReplica string
	State                 []byte
}

// Moved is a handoff's answer: where the player goes and the ticket it
// presents there.
type Moved struct {
	Ticket    string `json:"ticket"`
	Socket    string `json:"socket"`
	Revision  string `json:"revision"`
	Replica   string `json:"replica"`
	ExpiresIn int    `json:"expires_in"`
}

// TicketIssuer stores handoff tickets (apps.Store).
type TicketIssuer interface {
	IssueTicket(ctx context.Context, t apps.Ticket) (apps.Ticket, error)
	VoidTicket(ctx context.Context, id string) error
}

// Handoffs moves players from a draining revision to the active one
// (sdk/PROTOCOL.md §4): it picks a target as get-endpoint does, issues a
// ticket, forwards the state straight to the target (never storing it) and
// answers the ticket with the target's socket URL.
type Handoffs struct {
	Alloc   *Allocator
	Tickets TicketIssuer
	// Client forwards states to targets (default: 5 s timeout).
	Client *http.Client
	// Events, if set, gets a line in the app's activity log every few
	// seconds while handoffs happen (Run writes them): how many players
	// moved from which revision to which, and how many could not be.
	Events interface {
		AppendEvent(ctx context.Context, e apps.Event) error
	}

	mu     sync.Mutex
	counts map[handoffKey]*handoffCount
}

type handoffKey struct {
	ref      apps.Ref
	from, to string
}

type handoffCount struct{ moved, failed int }

// count records one handoff's outcome for the activity log.
func (h *Handoffs) count(ref apps.Ref, from, to string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counts == nil {
		h.counts = map[handoffKey]*handoffCount{}
	}
	k := handoffKey{ref, from, to}
	c := h.counts[k]
	if c == nil {
		c = &handoffCount{}
		h.counts[k] = c
	}
	if ok {
		c.moved++
	} else {
		c.failed++
	}
}

// Run writes the counts to the activity log every interval until ctx ends
// (then once more).
func (h *Handoffs) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			h.flush(fctx)
			cancel()
			return
		case <-t.C:
			h.flush(ctx)
		}
	}
}

func (h *Handoffs) flush(ctx context.Context) {
	h.mu.Lock()
	counts := h.counts
	h.counts = nil
	h.mu.Unlock()
	if h.Events == nil {
		return
	}
	for k, c := range counts {
		to := k.to
		if to == "" {
			to = "the active revision"
		}
		msg := fmt.Sprintf("handoff %s -> %s: %d players moved", k.from, to, c.moved)
		if c.failed > 0 {
			msg += fmt.Sprintf(", %d could not be (they reconnect through get-endpoint)", c.failed)
		}
		_ = h.Events.AppendEvent(ctx, apps.Event{Time: time.Now(), Type: apps.EventHandoff, Tenant: k.ref.Tenant, App: k.ref.App, Revision: k.from, Message: msg,
			Handoff: &apps.HandoffCount{To: k.to, Moved: c.moved, Failed: c.failed}})
	}
}

// Handoff moves one player.
func (h *Handoffs) Handoff(ctx context.Context, req HandoffRequest) (Moved, error) {
	if len(req.State) > apps.MaxHandoffState {
		return Moved{}, fmt.Errorf("%w: %d bytes, at most %d", ErrStateTooLarge, len(req.State), apps.MaxHandoffState)
	}
	ar, ok := h.Alloc.routes.App(req.Tenant, req.App)
	if !ok || ar.App.Deleting {
		return Moved{}, fmt.Errorf("app %s/%s: %w", req.Tenant, req.App, apps.ErrNotFound)
	}
	if ar.App.HandoffPath == "" {
		return Moved{}, fmt.Errorf("%w: app %s/%s sets no handoff_path: its replicas cannot receive players", apps.ErrConflict, req.Tenant, req.App)
	}
	rev, ok := ar.Revisions[req.Revision]
	if !ok {
		return Moved{}, fmt.Errorf("revision %s of %s/%s: %w", req.Revision, req.Tenant, req.App, apps.ErrNotFound)
	}
	if rev.State != apps.Draining {
		return Moved{}, fmt.Errorf("%w: revision %s is %s; only a draining revision hands players off", apps.ErrConflict, req.Revision, rev.State)
	}
	if ar.Active == "" {
		return Moved{}, fmt.Errorf("%w: app %s/%s has no active revision to move players to", apps.ErrConflict, req.Tenant, req.App)
	}
	if req.FromReplica != "" {
		if _, ok := h.Alloc.routes.Lookup(req.Tenant, req.App, req.Revision, req.FromReplica); !ok {
			return Moved{}, fmt.Errorf("%w: replica %s is not one of revision %s", apps.ErrInvalid, req.FromReplica, req.Revision)
		}
	}
	ref := apps.Ref{Tenant: req.Tenant, App: req.App}
	// A normal reservation on a replica of the active revision.
	ep, err := h.Alloc.Get(ctx, "", req.Tenant, req.App)
	if err != nil {
		h.count(ref, req.Revision, "", false)
		return Moved{}, err
	}
	target, ok := h.Alloc.routes.Lookup(ep.Tenant, ep.App, ep.Revision, ep.Replica)
	if !ok {
		return Moved{}, fmt.Errorf("target replica %s: %w", ep.Replica, ErrNoCapacity)
	}
	t, err := h.Tickets.IssueTicket(ctx, apps.Ticket{Tenant: ep.Tenant, App: ep.App, Revision: ep.Revision, Replica: ep.Replica,
		FromRevision: req.Revision, FromReplica: req.FromReplica})
	if err != nil {
		return Moved{}, err
	}
	if err := h.forward(ctx, target, ar.App.HandoffPath, t, req.State); err != nil {
		vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = h.Tickets.VoidTicket(vctx, t.ID)
		cancel()
		h.count(ref, req.Revision, ep.Revision, false)
		return Moved{}, err
	}
	h.count(ref, req.Revision, ep.Revision, true)
	return Moved{Ticket: t.ID, Socket: ep.Socket + "?" + TicketParam + "=" + t.ID, Revision: ep.Revision, Replica: ep.Replica,
		ExpiresIn: int(apps.TicketTTL / time.Second)}, nil
}

// forward POSTs the state to the target replica under its ticket.
func (h *Handoffs) forward(ctx context.Context, target Route, path string, t apps.Ticket, state []byte) error {
	client := h.Client
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+target.Address+path, bytes.NewReader(state))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrTargetRefused, err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(TicketHeader, t.ID)
	req.Header.Set("X-Discovery-From-Revision", t.FromRevision)
	if t.FromReplica != "" {
		req.Header.Set("X-Discovery-From-Replica", t.FromReplica)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: replica %s: %v", ErrTargetRefused, target.Replica, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w: replica %s answered %s", ErrTargetRefused, target.Replica, resp.Status)
	}
	return nil
}
