package client

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// Event types (Event.Type), as the platform writes them (apps/event.go).
const (
	EventAppCreated      = "app_created"
	EventAppUpdated      = "app_updated"
	EventAppDeleting     = "app_deleting"
	EventDeployed        = "deployed"
	EventTransition      = "transition"
	EventReplicaStarted  = "replica_started"
	EventReplicaReady    = "replica_ready"
	EventReplicaCrashed  = "replica_crashed"
	EventReplicaStopping = "replica_stopping"
	EventReplicaStopped  = "replica_stopped"
	EventReplicaAdopted  = "replica_adopted"
	EventCapped          = "capped"
	EventError           = "error"
	// EventNotice: a revision's replicas were told at the app's drain_hook
	// that it drains (or is re-activated); see Event.Notice.
	EventNotice = "notice"
	// EventHandoff: players were handed off from a draining revision to the
	// active one over a few seconds; see Event.Handoff.
	EventHandoff    = "handoff"
	EventEtcdOutage = "etcd_outage"
	EventStoreFull  = "store_full"
)

// eventSymbols mark each type of event in a listing, so that the lines an
// operator looks for (a crash, a notice, a handoff) stand out.
var eventSymbols = map[string]string{
	EventAppCreated:      "+",
	EventAppUpdated:      "~",
	EventAppDeleting:     "×",
	EventDeployed:        "↑",
	EventTransition:      "→",
	EventReplicaStarted:  "·",
	EventReplicaReady:    "✓",
	EventReplicaCrashed:  "✗",
	EventReplicaStopping: "↓",
	EventReplicaStopped:  "■",
	EventReplicaAdopted:  "↺",
	EventCapped:          "⊘",
	EventError:           "!",
	EventNotice:          "⚑",
	EventHandoff:         "⇄",
	EventEtcdOutage:      "‼",
	EventStoreFull:       "‼",
}

// Symbol is a one-character mark of the event's type ("⚑" a drain notice,
// "⇄" a handoff, "✗" a crash…), "?" for a type this client does not know.
func (e Event) Symbol() string {
	if s, ok := eventSymbols[e.Type]; ok {
		return s
	}
	return "?"
}

// DrainNotice is what a notice event tells: how many of a revision's
// replicas were told, at the app's drain_hook, that it drains or is active
// again.
type DrainNotice struct {
	// Time is when the platform logged it (the notice went out just before).
	Time time.Time
	// Revision is the revision whose replicas were told.
	Revision string
	// State is what they were told: "draining" or "active" (re-activated).
	State string
	// Active is the revision new players go to ("none" when no revision is
	// active).
	Active string
	// Told of Replicas answered the hook (within its retries).
	Told, Replicas int
	// Hook is the path the notice was POSTed to.
	Hook string
}

// HandoffCount is what a handoff event tells: how many players a draining
// revision handed off to the active one over a few seconds.
type HandoffCount struct {
	// Time is when the platform logged the count (it covers the seconds
	// before).
	Time time.Time
	// From is the draining revision; To the revision players went to ("the
	// active revision" when none could be chosen).
	From, To string
	// Moved players got a ticket, their state reached the target replica;
	// FellBack players could not be moved (no room, the target refused):
	// their client reconnects through get-endpoint and starts afresh.
	Moved, FellBack int
}

// The platform records these counts in the event (NoticeFigures,
// HandoffFigures) and in its message (deployer/notify.go and
// endpoint/handoff.go); the patterns read a message without figures back
// (an older platform's).
var (
	noticeMessage  = regexp.MustCompile(`^drain notice \((\w+), new players go to (\S+)\): told (\d+) of (\d+) replicas at (\S+?)(?:; not told: .*)?$`)
	handoffMessage = regexp.MustCompile(`^handoff (\S+) -> (.+?): (\d+) players? moved(?:, (\d+) could not be)?`)
)

// Notice reads a notice event's counts; ok is false for another type of
// event, or a message this client cannot read.
func (e Event) Notice() (n DrainNotice, ok bool) {
	if f := e.NoticeFigures; f != nil && e.Type == EventNotice {
		active := f.ActiveRevision
		if active == "" {
			active = "none"
		}
		return DrainNotice{Time: e.Time, Revision: e.Revision, State: f.State, Active: active, Told: f.Told, Replicas: f.Replicas, Hook: f.Hook}, true
	}
	m := noticeMessage.FindStringSubmatch(e.Message)
	if e.Type != EventNotice || m == nil {
		return DrainNotice{}, false
	}
	return DrainNotice{Time: e.Time, Revision: e.Revision, State: m[1], Active: m[2], Told: atoi(m[3]), Replicas: atoi(m[4]), Hook: m[5]}, true
}

// Handoff reads a handoff event's counts; ok is false for another type of
// event, or a message this client cannot read.
func (e Event) Handoff() (h HandoffCount, ok bool) {
	if f := e.HandoffFigures; f != nil && e.Type == EventHandoff {
		to := f.To
		if to == "" {
			to = "the active revision"
		}
		return HandoffCount{Time: e.Time, From: e.Revision, To: to, Moved: f.Moved, FellBack: f.Failed}, true
	}
	m := handoffMessage.FindStringSubmatch(e.Message)
	if e.Type != EventHandoff || m == nil {
		return HandoffCount{}, false
	}
	return HandoffCount{Time: e.Time, From: m[1], To: m[2], Moved: atoi(m[3]), FellBack: atoi(m[4])}, true
}

func (n DrainNotice) String() string {
	return fmt.Sprintf("drain notice to %s (%s, new players go to %s): told %d of %d replicas at %s", n.Revision, n.State, n.Active, n.Told, n.Replicas, n.Hook)
}

func (h HandoffCount) String() string {
	return fmt.Sprintf("handoff %s -> %s: %s moved, %d fell back to get-endpoint", h.From, h.To, count(h.Moved, "player"), h.FellBack)
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
