package apps

import (
	"fmt"
	"time"
)

// MaxStartCrashes is how many replica exits a starting revision survives before
// it is marked failed: a command that cannot start should fail fast, not loop.
const MaxStartCrashes = 3

// edges is every legal state change. Anything else is ErrIllegalState.
var edges = map[RevisionState][]RevisionState{
	Pending:  {Starting, Retired},
	Starting: {Active, Failed, Retired},
	Active:   {Draining, Retired},
	Draining: {Active, Retired},
	Failed:   {},
	Retired:  {},
}

// CanTransition reports whether a revision may move from one state to another.
func CanTransition(from, to RevisionState) bool {
	for _, s := range edges[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Sessions is what the platform knows of a revision's sessions: open
// connections, reservations and app-held leases, summed over every gateway.
type Sessions struct {
	// Known is false until some source reports for the revision; an unknown count
	// never retires anything.
	Known bool
	// Count is what keeps a revision alive: Connections + Reservations + Leases.
	Count int
	// Connections are open sockets, Reservations get-endpoint answers no
	// socket has used yet, Leases app-held leases (over every instance).
	Connections, Reservations, Leases int
	// EmptySince is when the count last dropped to zero; zero if it never had one.
	EmptySince time.Time
}

// Observation is what the reconciler saw of one revision and its app.
type Observation struct {
	// Desired is how many replicas the revision should run in its state.
	Desired int
	// Ready counts replicas passing their health check; Live counts replicas whose
	// process still exists (ready or not).
	Ready, Live int
	// ActiveGeneration is the generation of the app's active revision, 0 if none.
	ActiveGeneration int64
	// Deleting is true when the app is being deleted; DrainFirst when its
	// revisions drain before they retire (a delete with drain).
	Deleting, DrainFirst bool
	Sessions             Sessions
}

// Decision is the outcome of Next: the state to move to (equal to the current
// one when nothing changes) and why.
type Decision struct {
	To     RevisionState
	Reason string
}

// Changed reports whether the decision moves the revision.
func (d Decision) Changed(r Revision) bool { return d.To != r.State }

// Next is the lifecycle rule: a pure function of the app, the revision, what was
// observed and the time. The reconciler applies its decision with a
// compare-and-swap and an event; it never moves a revision any other way.
func Next(app App, rev Revision, obs Observation, now time.Time) Decision {
	stay := Decision{To: rev.State}
	if obs.Deleting && !rev.State.Terminal() {
		switch {
		case !obs.DrainFirst:
			return Decision{Retired, "app deleted"}
		case rev.State == Active:
			return Decision{Draining, "app deleted once its players leave"}
		case rev.State == Draining:
			return nextDraining(app, rev, obs, now)
		}
		return Decision{Retired, "app deleted"}
	}
	switch rev.State {
	case Pending:
		return Decision{Starting, "deploying"}
	case Starting:
		return nextStarting(app, rev, obs, now)
	case Draining:
		return nextDraining(app, rev, obs, now)
	}
	return stay
}

func nextStarting(app App, rev Revision, obs Observation, now time.Time) Decision {
	if obs.ActiveGeneration > rev.Generation {
		return Decision{Retired, "superseded: a newer revision became active first"}
	}
	want := max(obs.Desired, 1)
	if obs.Ready >= want {
		return Decision{Active, fmt.Sprintf("%d/%d replicas healthy", obs.Ready, want)}
	}
	if rev.Crashes >= MaxStartCrashes {
		return Decision{Failed, fmt.Sprintf("replicas exited %d times before becoming healthy", rev.Crashes)}
	}
	if rev.StartedAt != nil && app.StartTimeout > 0 && now.Sub(*rev.StartedAt) >= app.StartTimeout.D() {
		return Decision{Failed, fmt.Sprintf("not healthy within start_timeout %s (%d/%d ready)", app.StartTimeout, obs.Ready, want)}
	}
	return Decision{To: Starting}
}

func nextDraining(app App, rev Revision, obs Observation, now time.Time) Decision {
	since := now
	if rev.DrainingAt != nil {
		since = *rev.DrainingAt
	}
	if app.DrainTimeout > 0 && now.Sub(since) >= app.DrainTimeout.D() {
		return Decision{Retired, fmt.Sprintf("drain_timeout %s reached with %d sessions", app.DrainTimeout, obs.Sessions.Count)}
	}
	if obs.Live == 0 {
		return Decision{Retired, "no replica left"}
	}
	s := obs.Sessions
	if s.Known && s.Count == 0 {
		empty := since
		if s.EmptySince.After(empty) {
			empty = s.EmptySince
		}
		if now.Sub(empty) >= app.ReconnectGrace.D() {
			return Decision{Retired, fmt.Sprintf("empty for reconnect_grace %s", app.ReconnectGrace)}
		}
	}
	return Decision{To: Draining}
}

// CheckActivate tells whether an operator may make a revision active by hand
// (instant rollback): only a draining revision, whose replicas still run.
func CheckActivate(rev Revision) error {
	switch rev.State {
	case Active:
		return nil
	case Draining:
		return nil
	}
	return fmt.Errorf("%w: revision %s is %s; only a draining revision (still running) can be re-activated", ErrIllegalState, rev.ID, rev.State)
}

// CheckRetire tells whether an operator may retire a revision by hand. The
// active revision is refused: the app would be left with nothing to hand out.
func CheckRetire(rev Revision) error {
	switch rev.State {
	case Active:
		return fmt.Errorf("%w: revision %s is active; activate another revision or delete the app", ErrIllegalState, rev.ID)
	case Retired:
		return nil
	}
	if !CanTransition(rev.State, Retired) && rev.State != Failed {
		return fmt.Errorf("%w: revision %s is %s and cannot be retired", ErrIllegalState, rev.ID, rev.State)
	}
	return nil
}
