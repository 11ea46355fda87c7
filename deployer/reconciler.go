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
	"net/http"
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
	ReplicaEnv func(apps.ReplicaID) map[string]string
}

// QuotaSource gives a tenant's quota (tenants.Store).
type QuotaSource interface {
	Quota(ctx context.Context, tenant string) (tenants.Quota, error)
}

// Reconciler converges apps in etcd with replicas in a Runtime. It reads
// apps from a cache the store's feed keeps (an informer), so a pass over an
// app that did not change costs no etcd round trip; after a pass that wrote,
// it waits until the cache has its own writes (read-your-writes) before the
// app is looked at again.
type Reconciler struct {
	store    Store
	feed     *apps.Feed
	cache    *cache
	notices  *notifier
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

	// trimmed is the newest record revision of each app when its events
	// were last trimmed: an app whose records did not change since wrote no
	// event that needs trimming.
	trimMu  sync.Mutex
	trimmed map[apps.Ref]int64
}

// NewReconciler wires a reconciler; sessions may be nil (NoSessions).
func NewReconciler(store Store, rt Runtime, sessions SessionCounter, cfg Config) *Reconciler {
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
	r := &Reconciler{
		store: store, rt: rt, sessions: sessions, cfg: cfg, log: cfg.Logger, capped: map[apps.Ref]time.Time{},
		trimmed: map[apps.Ref]int64{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[apps.Ref](50*time.Millisecond, 10*time.Second),
			workqueue.TypedRateLimitingQueueConfig[apps.Ref]{Name: "apps"}),
	}
	r.cache = newCache(r.queue.Add, r.enqueueCached)
	r.feed = store.NewFeed(r.cache, cfg.Logger)
	r.notices = &notifier{
		snapshot: func(ref apps.Ref) (apps.Snapshot, bool) { s, _, ok := r.cache.snapshot(ref); return s, ok },
		events:   store, client: &http.Client{}, log: cfg.Logger, now: cfg.Now, sem: make(chan struct{}, 64),
	}
	return r
}

// Run reconciles until ctx ends. It feeds the queue from the store's feed
// (every changed app), the runtime's change notifications and a periodic
// resync of every app from the cache.
func (r *Reconciler) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer func() {
		r.queue.ShutDown()
		wg.Wait()
	}()
	fctx, stopFeed := context.WithCancel(ctx)
	defer func() {
		stopFeed() // also ends the notices in flight
		r.notices.wait()
	}()
	r.cache.onNotable = func(rev apps.Revision) { r.notices.notify(fctx, rev) }
	wg.Go(func() { r.feed.Run(fctx) })
	for !r.cache.synced() {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(10 * time.Millisecond): // poll until the first list of every kind is in
		}
	}
	r.enqueueCached()
	for i := 0; i < r.cfg.Workers; i++ {
		wg.Go(func() {
			for r.processNext(ctx) {
			}
		})
	}
	resync := time.NewTicker(r.cfg.Resync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ref := <-r.rt.Changes():
			r.queue.Add(ref)
		case <-resync.C:
			r.enqueueCached()
		}
	}
}

// Enqueue asks for an app to be reconciled soon (the session table calls it
// when an app's sessions change, so the autoscaler reacts at once).
func (r *Reconciler) Enqueue(ref apps.Ref) { r.queue.Add(ref) }

// enqueueCached queues every app the cache knows.
func (r *Reconciler) enqueueCached() {
	for _, ref := range r.cache.refs() {
		r.queue.Add(ref)
	}
}

func (r *Reconciler) processNext(ctx context.Context) bool {
	ref, quit := r.queue.Get()
	if quit {
		return false
	}
	defer r.queue.Done(ref)
	again, w, err := r.sync(ctx, ref)
	if w.wrote && r.cache.synced() {
		// The next pass over this app must see what this one wrote: wait
		// for the feed to bring the newest write it knows the revision of,
		// or, after a write that told none (a deletion), catch up with etcd.
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var werr error
		if w.unknown {
			werr = r.feed.CatchUp(wctx)
		} else {
			werr = r.feed.WaitFor(wctx, w.rev)
		}
		cancel()
		if werr != nil && err == nil {
			err = werr
		}
	}
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
	again, _, err = r.sync(ctx, ref)
	return again, err
}

