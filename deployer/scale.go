package deployer

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/tenants"
)

// scale starts missing replicas of starting and active revisions and stops
// the replicas of revisions that should have none.
func (s *syncer) scale() error {
	q, limited, err := s.quota()
	if err != nil {
		return err
	}
	allowed, counted := math.MaxInt, !limited
	var check apps.QuotaCheck
	if limited {
		check = apps.ReplicaCheck(q)
	}
	for _, rev := range s.snap.Revisions {
		live := s.live[rev.ID]
		want := s.desired(rev)
		var autoRemove []string
		if rev.State == apps.Active && s.snap.App.Autoscaled() {
			dec := s.autoscale(rev, live)
			want, autoRemove = dec.Desired, dec.Remove
			if dec.Capped {
				s.capped(rev, want+1, want)
			}
		}
		if want > len(live) && !counted {
			// Only a pass that would start replicas reads the usage.
			u, err := s.st.Usage(s.ctx, s.snap.App.Tenant)
			if err != nil {
				return err
			}
			allowed, counted = apps.ReplicasAllowed(q, u.Replicas), true
		}
		if missing := want - len(live); missing > allowed {
			s.capped(rev, want, len(live)+allowed)
			want = len(live) + allowed
		}
		allowed -= max(want-len(live), 0)
		for n := len(live); n < want; n++ {
			rec := apps.Replica{ID: apps.NewReplicaID(), Tenant: rev.Tenant, App: rev.App, Revision: rev.ID,
				State: apps.ReplicaStarting, CreatedAt: s.now}
			rec, err := s.st.CreateReplica(s.ctx, rec, &apps.Event{Type: apps.EventReplicaStarted, Message: "replica " + rec.ID + " starting"}, check)
			if errors.Is(err, tenants.ErrQuotaExceeded) {
				// Another app of the tenant took the last places since we
				// counted: the quota holds, whoever asked first.
				s.capped(rev, want, n)
				break
			}
			if err != nil {
				return err
			}
			if err := s.start(rev, rec); err != nil {
				return err
			}
		}
		if len(autoRemove) > 0 {
			for _, rec := range live {
				if slices.Contains(autoRemove, rec.ID) {
					if err := s.stop(rec); err != nil {
						return err
					}
				}
			}
		} else if len(live) > want {
			for _, rec := range pickRemovable(live, len(live)-want, func(rec apps.Replica) int {
				return s.r.sessions.Replica(rec.Tenant, rec.App, rec.Revision, rec.ID).Count
			}, rev.State.Terminal()) {
				if err := s.stop(rec); err != nil {
					return err
				}
			}
		}
		if rev.State == apps.Draining {
			if err := s.stopEmptyDraining(rev, live); err != nil {
				return err
			}
		}
	}
	return nil
}

// stopEmptyDraining stops the replicas of a draining revision that have been
// empty for reconnect_grace, one by one as their players leave, while the
// revision keeps the replicas that still have players. The last replica goes
// with the revision's retirement instead.
func (s *syncer) stopEmptyDraining(rev apps.Revision, live []apps.Replica) error {
	grace := s.snap.App.ReconnectGrace.D()
	left := len(live)
	for _, rec := range live {
		if left <= 1 {
			return nil
		}
		ss := s.r.sessions.Replica(rec.Tenant, rec.App, rec.Revision, rec.ID)
		empty := ss.EmptySince
		if rev.DrainingAt != nil && rev.DrainingAt.After(empty) {
			empty = *rev.DrainingAt
		}
		if ss.Known && ss.Count == 0 && s.now.Sub(empty) >= grace {
			if err := s.stop(rec); err != nil {
				return err
			}
			left--
		}
	}
	return nil
}

// autoscale asks the autoscaler how big the active revision should be, from
// the sessions every gateway reports.
func (s *syncer) autoscale(rev apps.Revision, live []apps.Replica) Scale {
	app := s.snap.App
	loads := make([]ReplicaLoad, 0, len(live))
	for _, rec := range live {
		ss := s.r.sessions.Replica(rec.Tenant, rec.App, rec.Revision, rec.ID)
		empty := ss.EmptySince
		if rec.CreatedAt.After(empty) {
			empty = rec.CreatedAt
		}
		if !ss.Known {
			empty = s.now // nothing known: nothing counts as idle
		}
		loads = append(loads, ReplicaLoad{ID: rec.ID, Ready: rec.State == apps.ReplicaReady, Sessions: ss.Count, EmptySince: empty})
	}
	total := s.r.sessions.Revision(rev.Tenant, rev.App, rev.ID).Count
	dec := Autoscale(Policy{Min: app.MinReplicas, Max: app.MaxReplicas, Target: app.TargetSessions, ScaleDownDelay: app.ScaleDownDelay.D()}, loads, total, s.now)
	s.r.metrics.desired(rev, dec.Desired)
	return dec
}

