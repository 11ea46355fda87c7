package deployer

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/discovery-platform/discovery/apps"
)

// syncer is the state of one Sync call.
type syncer struct {
	r *Reconciler
	// st is the store, noting whether this pass wrote.
	st   *writeTracker
	ctx  context.Context
	snap apps.Snapshot
	// latest is the newest mod revision among the app's records.
	latest   int64
	now      time.Time
	observed map[string]Observed
	// live holds, per revision, the replica records still meant to run.
	live map[string][]apps.Replica
	// keep is how many terminal revisions the app keeps (the tenant's quota).
	keep int
}

func (s *syncer) run() (bool, error) {
	if err := s.syncReplicaRecords(); err != nil {
		return false, err
	}
	s.r.metrics.observe(s.snap, s.r.sessions)
	moved, err := s.transitions()
	if err != nil || moved {
		// A transition changes the picture; the watch brings us back at once.
		return true, err
	}
	if err := s.scale(); err != nil {
		return false, err
	}
	done, err := s.finishDeletion()
	if err != nil || done {
		return false, err
	}
	if err := s.trimHistory(); err != nil {
		return false, err
	}
	return s.transitional(), nil
}

// syncReplicaRecords brings replica records in line with what the runtime
// observes: new states and addresses, crashes, finished stops, and replicas
// the runtime runs that etcd has no record of.
func (s *syncer) syncReplicaRecords() error {
	s.live = map[string][]apps.Replica{}
	recorded := map[string]bool{}
	for _, rec := range s.snap.Replicas {
		recorded[rec.ID] = true
		rev, _ := s.snap.Revision(rec.Revision)
		obs, seen := s.observed[rec.ID]
		switch {
		case !seen && rec.Stop:
			if err := s.st.DeleteReplica(s.ctx, rec, &apps.Event{Type: apps.EventReplicaStopped, Message: "replica " + rec.ID + " stopped"}); err != nil {
				return err
			}
		case !seen && (rev.State == apps.Starting || rev.State == apps.Active) && rec.State == apps.ReplicaStarting:
			// Recorded but never started: the platform died between the record
			// and the start. Start it now (Start is idempotent by id).
			if err := s.start(rev, rec); err != nil {
				return err
			}
			s.live[rec.Revision] = append(s.live[rec.Revision], rec)
		case !seen || obs.State == apps.ReplicaExited:
			if err := s.gone(rev, rec, obs, seen); err != nil {
				return err
			}
		default:
			if rec.Stop && obs.State != apps.ReplicaStopping {
				if err := s.r.rt.Stop(s.ctx, obs.ReplicaID, s.snap.App.ShutdownGrace.D()); err != nil {
					return err
				}
			}
			updated, err := s.updateRecord(rec, obs)
			if err != nil {
				return err
			}
			if !updated.Stop {
				s.live[rec.Revision] = append(s.live[rec.Revision], updated)
			}
		}
	}
	for id, obs := range s.observed {
		if recorded[id] {
			continue
		}
		if err := s.unrecorded(obs); err != nil {
			return err
		}
	}
	return nil
}

// gone handles a recorded replica whose process no longer runs.
func (s *syncer) gone(rev apps.Revision, rec apps.Replica, obs Observed, seen bool) error {
	id := apps.ReplicaID{Tenant: rec.Tenant, App: rec.App, Revision: rec.Revision, Replica: rec.ID}
	ev := &apps.Event{Type: apps.EventReplicaStopped, Message: "replica " + rec.ID + " stopped"}
	if !rec.Stop {
		why := obs.Exit
		if !seen {
			why = "vanished from the runtime"
		}
		msg := fmt.Sprintf("replica %s exited unexpectedly (%s)", rec.ID, why)
		tail, err := s.r.rt.Logs(s.ctx, id, apps.MaxLastOutput)
		if err != nil {
			tail = nil
		}
		if len(tail) > 0 {
			msg += "; last output: " + string(tail[max(0, len(tail)-400):])
		}
		ev = &apps.Event{Type: apps.EventReplicaCrashed, Message: msg}
		if rev.ID != "" && !rev.State.Terminal() {
			rev.NoteCrash(string(tail))
			if _, err := s.st.SaveRevisionStatus(s.ctx, rev); err != nil {
				return err
			}
		}
		s.r.log.Warn("replica crashed", "tenant", rec.Tenant, "app", rec.App, "revision", rec.Revision, "replica", rec.ID, "exit", why)
		if err := s.voidTickets(id); err != nil {
			return err
		}
	}
	if seen {
		if err := s.r.rt.Remove(s.ctx, id); err != nil {
			return err
		}
	}
	return s.st.DeleteReplica(s.ctx, rec, ev)
}

