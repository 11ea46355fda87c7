// Package deployer turns the desired state kept in etcd into running replicas.
// Its reconciler is a level-triggered control loop (as Kubernetes controllers
// are): for one app at a time it reads what should be, asks the runtime what is,
// acts to converge and records the outcome by compare-and-swap. It is safe to
// run after a crash at any point, and it never stops a replica that still has a
// reason to run.
package deployer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"k8s.io/client-go/util/workqueue"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/tenants"
)

// SessionCounter reports live sessions (connections, reservations and
// app-held leases) per revision and replica. The gateway fills it in; until
// then NoSessions says nothing is known, so nothing retires by emptiness.
type SessionCounter interface {
	Revision(tenant, app, rev string) apps.Sessions
	Replica(tenant, app, rev, replica string) apps.Sessions
}

// NoSessions is the SessionCounter of a platform without a gateway.
type NoSessions struct{}

// Revision reports nothing known.
func (NoSessions) Revision(string, string, string) apps.Sessions { return apps.Sessions{} }

// Replica reports nothing known.
func (NoSessions) Replica(string, string, string, string) apps.Sessions { return apps.Sessions{} }

// Config tunes the reconciler; zero values take defaults.
type Config struct {
	// Resync is how often every app is reconciled even without a change.
	Resync time.Duration
	// Tick is how soon an app in a transitional state is looked at again.
	Tick time.Duration
	// Workers is how many apps are reconciled in parallel.
	Workers int
	// KeepRevisions is how many retired or failed revisions an app keeps.
	KeepRevisions int
	Logger        *slog.Logger
	// Now is the clock (injected in tests).
	Now func() time.Time
	// Quotas caps replicas per tenant and sets how many revisions an app keeps;
	// nil means no limits.
	Quotas QuotaSource
	// ReplicaEnv adds environment to every replica the reconciler starts (the
	// lease capability, the API's address).
	ReplicaEnv func(ReplicaID) map[string]string
}

// QuotaSource gives a tenant's quota (tenants.Store).
type QuotaSource interface {
	Quota(ctx context.Context, tenant string) (tenants.Quota, error)
}

// Reconciler converges apps in etcd with replicas in a Runtime.
type Reconciler struct {
	store    *apps.Store
	rt       Runtime
	sessions SessionCounter
	cfg      Config
	log      *slog.Logger
	queue    workqueue.TypedRateLimitingInterface[apps.Ref]

	// capped remembers when each app last logged a quota cap, so the event is
	// written once a minute, not on every pass.
	cappedMu sync.Mutex
	capped   map[apps.Ref]time.Time
	metrics  metrics
}

// NewReconciler wires a reconciler; sessions may be nil (NoSessions).
func NewReconciler(store *apps.Store, rt Runtime, sessions SessionCounter, cfg Config) *Reconciler {
	if cfg.Resync <= 0 {
		cfg.Resync = 10 * time.Second
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.KeepRevisions <= 0 {
		cfg.KeepRevisions = 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if sessions == nil {
		sessions = NoSessions{}
	}
	return &Reconciler{
		store: store, rt: rt, sessions: sessions, cfg: cfg, log: cfg.Logger, capped: map[apps.Ref]time.Time{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[apps.Ref](50*time.Millisecond, 10*time.Second),
			workqueue.TypedRateLimitingQueueConfig[apps.Ref]{Name: "apps"}),
	}
}

// Run reconciles until ctx ends. It feeds the queue from the etcd watch, the
// runtime's change notifications and a periodic resync.
func (r *Reconciler) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer func() {
		r.queue.ShutDown()
		wg.Wait()
	}()
	watch := r.store.Watch(ctx)
	r.enqueueAll(ctx)
	for i := 0; i < r.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r.processNext(ctx) {
			}
		}()
	}
	resync := time.NewTicker(r.cfg.Resync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ref, ok := <-watch:
			if !ok {
				return nil
			}
			if ref == (apps.Ref{}) {
				r.enqueueAll(ctx)
			} else {
				r.queue.Add(ref)
			}
		case ref := <-r.rt.Changes():
			r.queue.Add(ref)
		case <-resync.C:
			r.enqueueAll(ctx)
		}
	}
}

