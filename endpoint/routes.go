// Package endpoint routes players to replicas: get-endpoint chooses a replica of
// the active revision with room and reserves a place on it; the gateway proxies
// HTTP and WebSocket traffic for endpoint URLs to the replica they pin and
// counts the sessions it holds. Both read a route table fed by etcd watches, so
// no request waits on etcd.
package endpoint

import (
	"context"
	"log/slog"
	"path"
	"sort"
	"sync"
	"time"

	"github.com/discovery-platform/discovery/apps"
)

// Route is where an endpoint URL leads: one replica of one revision.
type Route struct {
	Tenant, App, Revision, Replica string
	Address                        string
	State                          apps.ReplicaState
	RevisionState                  apps.RevisionState
	// Stopping is set once the platform decided to stop the replica.
	Stopping bool
	// Reserved are the app's paths only the platform calls (drain_hook,
	// handoff_path): the gateway refuses them to clients.
	Reserved []string
}

// Routable reports whether traffic for this route may reach its replica: the
// process runs and nobody asked it to stop. An unhealthy replica still gets its
// own players' reconnects; only get-endpoint avoids it.
func (r Route) Routable() bool {
	return r.Address != "" && !r.Stopping && r.State != apps.ReplicaExited && r.State != apps.ReplicaStopping &&
		!r.RevisionState.Terminal()
}

// AppRoutes is what the table knows of one app. It is never changed once
// published: a change to the app publishes a new one.
type AppRoutes struct {
	App apps.App
	// Active is the id of the active revision, "" if none.
	Active    string
	Revisions map[string]apps.Revision
	// Replicas of every revision, sorted by id.
	Replicas []Route
	// byKey finds a replica's route by "revision/replica".
	byKey map[string]Route
}

// Routes is the watch-fed route table: the apps store's feed of records
// (typed; the table never sees a key) applied one change at a time. A change
// to one app rebuilds that app's entry only, published atomically, so the
// cost of a change does not grow with the number of apps and readers take
// no lock.
type Routes struct {
	feed *apps.Feed

	// table maps apps.Ref to its current *AppRoutes.
	table sync.Map

	mu    sync.Mutex
	state map[apps.Ref]*apps.AppRecords
	// changed is closed (and replaced) at every table change: a broadcast
	// that waiters select on without registering.
	changed chan struct{}
}

// NewRoutes returns a table over the apps store's records; Run fills it.
func NewRoutes(store *apps.Store, log *slog.Logger) *Routes {
	r := &Routes{state: map[apps.Ref]*apps.AppRecords{}, changed: make(chan struct{})}
	r.feed = store.NewFeed(r, log)
	return r
}

// Run keeps the table current until ctx ends.
func (r *Routes) Run(ctx context.Context) { r.feed.Run(ctx) }

// Synced reports the oldest time at which every part of the table was known to
// be current (zero until all have loaded once).
func (r *Routes) Synced() time.Time { return r.feed.Synced() }

// Decoded is how many records the table's feed has decoded.
func (r *Routes) Decoded() int64 { return r.feed.Decoded() }

// CatchUp returns once the table reflects every write etcd had committed when
// it was called, or with an error (etcd unreachable, ctx done).
func (r *Routes) CatchUp(ctx context.Context) error { return r.feed.CatchUp(ctx) }

// Changed returns a channel closed at the next table change.
func (r *Routes) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Reset replaces what the table has of one kind (apps.FeedHandler).
func (r *Routes) Reset(kind apps.RecordKind, all []apps.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	touched := map[apps.Ref]bool{}
	for ref, st := range r.state {
		st.Clear(kind)
		touched[ref] = true
	}
	r.apply(all, touched)
}

// Apply applies a batch of changes (apps.FeedHandler).
func (r *Routes) Apply(_ apps.RecordKind, changes []apps.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.apply(changes, map[apps.Ref]bool{})
}

// apply records changes and republishes the apps they touched; mu held.
func (r *Routes) apply(recs []apps.Record, touched map[apps.Ref]bool) {
	for _, rec := range recs {
		st := r.state[rec.Ref]
		if st == nil {
			st = apps.NewAppRecords()
			r.state[rec.Ref] = st
		}
		touched[rec.Ref] = true
		st.Put(rec)
	}
	for ref := range touched {
		st := r.state[ref]
		if st.App == nil {
			r.table.Delete(ref)
			if st.Empty() {
				delete(r.state, ref)
			}
			continue
		}
		r.table.Store(ref, routesOf(st))
	}
	if len(touched) > 0 {
		close(r.changed)
		r.changed = make(chan struct{})
	}
}

// routesOf builds the app's published entry.
func routesOf(st *apps.AppRecords) *AppRoutes {
	ar := &AppRoutes{App: *st.App, Revisions: make(map[string]apps.Revision, len(st.Revs)), byKey: make(map[string]Route, len(st.Reps))}
	for id, rev := range st.Revs {
		ar.Revisions[id] = rev
		if rev.State == apps.Active {
			ar.Active = id
		}
	}
	var reserved []string
	for _, p := range []string{st.App.DrainHook, st.App.HandoffPath} {
		if p != "" {
			reserved = append(reserved, path.Clean(p))
		}
	}
	for key, rep := range st.Reps {
		rt := Route{Tenant: rep.Tenant, App: rep.App, Revision: rep.Revision, Replica: rep.ID, Address: rep.Address,
			State: rep.State, RevisionState: st.Revs[rep.Revision].State, Stopping: rep.Stop, Reserved: reserved}
		ar.Replicas = append(ar.Replicas, rt)
		ar.byKey[key] = rt
	}
	sort.Slice(ar.Replicas, func(i, j int) bool { return ar.Replicas[i].Replica < ar.Replicas[j].Replica })
	return ar
}

// Lookup finds the route an endpoint URL pins.
func (r *Routes) Lookup(tenant, app, rev, replica string) (rt Route, ok bool) {
	ar, found := r.App(tenant, app)
	if !found {
		return Route{}, false
	}
	rt, ok = ar.byKey[rev+"/"+replica]
	return rt, ok
}

// Notice is a revision's notice from the table (api.NoticeSource).
func (r *Routes) Notice(tenant, app, rev string) (apps.Notice, bool) {
	ar, ok := r.App(tenant, app)
	if !ok {
		return apps.Notice{}, false
	}
	rv, ok := ar.Revisions[rev]
	if !ok {
		return apps.Notice{}, false
	}
	return apps.NoticeFor(ar.App, rv, ar.Active, time.Now()), true
}

// LastDeploy is the status of an app's last deploy from the table
// (api.DeploySource).
func (r *Routes) LastDeploy(tenant, app string) (apps.DeployStatus, bool) {
	ar, ok := r.App(tenant, app)
	if !ok {
		return apps.DeployStatus{}, false
	}
	return apps.LastDeploy(ar.Revisions)
}

// Range calls fn with each app the table knows, until fn returns false.
func (r *Routes) Range(fn func(*AppRoutes) bool) {
	r.table.Range(func(_, v any) bool { return fn(v.(*AppRoutes)) })
}

// App returns what the table knows of one app.
func (r *Routes) App(tenant, app string) (*AppRoutes, bool) {
	v, ok := r.table.Load(apps.Ref{Tenant: tenant, App: app})
	if !ok {
		return nil, false
	}
	return v.(*AppRoutes), true
}