// voidTickets voids the tickets of players handed off to a replica that
// crashed before they arrived, and says in the activity log how many could
// not arrive: their clients fall back to get-endpoint (sdk/PROTOCOL.md §4).
// Voided before the replica's record goes, so a pass retried after an
// error still finds them, and counts none twice.
func (s *syncer) voidTickets(target apps.ReplicaID) error {
	voided, err := s.st.VoidTicketsTo(s.ctx, target)
	if err != nil {
		return err
	}
	from := map[string]int{}
	for _, t := range voided {
		from[t.FromRevision]++
	}
	for _, rev := range slices.Sorted(maps.Keys(from)) {
		n := from[rev]
		err := s.st.AppendEvent(s.ctx, apps.Event{Time: s.now, Type: apps.EventHandoff, Tenant: target.Tenant, App: target.App, Revision: rev,
			Message: fmt.Sprintf("handoff %s -> %s: 0 players moved, %d could not be: replica %s exited before they arrived (they reconnect through get-endpoint)",
				rev, target.Revision, n, target.Replica),
			Handoff: &apps.HandoffCount{To: target.Revision, Failed: n}})
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *syncer) updateRecord(rec apps.Replica, obs Observed) (apps.Replica, error) {
	if rec.State == obs.State && rec.Address == obs.Address {
		return rec, nil
	}
	var ev *apps.Event
	if obs.State == apps.ReplicaReady && rec.State != apps.ReplicaReady {
		ev = &apps.Event{Type: apps.EventReplicaReady, Message: fmt.Sprintf("replica %s ready at %s", rec.ID, obs.Address)}
	}
	rec.State, rec.Address = obs.State, obs.Address
	return s.st.PutReplica(s.ctx, rec, ev)
}

// unrecorded handles a replica the runtime runs without a record in etcd (a
// restore from an older backup, or records lost by hand): adopt it when its
// revision still serves, else stop it.
func (s *syncer) unrecorded(obs Observed) error {
	rev, ok := s.snap.Revision(obs.Revision)
	if obs.State == apps.ReplicaExited {
		return s.r.rt.Remove(s.ctx, obs.ReplicaID)
	}
	if ok && !s.snap.App.Deleting && (rev.State == apps.Starting || rev.State.Serving()) {
		rec := apps.Replica{ID: obs.Replica, Tenant: obs.Tenant, App: obs.App, Revision: obs.Revision,
			State: obs.State, Address: obs.Address, CreatedAt: s.now}
		rec, err := s.st.PutReplica(s.ctx, rec, &apps.Event{Type: apps.EventReplicaAdopted, Message: "replica " + obs.Replica + " adopted: it ran without a record"})
		if err == nil {
			s.live[rec.Revision] = append(s.live[rec.Revision], rec)
		}
		return err
	}
	if obs.State == apps.ReplicaStopping {
		return nil
	}
	s.r.log.Warn("stopping a replica with no record and no serving revision", "tenant", obs.Tenant, "app", obs.App, "revision", obs.Revision, "replica", obs.Replica)
	return s.r.rt.Stop(s.ctx, obs.ReplicaID, s.snap.App.ShutdownGrace.D())
}

// transitions applies the lifecycle rule to every revision, newest first, and
// writes the first change it finds. It reports whether it wrote one.
func (s *syncer) transitions() (bool, error) {
	var activeGen int64
	active, hasActive := s.snap.Active()
	if hasActive {
		activeGen = active.Generation
	}
	for _, rev := range s.snap.Revisions {
		obs := s.observation(rev, activeGen)
		d := apps.Next(s.snap.App, rev, obs, s.now)
		if !d.Changed(rev) {
			continue
		}
		changes := []apps.Change{{Rev: rev, To: d.To, Reason: d.Reason}}
		if d.To == apps.Active && hasActive && active.ID != rev.ID {
			changes = append(changes, apps.Change{Rev: active, To: apps.Draining, Reason: "superseded by " + rev.ID})
		}
		if _, err := s.st.Transition(s.ctx, changes...); err != nil {
			return false, err
		}
		s.r.metrics.transition(rev, d.To)
		s.r.log.Info("revision transition", "tenant", rev.Tenant, "app", rev.App, "revision", rev.ID, "from", rev.State, "to", d.To, "reason", d.Reason)
		return true, nil
	}
	return false, nil
}

func (s *syncer) observation(rev apps.Revision, activeGen int64) apps.Observation {
	obs := apps.Observation{
		Desired:          s.desired(rev),
		ActiveGeneration: activeGen,
		Deleting:         s.snap.App.Deleting,
		DrainFirst:       s.snap.App.DrainFirst,
		Sessions:         s.r.sessions.Revision(rev.Tenant, rev.App, rev.ID),
	}
	for _, rec := range s.live[rev.ID] {
		obs.Live++
		if rec.State == apps.ReplicaReady {
			obs.Ready++
		}
	}
	return obs
}

// desired is how many replicas a revision should run in its current state.
func (s *syncer) desired(rev apps.Revision) int {
	switch rev.State {
	case apps.Starting:
		if s.snap.App.Autoscaled() {
			return max(s.snap.App.MinReplicas, 1)
		}
		return max(s.snap.App.Replicas, 1)
	case apps.Active:
		return s.snap.App.Replicas
	case apps.Draining:
		return len(s.live[rev.ID])
	}
	return 0
}

// finishDeletion removes a deleted app once every revision is terminal and no
// replica record is left.
func (s *syncer) finishDeletion() (bool, error) {
	if !s.snap.App.Deleting || len(s.snap.Replicas) > 0 || len(s.observed) > 0 {
		return false, nil
	}
	for _, rev := range s.snap.Revisions {
		if !rev.State.Terminal() {
			return false, nil
		}
	}
	if err := s.st.DeleteAppData(s.ctx, s.snap); err != nil {
		return false, err
	}
	s.r.log.Info("app deleted", "tenant", s.snap.App.Tenant, "app", s.snap.App.Name)
	s.r.metrics.forget(s.snap.App)
	return true, nil
}

// trimHistory keeps the newest KeepRevisions terminal revisions with no
// replica left, and the newest MaxEventsPerApp events.
func (s *syncer) trimHistory() error {
	kept := 0
	for _, rev := range s.snap.Revisions {
		if !rev.State.Terminal() || s.hasRecords(rev.ID) {
			continue
		}
		kept++
		limit := s.r.cfg.KeepRevisions
		if s.keep > 0 {
			limit = s.keep
		}
		if kept > limit {
			if err := s.st.DeleteRevision(s.ctx, rev); err != nil {
				return err
			}
		}
	}
	ref := apps.Ref{Tenant: s.snap.App.Tenant, App: s.snap.App.Name}
	if !s.r.trimDue(ref, s.latest) {
		return nil
	}
	if err := s.st.TrimEvents(s.ctx, ref.Tenant, ref.App); err != nil {
		return err
	}
	s.r.trimDone(ref, s.latest)
	return nil
}

func (s *syncer) hasRecords(rev string) bool {
	for _, rec := range s.snap.Replicas {
		if rec.Revision == rev {
			return true
		}
	}
	return false
}

// transitional reports whether the app waits on a timer or a process: a
// revision starting or draining, or a replica not yet settled.
func (s *syncer) transitional() bool {
	if s.snap.App.Autoscaled() {
		return true // scale-down waits on idle timers
	}
	for _, rev := range s.snap.Revisions {
		if rev.State == apps.Pending || rev.State == apps.Starting || rev.State == apps.Draining {
			return true
		}
	}
	for _, rec := range s.snap.Replicas {
		if rec.Stop || rec.State != apps.ReplicaReady {
			return true
		}
	}
	return s.snap.App.Deleting
}
