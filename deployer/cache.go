package deployer

import (
	"context"
	"log/slog"
	"sort"
	"sync"

	"github.com/discovery-platform/discovery/apps"
)

// Store is what the reconciler needs of the apps store (apps.Store): a feed
// of its records, and the writes of the lifecycle, each a compare-and-swap.
type Store interface {
	NewFeed(h apps.FeedHandler, log *slog.Logger) *apps.Feed
	Load(ctx context.Context, tenant, app string) (apps.Snapshot, error)
	Usage(ctx context.Context, tenant string) (apps.Usage, error)
	Transition(ctx context.Context, changes ...apps.Change) ([]apps.Revision, error)
	SaveRevisionStatus(ctx context.Context, r apps.Revision) (apps.Revision, error)
	DeleteRevision(ctx context.Context, r apps.Revision) error
	CreateReplica(ctx context.Context, r apps.Replica, ev *apps.Event, check apps.QuotaCheck) (apps.Replica, error)
	PutReplica(ctx context.Context, r apps.Replica, ev *apps.Event) (apps.Replica, error)
	DeleteReplica(ctx context.Context, r apps.Replica, ev *apps.Event) error
	DeleteAppData(ctx context.Context, snap apps.Snapshot) error
	AppendEvent(ctx context.Context, e apps.Event) error
	TrimEvents(ctx context.Context, tenant, app string) error
	// VoidTicketsTo voids the handoff tickets of players who had not
	// reached a replica when it crashed.
	VoidTicketsTo(ctx context.Context, target apps.ReplicaID) ([]apps.Ticket, error)
}

// cache is the reconciler's copy of the store's records, kept by the feed
// (an informer): a pass over an app that did not change reads memory only.
// It tells the reconciler which apps changed.
type cache struct {
	onChange func(apps.Ref)
	onReset  func()

	// onNotable, if set, is told of each revision that started draining or
	// was re-activated, as it happens (not on a relist).
	onNotable func(apps.Revision)

	mu     sync.Mutex
	apps   map[apps.Ref]*apps.AppRecords
	loaded map[apps.RecordKind]bool
}

func newCache(onChange func(apps.Ref), onReset func()) *cache {
	return &cache{onChange: onChange, onReset: onReset, apps: map[apps.Ref]*apps.AppRecords{}, loaded: map[apps.RecordKind]bool{}}
}

// synced reports whether every kind has been listed once.
func (c *cache) synced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.loaded) == 3
}

// Reset replaces the cache's records of one kind (apps.FeedHandler).
func (c *cache) Reset(kind apps.RecordKind, all []apps.Record) {
	c.mu.Lock()
	for ref, a := range c.apps {
		a.Clear(kind)
		c.tidy(ref, a)
	}
	c.put(all)
	c.loaded[kind] = true
	c.mu.Unlock()
	c.onReset()
}

// Apply applies a batch of changes (apps.FeedHandler).
func (c *cache) Apply(_ apps.RecordKind, changes []apps.Record) {
	c.mu.Lock()
	var notable []apps.Revision
	if c.onNotable != nil {
		for _, rec := range changes {
			if rec.Kind != apps.KindRevision || rec.Deleted {
				continue
			}
			var prev apps.RevisionState
			if a := c.apps[rec.Ref]; a != nil {
				prev = a.Revs[rec.Revision].State
			}
			if apps.Notable(prev, rec.Rev.State) {
				notable = append(notable, *rec.Rev)
			}
		}
	}
	refs := c.put(changes)
	c.mu.Unlock()
	for ref := range refs {
		c.onChange(ref)
	}
	for _, rev := range notable {
		c.onNotable(rev)
	}
}

// put records changes and returns the apps they touched; mu held.
func (c *cache) put(recs []apps.Record) map[apps.Ref]bool {
	touched := map[apps.Ref]bool{}
	for _, rec := range recs {
		a := c.apps[rec.Ref]
		if a == nil {
			a = apps.NewAppRecords()
			c.apps[rec.Ref] = a
		}
		touched[rec.Ref] = true
		a.Put(rec)
	}
	for ref := range touched {
		c.tidy(ref, c.apps[ref])
	}
	return touched
}

func (c *cache) tidy(ref apps.Ref, a *apps.AppRecords) {
	if a.Empty() {
		delete(c.apps, ref)
	}
}

// snapshot returns an app as Store.Load would (ErrNotFound without its app
// record), and the newest mod revision among its records.
func (c *cache) snapshot(ref apps.Ref) (apps.Snapshot, int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.apps[ref]
	if a == nil || a.App == nil {
		return apps.Snapshot{}, 0, false
	}
	snap := apps.Snapshot{App: *a.App, Revisions: make([]apps.Revision, 0, len(a.Revs)), Replicas: make([]apps.Replica, 0, len(a.Reps))}
	latest := a.App.ModRevision
	for _, r := range a.Revs {
		snap.Revisions = append(snap.Revisions, r)
		latest = max(latest, r.ModRevision)
	}
	sort.Slice(snap.Revisions, func(i, j int) bool { return snap.Revisions[i].Generation > snap.Revisions[j].Generation })
	for _, r := range a.Reps {
		snap.Replicas = append(snap.Replicas, r)
		latest = max(latest, r.ModRevision)
	}
	sort.Slice(snap.Replicas, func(i, j int) bool { return snap.Replicas[i].ID < snap.Replicas[j].ID })
	// The newest record this view holds: a write comparing that nothing of
	// the app changed since (DeleteAppData) compares against it.
	snap.ReadAt = latest
	return snap, latest, true
}

// refs lists every app in the cache.
func (c *cache) refs() []apps.Ref {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]apps.Ref, 0, len(c.apps))
	for ref, a := range c.apps {
		if a.App != nil {
			out = append(out, ref)
		}
	}
	return out
}