// quota reads the app's tenant's quota (and with it how many terminal
// revisions the app keeps); limited is false for a tenant without one.
func (s *syncer) quota() (q tenants.Quota, limited bool, err error) {
	if s.r.cfg.Quotas == nil {
		return q, false, nil
	}
	q, err = s.r.cfg.Quotas.Quota(s.ctx, s.snap.App.Tenant)
	if errors.Is(err, tenants.ErrNotFound) {
		return q, false, nil
	}
	if err != nil {
		return q, false, err
	}
	s.keep = q.MaxRevisions
	return q, true, nil
}

// capped logs, at most once a minute per app, that the quota held a revision
// below the replicas it wants.
func (s *syncer) capped(rev apps.Revision, want, got int) {
	ref := apps.Ref{Tenant: rev.Tenant, App: rev.App}
	s.r.cappedMu.Lock()
	last := s.r.capped[ref]
	if s.now.Sub(last) < time.Minute {
		s.r.cappedMu.Unlock()
		return
	}
	s.r.capped[ref] = s.now
	s.r.cappedMu.Unlock()
	_ = s.st.AppendEvent(s.ctx, apps.Event{Type: apps.EventCapped, Tenant: rev.Tenant, App: rev.App, Revision: rev.ID,
		Message: fmt.Sprintf("revision %s wants %d replicas; the tenant's max_replicas quota allows %d", rev.ID, want, got)})
	s.r.log.Warn("replicas capped by quota", "tenant", rev.Tenant, "app", rev.App, "revision", rev.ID, "want", want, "allowed", got)
}

// pickRemovable chooses up to n replicas to stop. Unless force is set (the
// revision is retired), only replicas without sessions are chosen, those not
// ready first: a scale-down never cuts a player.
func pickRemovable(live []apps.Replica, n int, sessions func(apps.Replica) int, force bool) []apps.Replica {
	var out []apps.Replica
	for pass := 0; pass < 2 && len(out) < n; pass++ {
		for _, rec := range live {
			if len(out) == n {
				break
			}
			ready := rec.State == apps.ReplicaReady
			if (pass == 0) == ready {
				continue
			}
			if force || rec.IsDeletable(sessions(rec)) {
				out = append(out, rec)
			}
		}
	}
	return out
}

func (s *syncer) start(rev apps.Revision, rec apps.Replica) error {
	app := s.snap.App
	spec := ReplicaSpec{
		ReplicaID: apps.ReplicaID{Tenant: rec.Tenant, App: rec.App, Revision: rec.Revision, Replica: rec.ID},
		Image:     rev.Image, Command: rev.Command, Env: rev.Env,
		Port: app.Port, HealthPath: app.HealthPath, ShutdownGrace: app.ShutdownGrace.D(),
		Resources: rev.Resources,
	}
	if f := s.r.cfg.ReplicaEnv; f != nil {
		env := make(map[string]string, len(rev.Env)+4)
		for k, v := range rev.Env {
			env[k] = v
		}
		for k, v := range f(spec.ReplicaID) {
			env[k] = v
		}
		spec.Env = env
	}
	if err := s.r.rt.Start(s.ctx, spec); err != nil {
		if errors.Is(err, ErrRuntimeUnavailable) {
			// Nothing is wrong with the revision: keep the record (a later
			// pass starts it again; Start is idempotent) and retry.
			return fmt.Errorf("start replica %s: %w", rec.ID, err)
		}
		// A start that cannot happen (no command, bad binary) counts as a crash,
		// so a starting revision fails after a few tries instead of looping.
		rev.NoteCrash("could not start: " + err.Error())
		if _, serr := s.st.SaveRevisionStatus(s.ctx, rev); serr != nil {
			return serr
		}
		return s.st.DeleteReplica(s.ctx, rec, &apps.Event{Type: apps.EventReplicaCrashed,
			Message: fmt.Sprintf("replica %s could not start: %v", rec.ID, err)})
	}
	return nil
}

// stop records the decision first, then asks the runtime: a control plane that
// dies in between finishes the stop when it comes back.
func (s *syncer) stop(rec apps.Replica) error {
	rec.Stop = true
	if _, err := s.st.PutReplica(s.ctx, rec, &apps.Event{Type: apps.EventReplicaStopping,
		Message: fmt.Sprintf("replica %s stopping (shutdown_grace %s)", rec.ID, s.snap.App.ShutdownGrace)}); err != nil {
		return err
	}
	id := apps.ReplicaID{Tenant: rec.Tenant, App: rec.App, Revision: rec.Revision, Replica: rec.ID}
	return s.r.rt.Stop(s.ctx, id, s.snap.App.ShutdownGrace.D())
}
