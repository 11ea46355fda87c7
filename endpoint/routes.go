// Package endpoint routes players to replicas: get-endpoint chooses a replica of
// the active revision with room and reserves a place on it; the gateway proxies
// HTTP and WebSocket traffic for endpoint URLs to the replica they pin and
// counts the sessions it holds. Both read a route table fed by etcd watches, so
// no request waits on etcd.
package endpoint

import (
	"context"
	"encoding/json"
	"log/slog"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/internal/etcdmirror"

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
}

// Routable reports whether traffic for this route may reach its replica: the
// process runs and nobody asked it to stop. An unhealthy replica still gets its
// own players' reconnects; only get-endpoint avoids it.
func (r Route) Routable() bool {
	return r.Address != "" && !r.Stopping && r.State != apps.ReplicaExited && r.State != apps.ReplicaStopping &&
		!r.RevisionState.Terminal()
}

// AppRoutes is what the table knows of one app.
type AppRoutes struct {
	App apps.App
	// Active is the id of the active revision, "" if none.
	Active    string
	Revisions map[string]apps.Revision
	// Replicas of every revision, sorted by id.
	Replicas []Route
}

type routeSnapshot struct {
	apps     map[apps.Ref]*AppRoutes
	replicas map[string]Route // tenant/app/rev/replica
}

// Routes is the watch-fed route table. Its snapshot is replaced whole on each
// change and read without locks.
type Routes struct {
	cli     *clientv3.Client
	prefix  string
	mirrors []*etcdmirror.Mirror
	snap    atomic.Pointer[routeSnapshot]
	catch   catchUps

	mu    sync.Mutex
	kinds map[string]map[string][]byte // kind -> key -> value
	// changed is closed (and replaced) at every table change: a broadcast
	// that waiters select on without registering.
	changed chan struct{}
}

// NewRoutes returns a table over the apps store's keys under prefix; Run fills it.
func NewRoutes(cli *clientv3.Client, prefix string, log *slog.Logger) *Routes {
	prefix = strings.TrimSuffix(prefix, "/")
	r := &Routes{cli: cli, prefix: prefix, kinds: map[string]map[string][]byte{}, changed: make(chan struct{})}
	r.snap.Store(&routeSnapshot{apps: map[apps.Ref]*AppRoutes{}, replicas: map[string]Route{}})
	for _, kind := range []string{"apps", "revisions", "replicas"} {
		r.mirrors = append(r.mirrors, &etcdmirror.Mirror{Cli: cli, Prefix: path.Join(prefix, kind) + "/", Log: log,
			OnChange: func(kvs map[string][]byte) { r.update(kind, kvs) }})
	}
	return r
}

// Run keeps the table current until ctx ends.
func (r *Routes) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, m := range r.mirrors {
		wg.Add(1)
		go func() { defer wg.Done(); m.Run(ctx) }()
	}
	wg.Wait()
}

// Synced reports the oldest time at which every part of the table was known to
// be current (zero until all have loaded once).
func (r *Routes) Synced() time.Time {
	var oldest time.Time
	for i, m := range r.mirrors {
		t, _ := m.Status()
		if i == 0 || t.Before(oldest) {
			oldest = t
		}
	}
	return oldest
}

// Changed returns a channel closed at the next table change.
func (r *Routes) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

func (r *Routes) update(kind string, kvs map[string][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cp := make(map[string][]byte, len(kvs))
	for k, v := range kvs {
		cp[k] = v
	}
	r.kinds[kind] = cp
	r.snap.Store(r.build())
	close(r.changed)
	r.changed = make(chan struct{})
}

// build makes a snapshot from the latest key sets; called with mu held.
func (r *Routes) build() *routeSnapshot {
	s := &routeSnapshot{apps: map[apps.Ref]*AppRoutes{}, replicas: map[string]Route{}}
	for _, v := range r.kinds["apps"] {
		var a apps.App
		if json.Unmarshal(v, &a) != nil {
			continue
		}
		s.apps[apps.Ref{Tenant: a.Tenant, App: a.Name}] = &AppRoutes{App: a, Revisions: map[string]apps.Revision{}}
	}
	for _, v := range r.kinds["revisions"] {
		var rev apps.Revision
		if json.Unmarshal(v, &rev) != nil {
			continue
		}
		if ar := s.apps[apps.Ref{Tenant: rev.Tenant, App: rev.App}]; ar != nil {
			ar.Revisions[rev.ID] = rev
			if rev.State == apps.Active {
				ar.Active = rev.ID
			}
		}
	}
	for _, v := range r.kinds["replicas"] {
		var rep apps.Replica
		if json.Unmarshal(v, &rep) != nil {
			continue
		}
		ar := s.apps[apps.Ref{Tenant: rep.Tenant, App: rep.App}]
		if ar == nil {
			continue
		}
		rt := Route{Tenant: rep.Tenant, App: rep.App, Revision: rep.Revision, Replica: rep.ID, Address: rep.Address,
			State: rep.State, RevisionState: ar.Revisions[rep.Revision].State, Stopping: rep.Stop}
		ar.Replicas = append(ar.Replicas, rt)
		s.replicas[routeKey(rep.Tenant, rep.App, rep.Revision, rep.ID)] = rt
	}
	for _, ar := range s.apps {
		sort.Slice(ar.Replicas, func(i, j int) bool { return ar.Replicas[i].Replica < ar.Replicas[j].Replica })
	}
	return s
}

func routeKey(t, a, rev, rep string) string { return t + "/" + a + "/" + rev + "/" + rep }

// Lookup finds the route an endpoint URL pins.
func (r *Routes) Lookup(tenant, app, rev, replica string) (rt Route, ok bool) {
	rt, ok = r.snap.Load().replicas[routeKey(tenant, app, rev, replica)]
	return rt, ok
}

// App returns what the table knows of one app.
func (r *Routes) App(tenant, app string) (*AppRoutes, bool) {
	ar, ok := r.snap.Load().apps[apps.Ref{Tenant: tenant, App: app}]
	return ar, ok
}
