package apps

import "time"

// EventType names a line of an app's activity log.
type EventType string

const (
	EventAppCreated      EventType = "app_created"
	EventAppUpdated      EventType = "app_updated"
	EventAppDeleting     EventType = "app_deleting"
	EventDeployed        EventType = "deployed"
	EventTransition      EventType = "transition"
	EventReplicaStarted  EventType = "replica_started"
	EventReplicaReady    EventType = "replica_ready"
	EventReplicaCrashed  EventType = "replica_crashed"
	EventReplicaStopping EventType = "replica_stopping"
	EventReplicaStopped  EventType = "replica_stopped"
	EventReplicaAdopted  EventType = "replica_adopted"
	EventCapped          EventType = "capped"
	EventError           EventType = "error"
	// EventNotice: a revision's replicas were told it drains (or is
	// re-activated); EventHandoff: players were handed off between revisions.
	EventNotice  EventType = "notice"
	EventHandoff EventType = "handoff"
	// The platform's own incidents, told to every app once they are over
	// (during them nothing could be written): its store was unreachable, or
	// full (etcd's NOSPACE alarm).
	EventEtcdOutage EventType = "etcd_outage"
	EventStoreFull  EventType = "store_full"
)

// EventTypes are every event type, in the order above.
var EventTypes = []EventType{EventAppCreated, EventAppUpdated, EventAppDeleting, EventDeployed, EventTransition,
	EventReplicaStarted, EventReplicaReady, EventReplicaCrashed, EventReplicaStopping, EventReplicaStopped,
	EventReplicaAdopted, EventCapped, EventError, EventNotice, EventHandoff, EventEtcdOutage, EventStoreFull}

// EventFilter selects events by actor and type; a zero field selects all.
type EventFilter struct {
	Actor string
	Type  EventType
}

// Match says whether e passes f.
func (f EventFilter) Match(e Event) bool {
	return (f.Actor == "" || e.Actor == f.Actor) && (f.Type == "" || e.Type == f.Type)
}

// Keep returns the events of evs that pass f, the newest limit of them.
func (f EventFilter) Keep(evs []Event, limit int) []Event {
	out := evs[:0:0]
	for _, e := range evs {
		if f.Match(e) {
			out = append(out, e)
		}
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}

// Event is one line of an app's activity log. Events are kept in etcd, at most
// MaxEventsPerApp per app; the oldest go first.
type Event struct {
	// ID sorts events in time order (it is the key suffix in etcd).
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Type     EventType `json:"type"`
	Tenant   string    `json:"tenant"`
	App      string    `json:"app"`
	Revision string    `json:"revision,omitempty"`
	Replica  string    `json:"replica,omitempty"`
	// From and To are set on transitions.
	From    RevisionState `json:"from,omitempty"`
	To      RevisionState `json:"to,omitempty"`
	Message string        `json:"message"`
	// Actor is who did it: the subject of the token that asked, or
	// "platform" (ActorPlatform) for what the platform did on its own.
	// Events written before actors were recorded have none.
	Actor string `json:"actor,omitempty"`
	// Changes are what a settings change changed, old -> new.
	Changes []SettingChange `json:"changes,omitempty"`
	// Notice and Handoff carry a notice's or a handoff's figures (the
	// message says them in words).
	Notice  *NoticeCount  `json:"notice,omitempty"`
	Handoff *HandoffCount `json:"handoff,omitempty"`
}

// NoticeCount is a notice event's figures: the replicas of a revision told
// (of how many), at which hook, that it drains or is active again.
type NoticeCount struct {
	State          RevisionState `json:"state"`
	ActiveRevision string        `json:"active_revision,omitempty"`
	Told           int           `json:"told"`
	Replicas       int           `json:"replicas"`
	Hook           string        `json:"hook"`
}

// HandoffCount is a handoff event's figures over a few seconds: players
// moved from the event's revision to To, and those that could not be.
type HandoffCount struct {
	To     string `json:"to,omitempty"`
	Moved  int    `json:"moved"`
	Failed int    `json:"failed"`
}

// SettingChange is one setting an app_updated event changed: its JSON name
// and its values before and after, as JSON text (strings unquoted).
type SettingChange struct {
	Field string `json:"field"`
	Old   string `json:"old"`
	New   string `json:"new"`
}

// MaxEventsPerApp bounds an app's activity log.
const MaxEventsPerApp = 500

// MaxEventMessage bounds one event's message, in bytes (a crash's last output
// is cut to fit): with MaxEventsPerApp it bounds what an app's log stores.
const MaxEventMessage = 512