// sync is Sync, also reporting what it wrote to the store.
func (r *Reconciler) sync(ctx context.Context, ref apps.Ref) (again bool, w *writeTracker, err error) {
	w = &writeTracker{Store: r.store}
	snap, latest, err := r.snapshot(ctx, ref)
	if errors.Is(err, apps.ErrNotFound) {
		r.forgetTrim(ref)
		return false, w, nil
	}
	if err != nil {
		return false, w, err
	}
	observed, err := r.rt.List(ctx, ref.Tenant, ref.App)
	if err != nil {
		return false, w, fmt.Errorf("observe %s: %w", ref, err)
	}
	s := &syncer{r: r, st: w, ctx: ctx, snap: snap, latest: latest, now: r.cfg.Now().UTC(), observed: map[string]Observed{}}
	for _, o := range observed {
		s.observed[o.Replica] = o
	}
	again, err = s.run()
	PassesTotal.Inc()
	return again, w, err
}

// snapshot reads an app from the cache once it is synced, from the store
// before (a test calling Sync without Run).
func (r *Reconciler) snapshot(ctx context.Context, ref apps.Ref) (apps.Snapshot, int64, error) {
	if r.cache.synced() {
		snap, latest, ok := r.cache.snapshot(ref)
		if !ok {
			return apps.Snapshot{}, 0, fmt.Errorf("app %s: %w", ref, apps.ErrNotFound)
		}
		return snap, latest, nil
	}
	snap, err := r.store.Load(ctx, ref.Tenant, ref.App)
	return snap, snap.ReadAt, err
}

// trimDue reports whether an app's events may need trimming: its records
// changed since the last trim (every event comes with a change, or a capped
// warning at most once a minute).
func (r *Reconciler) trimDue(ref apps.Ref, latest int64) bool {
	r.trimMu.Lock()
	defer r.trimMu.Unlock()
	return r.trimmed[ref] != latest
}

func (r *Reconciler) trimDone(ref apps.Ref, latest int64) {
	r.trimMu.Lock()
	r.trimmed[ref] = latest
	r.trimMu.Unlock()
}

func (r *Reconciler) forgetTrim(ref apps.Ref) {
	r.trimMu.Lock()
	delete(r.trimmed, ref)
	r.trimMu.Unlock()
}

// writeTracker notes what a pass wrote: whether it wrote a record, the
// newest etcd revision it wrote at, and whether a write told no revision.
type writeTracker struct {
	Store
	wrote, unknown bool
	rev            int64
}

func (w *writeTracker) at(rev int64) { w.wrote, w.rev = true, max(w.rev, rev) }
func (w *writeTracker) blind()       { w.wrote, w.unknown = true, true }

func (w *writeTracker) Transition(ctx context.Context, changes ...apps.Change) ([]apps.Revision, error) {
	out, err := w.Store.Transition(ctx, changes...)
	if err == nil && len(out) > 0 {
		w.at(out[0].ModRevision)
	}
	return out, err
}

func (w *writeTracker) SaveRevisionStatus(ctx context.Context, rev apps.Revision) (apps.Revision, error) {
	out, err := w.Store.SaveRevisionStatus(ctx, rev)
	if err == nil {
		w.at(out.ModRevision)
	}
	return out, err
}

func (w *writeTracker) DeleteRevision(ctx context.Context, rev apps.Revision) error {
	w.blind()
	return w.Store.DeleteRevision(ctx, rev)
}

func (w *writeTracker) CreateReplica(ctx context.Context, rep apps.Replica, ev *apps.Event, check apps.QuotaCheck) (apps.Replica, error) {
	out, err := w.Store.CreateReplica(ctx, rep, ev, check)
	if err == nil {
		w.at(out.ModRevision)
	}
	return out, err
}

func (w *writeTracker) PutReplica(ctx context.Context, rep apps.Replica, ev *apps.Event) (apps.Replica, error) {
	out, err := w.Store.PutReplica(ctx, rep, ev)
	if err == nil {
		w.at(out.ModRevision)
	}
	return out, err
}

func (w *writeTracker) DeleteReplica(ctx context.Context, rep apps.Replica, ev *apps.Event) error {
	w.blind()
	return w.Store.DeleteReplica(ctx, rep, ev)
}

func (w *writeTracker) DeleteAppData(ctx context.Context, snap apps.Snapshot) error {
	w.blind()
	return w.Store.DeleteAppData(ctx, snap)
}
