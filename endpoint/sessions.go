package endpoint

import (
	"context"
	"encoding/json"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/internal/etcdmirror"

	"github.com/discovery-platform/discovery/apps"
)

// Sessions sums what every instance reports (connections and reservations,
// under each instance's lease) and the app-held leases, per replica and per
// revision. For this instance it uses the live local counter rather than its
// published copy, so a session that opened a moment ago already counts. It is
// the deployer.SessionCounter of the platform.
type Sessions struct {
	local   *Counter
	counts  *etcdmirror.Mirror
	leases  *apps.LeaseFeed
	started time.Time

	mu       sync.Mutex
	loaded   map[string]bool
	others   map[apps.ReplicaID]Load // every other instance's loads
	othersRv map[string]Load         // the same summed per revision key
	holdsRep map[apps.ReplicaID]int  // app-held leases naming a replica
	holdsRev map[string]int          // app-held leases per revision key
	lastBusy map[string]time.Time
	perApp   map[apps.Ref]int // last totals, to tell which apps changed

	// Notify, if set, is called (outside locks) with each app whose reported
	// sessions changed: the reconciler's autoscaler reacts at once.
	Notify func(apps.Ref)
}

// NewSessions returns a session table over the counts instances publish under
// prefix and the app-held leases of store; local may be nil (an instance
// without a gateway or get-endpoint).
func NewSessions(cli *clientv3.Client, prefix string, store *apps.Store, local *Counter, log *slog.Logger) *Sessions {
	prefix = strings.TrimSuffix(prefix, "/")
	s := &Sessions{local: local, started: time.Now(), loaded: map[string]bool{},
		others: map[apps.ReplicaID]Load{}, othersRv: map[string]Load{}, holdsRep: map[apps.ReplicaID]int{}, holdsRev: map[string]int{}, lastBusy: map[string]time.Time{},
		perApp: map[apps.Ref]int{}}
	sp := path.Join(prefix, "sessions") + "/"
	s.counts = &etcdmirror.Mirror{Cli: cli, Prefix: sp, Log: log, OnChange: func(kvs map[string][]byte) { s.updateSessions(sp, kvs) }}
	s.leases = store.NewLeaseFeed(s.updateHolds, log)
	return s
}

// Run keeps the table current until ctx ends.
func (s *Sessions) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { s.counts.Run(ctx) })
	wg.Go(func() { s.leases.Run(ctx) })
	wg.Wait()
}

func revKey(t, a, rev string) string { return t + "/" + a + "/" + rev }

func (s *Sessions) updateSessions(prefix string, kvs map[string][]byte) {
	others, othersRv := map[apps.ReplicaID]Load{}, map[string]Load{}
	busy := map[string]bool{}
	totals := map[apps.Ref]int{}
	for k, v := range kvs {
		parts := strings.Split(strings.TrimPrefix(k, prefix), "/")
		if len(parts) != 5 {
			continue
		}
		var l Load
		if json.Unmarshal(v, &l) != nil || l.Total() == 0 {
			continue
		}
		r := apps.ReplicaID{Tenant: parts[1], App: parts[2], Revision: parts[3], Replica: parts[4]}
		busy[r.String()], busy[revKey(r.Tenant, r.App, r.Revision)] = true, true
		totals[apps.Ref{Tenant: r.Tenant, App: r.App}] += l.Total()
		if s.local != nil && parts[0] == s.local.Instance {
			continue // our own published copy: the live counter is fresher
		}
		others[r] = others[r].add(l)
		rk := revKey(r.Tenant, r.App, r.Revision)
		othersRv[rk] = othersRv[rk].add(l)
	}
	s.mu.Lock()
	s.others, s.othersRv = others, othersRv
	s.markBusy(busy)
	s.loaded["sessions"] = true
	var changed []apps.Ref
	for ref, n := range totals {
		if s.perApp[ref] != n {
			changed = append(changed, ref)
		}
	}
	for ref := range s.perApp {
		if _, ok := totals[ref]; !ok {
			changed = append(changed, ref)
		}
	}
	s.perApp = totals
	s.mu.Unlock()
	if s.Notify != nil {
		for _, ref := range changed {
			s.Notify(ref)
		}
	}
}

func (s *Sessions) updateHolds(leases []apps.Lease) {
	rep, rev := map[apps.ReplicaID]int{}, map[string]int{}
	busy := map[string]bool{}
	for _, h := range leases {
		rk := revKey(h.Tenant, h.App, h.Revision)
		rev[rk]++
		busy[rk] = true
		if h.Replica != "" {
			r := apps.ReplicaID{Tenant: h.Tenant, App: h.App, Revision: h.Revision, Replica: h.Replica}
			rep[r]++
			busy[r.String()] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holdsRep, s.holdsRev = rep, rev
	s.markBusy(busy)
	s.loaded["holds"] = true
}

// markBusy notes that these replicas and revisions had sessions just now;
// called with mu held.
func (s *Sessions) markBusy(busy map[string]bool) {
	now := time.Now()
	for k := range busy {
		s.lastBusy[k] = now
	}
	for k, t := range s.lastBusy {
		if now.Sub(t) > apps.MaxGrace+time.Hour {
			delete(s.lastBusy, k) // older than any reconnect_grace: irrelevant
		}
	}
}

func (s *Sessions) known() bool { return s.loaded["sessions"] && s.loaded["holds"] }

// Load returns a replica's sessions over every instance, app-held leases on it
// included: what get-endpoint weighs against max_sessions.
func (s *Sessions) Load(r apps.ReplicaID) int {
	s.mu.Lock()
	n := s.others[r].Total() + s.holdsRep[r]
	s.mu.Unlock()
	if s.local != nil {
		n += s.local.Local(r).Total()
	}
	return n
}

// Loads appends to out the Load of each of ids, reading each table once.
func (s *Sessions) Loads(ids []apps.ReplicaID, out []int) []int {
	s.mu.Lock()
	for _, r := range ids {
		out = append(out, s.others[r].Total()+s.holdsRep[r])
	}
	s.mu.Unlock()
	if s.local != nil {
		s.local.addTotals(ids, out[len(out)-len(ids):])
	}
	return out
}

// Replica reports one replica's sessions (deployer.SessionCounter).
func (s *Sessions) Replica(tenant, app, rev, replica string) apps.Sessions {
	r := apps.ReplicaID{Tenant: tenant, App: app, Revision: rev, Replica: replica}
	s.mu.Lock()
	l, leases := s.others[r], s.holdsRep[r]
	s.mu.Unlock()
	if s.local != nil {
		l = l.add(s.local.Local(r))
	}
	return s.result(r.String(), l, leases)
}

// Revision reports a revision's sessions (deployer.SessionCounter).
func (s *Sessions) Revision(tenant, app, rev string) apps.Sessions {
	key := revKey(tenant, app, rev)
	s.mu.Lock()
	l, leases := s.othersRv[key], s.holdsRev[key]
	s.mu.Unlock()
	if s.local != nil {
		l = l.add(s.local.Revision(tenant, app, rev))
	}
	return s.result(key, l, leases)
}

func (s *Sessions) result(key string, l Load, leases int) apps.Sessions {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := apps.Sessions{Known: s.known(), Count: l.Total() + leases, Connections: l.Connections, Reservations: l.Reservations, Leases: leases}
	if out.Count > 0 {
		s.lastBusy[key] = time.Now()
		return out
	}
	out.EmptySince = s.started
	if t := s.lastBusy[key]; t.After(out.EmptySince) {
		out.EmptySince = t
	}
	return out
}
