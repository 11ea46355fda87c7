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