// Enqueue asks for an app to be reconciled soon (the session table calls it
// when an app's sessions change, so the autoscaler reacts at once).
func (r *Reconciler) Enqueue(ref apps.Ref) { r.queue.Add(ref) }

func (r *Reconciler) enqueueAll(ctx context.Context) {
	refs, err := r.store.ListAllApps(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("resync: cannot list apps", "err", err)
		}
		return
	}
	for _, ref := range refs {
		r.queue.Add(ref)
	}
}

func (r *Reconciler) processNext(ctx context.Context) bool {
	ref, quit := r.queue.Get()
	if quit {
		return false
	}
	defer r.queue.Done(ref)
	again, err := r.Sync(ctx, ref)
	switch {
	case err != nil && ctx.Err() == nil:
		if !errors.Is(err, apps.ErrConflict) {
			r.log.Warn("reconcile failed; will retry", "tenant", ref.Tenant, "app", ref.App, "err", err)
		}
		r.queue.AddRateLimited(ref)
	case err == nil:
		r.queue.Forget(ref)
		if again {
			r.queue.AddAfter(ref, r.cfg.Tick)
		}
	}
	return true
}

// Sync reconciles one app once. It reports whether the app is in a
// transitional state and should be looked at again soon. An error means retry.
func (r *Reconciler) Sync(ctx context.Context, ref apps.Ref) (again bool, err error) {
	snap, err := r.store.Load(ctx, ref.Tenant, ref.App)
	if errors.Is(err, apps.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	observed, err := r.rt.List(ctx, ref.Tenant, ref.App)
	if err != nil {
		return false, fmt.Errorf("observe %s: %w", ref, err)
	}
	s := &syncer{r: r, ctx: ctx, snap: snap, now: r.cfg.Now().UTC(), observed: map[string]Observed{}}
	for _, o := range observed {
		s.observed[o.Replica] = o
	}
	return s.run()
}

// syncer is the state of one Sync call.
type syncer struct {
	r        *Reconciler
	ctx      context.Context
	snap     apps.Snapshot
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
			if err := s.r.store.DeleteReplica(s.ctx, rec, &apps.Event{Type: apps.EventReplicaStopped, Message: "replica " + rec.ID + " stopped"}); err != nil {
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
	id := ReplicaID{Tenant: rec.Tenant, App: rec.App, Revision: rec.Revision, Replica: rec.ID}
	ev := &apps.Event{Type: apps.EventReplicaStopped, Message: "replica " + rec.ID + " stopped"}
	if !rec.Stop {
		why := obs.Exit
		if !seen {
			why = "vanished from the runtime"
		}
		msg := fmt.Sprintf("replica %s exited unexpectedly (%s)", rec.ID, why)
		if tail, err := s.r.rt.Logs(s.ctx, id, 400); err == nil && len(tail) > 0 {
			msg += "; last output: " + string(tail)
		}
		ev = &apps.Event{Type: apps.EventReplicaCrashed, Message: msg}
		if rev.ID != "" && !rev.State.Terminal() {
			rev.Crashes++
			if _, err := s.r.store.SaveRevisionStatus(s.ctx, rev); err != nil {
				return err
			}
		}
		s.r.log.Warn("replica crashed", "tenant", rec.Tenant, "app", rec.App, "revision", rec.Revision, "replica", rec.ID, "exit", why)
	}
	if seen {
		if err := s.r.rt.Remove(s.ctx, id); err != nil {
			return err
		}
	}
	return s.r.store.DeleteReplica(s.ctx, rec, ev)
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
	return s.r.store.PutReplica(s.ctx, rec, ev)
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
		rec, err := s.r.store.PutReplica(s.ctx, rec, &apps.Event{Type: apps.EventReplicaAdopted, Message: "replica " + obs.Replica + " adopted: it ran without a record"})
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
		if _, err := s.r.store.Transition(s.ctx, changes...); err != nil {
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

// scale starts missing replicas of starting and active revisions and stops
// the replicas of revisions that should have none.
func (s *syncer) scale() error {
	allowed, err := s.replicaAllowance()
	if err != nil {
		return err
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
		if missing := want - len(live); missing > allowed {
			s.capped(rev, want, len(live)+allowed)
			want = len(live) + allowed
		}
		allowed -= max(want-len(live), 0)
		for n := len(live); n < want; n++ {
			rec := apps.Replica{ID: apps.NewReplicaID(), Tenant: rev.Tenant, App: rev.App, Revision: rev.ID,
				State: apps.ReplicaStarting, CreatedAt: s.now}
			rec, err := s.r.store.PutReplica(s.ctx, rec, &apps.Event{Type: apps.EventReplicaStarted, Message: "replica " + rec.ID + " starting"})
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

// replicaAllowance is how many more replicas the app's tenant may start.
func (s *syncer) replicaAllowance() (int, error) {
	if s.r.cfg.Quotas == nil {
		return math.MaxInt, nil
	}
	q, err := s.r.cfg.Quotas.Quota(s.ctx, s.snap.App.Tenant)
	if errors.Is(err, tenants.ErrNotFound) {
		return math.MaxInt, nil
	}
	if err != nil {
		return 0, err
	}
	s.keep = q.MaxRevisions
	have, err := s.r.store.CountReplicas(s.ctx, s.snap.App.Tenant)
	if err != nil {
		return 0, err
	}
	return apps.ReplicasAllowed(q, have), nil
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
	_ = s.r.store.AppendEvent(s.ctx, apps.Event{Type: apps.EventCapped, Tenant: rev.Tenant, App: rev.App, Revision: rev.ID,
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
		ReplicaID: ReplicaID{Tenant: rec.Tenant, App: rec.App, Revision: rec.Revision, Replica: rec.ID},
		Image:     rev.Image, Command: rev.Command, Env: rev.Env,
		Port: app.Port, HealthPath: app.HealthPath, ShutdownGrace: app.ShutdownGrace.D(),
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
		// A start that cannot happen (no command, bad binary) counts as a crash,
		// so a starting revision fails after a few tries instead of looping.
		rev.Crashes++
		if _, serr := s.r.store.SaveRevisionStatus(s.ctx, rev); serr != nil {
			return serr
		}
		return s.r.store.DeleteReplica(s.ctx, rec, &apps.Event{Type: apps.EventReplicaCrashed,
			Message: fmt.Sprintf("replica %s could not start: %v", rec.ID, err)})
	}
	return nil
}

// stop records the decision first, then asks the runtime: a control plane that
// dies in between finishes the stop when it comes back.
func (s *syncer) stop(rec apps.Replica) error {
	rec.Stop = true
	if _, err := s.r.store.PutReplica(s.ctx, rec, &apps.Event{Type: apps.EventReplicaStopping,
		Message: fmt.Sprintf("replica %s stopping (shutdown_grace %s)", rec.ID, s.snap.App.ShutdownGrace)}); err != nil {
		return err
	}
	id := ReplicaID{Tenant: rec.Tenant, App: rec.App, Revision: rec.Revision, Replica: rec.ID}
	return s.r.rt.Stop(s.ctx, id, s.snap.App.ShutdownGrace.D())
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
	s.r.log.Info("app deleted", "tenant", s.snap.App.Tenant, "app", s.snap.App.Name)
	return true, s.r.store.DeleteAppData(s.ctx, s.snap.App)
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
			if err := s.r.store.DeleteRevision(s.ctx, rev); err != nil {
				return err
			}
		}
	}
	return s.r.store.TrimEvents(s.ctx, s.snap.App.Tenant, s.snap.App.Name)
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
