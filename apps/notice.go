package apps

import "time"

// Notice tells a revision's replicas what their revision is doing: sent to
// each replica's drain_hook when the revision starts draining or is
// re-activated, and streamed to replicas that follow their revision's
// notices (sdk/PROTOCOL.md §3).
type Notice struct {
	// State is the revision's state: draining or active in the hook's
	// notices; the stream says any state (starting, retired…).
	State          RevisionState `json:"state"`
	Tenant         string        `json:"tenant"`
	App            string        `json:"app"`
	Revision       string        `json:"revision"`
	ActiveRevision string        `json:"active_revision,omitempty"`
	Reason         string        `json:"reason,omitempty"`
	// Deadline is when a draining revision is retired whatever its sessions
	// (its app's drain_timeout); nil when it drains until empty.
	Deadline *time.Time `json:"deadline"`
	// SentAt is when the revision entered this state (the change, not the
	// delivery: a notice that arrives late, by the hook or the stream, is
	// told apart from a newer one by it).
	SentAt time.Time `json:"sent_at"`
}

// NoticeFor is the notice of rev, given its app and the app's active
// revision ("" if none); now stamps a state whose start is not recorded.
func NoticeFor(app App, rev Revision, active string, now time.Time) Notice {
	at := now
	switch {
	case rev.State == Draining && rev.DrainingAt != nil:
		at = *rev.DrainingAt
	case rev.State == Active && rev.ActivatedAt != nil:
		at = *rev.ActivatedAt
	case rev.State == Starting && rev.StartedAt != nil:
		at = *rev.StartedAt
	case rev.State.Terminal() && rev.FinishedAt != nil:
		at = *rev.FinishedAt
	}
	n := Notice{State: rev.State, Tenant: rev.Tenant, App: rev.App, Revision: rev.ID, ActiveRevision: active,
		Reason: rev.Reason, SentAt: at.UTC()}
	if rev.State == Draining && rev.DrainingAt != nil && app.DrainTimeout > 0 {
		d := rev.DrainingAt.Add(app.DrainTimeout.D()).UTC()
		n.Deadline = &d
	}
	if rev.State == Active && n.Reason == "" {
		n.Reason = "active"
	}
	return n
}

// Notable reports whether a change of a revision's state from prev to next
// is told to its replicas' drain_hook: it starts draining, or a draining
// revision is re-activated.
func Notable(prev, next RevisionState) bool {
	return next == Draining && prev != Draining || prev == Draining && next == Active
}
