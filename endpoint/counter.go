package endpoint

import (
	"context"
	"encoding/json"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/apps"
)

var (
	gatewayConnections = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "discovery_gateway_connections", Help: "Upgraded (WebSocket) sessions this instance's gateway holds open.",
	})
	replicaSessions = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "discovery_replica_sessions", Help: "This instance's open sessions (kind connections) and unused get-endpoint reservations (kind reservations) per replica.",
	}, []string{"tenant", "app", "revision", "replica", "kind"})
)

// Load is one instance's sessions on one replica.
type Load struct {
	Connections  int `json:"connections"`
	Reservations int `json:"reservations"`
}

// Total is what counts against capacity and keeps a revision alive.
func (l Load) Total() int { return l.Connections + l.Reservations }

func (l Load) add(o Load) Load {
	return Load{Connections: l.Connections + o.Connections, Reservations: l.Reservations + o.Reservations}
}

// Counter counts this instance's open sessions and reservations per replica and
// publishes the non-zero ones to etcd on a short tick, under a lease owned by
// this instance: if the instance dies, its counts expire with the lease. No
// request writes etcd; only the aggregate does, at most once per tick.
type Counter struct {
	cli      *clientv3.Client
	prefix   string // {prefix}/sessions/{instance}/
	Instance string
	ttl      int64
	tick     time.Duration
	log      *slog.Logger
	now      func() time.Time

	// kick asks for a publish now rather than at the next tick.
	kick chan struct{}

	mu sync.Mutex
	// loads holds the replicas with sessions or reservations.
	loads map[apps.ReplicaID]*replicaLoad
	// byRev indexes the replicas with sessions or reservations by revision
	// key, so a revision's load is summed over its own replicas only.
	byRev map[string]map[apps.ReplicaID]struct{}
}

// replicaLoad is one replica's local load.
type replicaLoad struct {
	conns int
	resv  reservations
}

// reservations holds a replica's reservation expiries, oldest first, in
// buckets of resvGrain: a burst of get-endpoint calls costs one bucket, not
// an entry each, so the memory is bounded by the TTL, not the call rate.
type reservations struct {
	buckets []resvBucket
	n       int
}

type resvBucket struct {
	until time.Time
	n     int
}

// resvGrain is how much later than asked a reservation may expire.
const resvGrain = 10 * time.Millisecond

func (q *reservations) add(until time.Time) {
	if k := len(q.buckets); k > 0 && !until.After(q.buckets[k-1].until) {
		// Within the newest bucket's grain, or an earlier expiry (the
		// app's TTL shrank): it lasts as long as the newest.
		q.buckets[k-1].n++
	} else {
		q.buckets = append(q.buckets, resvBucket{until: until.Add(resvGrain - 1).Truncate(resvGrain), n: 1})
	}
	q.n++
}

// takeOldest consumes the reservation that expires first.
func (q *reservations) takeOldest() {
	if q.n == 0 {
		return
	}
	q.n--
	if q.buckets[0].n--; q.buckets[0].n == 0 {
		q.buckets = q.buckets[1:]
	}
}

// takeNewest drops the reservation made last.
func (q *reservations) takeNewest() {
	if q.n == 0 {
		return
	}
	q.n--
	k := len(q.buckets) - 1
	if q.buckets[k].n--; q.buckets[k].n == 0 {
		q.buckets = q.buckets[:k]
	}
}

// expire drops the reservations expired at now.
func (q *reservations) expire(now time.Time) {
	i := 0
	for i < len(q.buckets) && !q.buckets[i].until.After(now) {
		q.n -= q.buckets[i].n
		i++
	}
	if i == len(q.buckets) {
		q.buckets = nil // let a long queue's array go
	} else if i > 0 {
		q.buckets = q.buckets[i:]
	}
}

// CounterConfig tunes a Counter.
type CounterConfig struct {
	Prefix   string
	Instance string
	// LeaseTTL is how long counts outlive a dead instance (seconds; default 10).
	LeaseTTL int64
	// Tick is the publish interval (default 250ms).
	Tick   time.Duration
	Logger *slog.Logger
}

// NewCounter returns a counter; Run publishes its counts.
func NewCounter(cli *clientv3.Client, cfg CounterConfig) *Counter {
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 10
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 250 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Counter{cli: cli, prefix: path.Join(strings.TrimSuffix(cfg.Prefix, "/"), "sessions", cfg.Instance) + "/",
		Instance: cfg.Instance, ttl: cfg.LeaseTTL, tick: cfg.Tick, log: cfg.Logger, now: time.Now, kick: make(chan struct{}, 1),
		loads: map[apps.ReplicaID]*replicaLoad{}, byRev: map[string]map[apps.ReplicaID]struct{}{}}
}

// Reserve holds a place on a replica for a client that was just given its
// endpoint, until it connects or ttl passes.
func (c *Counter) Reserve(r apps.ReplicaID, ttl time.Duration) {
	c.mu.Lock()
	c.entry(r).resv.add(c.now().Add(ttl))
	c.mu.Unlock()
}

// entry returns r's load, made and indexed if r had none; mu held.
func (c *Counter) entry(r apps.ReplicaID) *replicaLoad {
	if l := c.loads[r]; l != nil {
		return l
	}
	l := &replicaLoad{}
	c.loads[r] = l
	k := revKey(r.Tenant, r.App, r.Revision)
	m := c.byRev[k]
	if m == nil {
		m = map[apps.ReplicaID]struct{}{}
		c.byRev[k] = m
	}
	m[r] = struct{}{}
	return l
}

// current returns r's load with expired reservations dropped, and forgets r
// if nothing is left (nil then); mu held.
func (c *Counter) current(r apps.ReplicaID) *replicaLoad {
	l := c.loads[r]
	if l == nil {
		return nil
	}
	l.resv.expire(c.now())
	if l.conns > 0 || l.resv.n > 0 {
		return l
	}
	delete(c.loads, r)
	k := revKey(r.Tenant, r.App, r.Revision)
	if m := c.byRev[k]; m != nil {
		delete(m, r)
		if len(m) == 0 {
			delete(c.byRev, k)
		}
	}
	return nil
}

func (l *replicaLoad) load() Load {
	if l == nil {
		return Load{}
	}
	return Load{Connections: l.conns, Reservations: l.resv.n}
}

// Revision returns this instance's current load on a revision's replicas.
func (c *Counter) Revision(tenant, app, rev string) Load {
	c.mu.Lock()
	defer c.mu.Unlock()
	var sum Load
	for r := range c.byRev[revKey(tenant, app, rev)] {
		l := c.current(r).load()
		sum.Connections += l.Connections
		sum.Reservations += l.Reservations
	}
	return sum
}

// Kick publishes the counts now instead of at the next tick (a cold-start
// demand must reach the reconciler's leader at once).
func (c *Counter) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Release drops one reservation of a replica (a cold-start demand that was
// served or gave up).
func (c *Counter) Release(r apps.ReplicaID) {
	c.mu.Lock()
	if l := c.loads[r]; l != nil {
		l.resv.takeNewest()
		c.current(r)
	}
	c.mu.Unlock()
}

// Connect counts a new session on a replica, consuming the oldest reservation
// for it if there is one.
func (c *Counter) Connect(r apps.ReplicaID) {
	gatewayConnections.Inc()
	c.mu.Lock()
	l := c.entry(r)
	l.conns++
	l.resv.expire(c.now())
	l.resv.takeOldest()
	c.mu.Unlock()
}

// Disconnect counts a session's end.
func (c *Counter) Disconnect(r apps.ReplicaID) {
	gatewayConnections.Dec()
	c.mu.Lock()
	if l := c.loads[r]; l != nil && l.conns > 0 {
		l.conns--
	}
	c.current(r)
	c.mu.Unlock()
}

// Local returns this instance's current load on a replica.
func (c *Counter) Local(r apps.ReplicaID) Load {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current(r).load()
}

// addTotals adds the current local load of each of ids to totals.
func (c *Counter) addTotals(ids []apps.ReplicaID, totals []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for i, r := range ids {
		if l := c.loads[r]; l != nil {
			l.resv.expire(now)
			totals[i] += l.conns + l.resv.n
		}
	}
}

// Snapshot returns every non-zero local load.
func (c *Counter) Snapshot() map[apps.ReplicaID]Load {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[apps.ReplicaID]Load, len(c.loads))
	for r := range c.loads {
		if l := c.current(r); l != nil {
			out[r] = l.load()
		}
	}
	return out
}

// Connections returns the number of open sessions this instance holds.
func (c *Counter) Connections() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.loads {
		n += l.conns
	}
	return n
}

// Run publishes counts until ctx ends. After a lost lease (etcd was away longer
// than the TTL) it takes a fresh lease and republishes everything.
func (c *Counter) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := c.publishUnderLease(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("session counts: lease lost; republishing under a new one", "err", err)
			select { // before a new lease
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (c *Counter) publishUnderLease(ctx context.Context) error {
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	lease, err := c.cli.Grant(gctx, c.ttl)
	cancel()
	if err != nil {
		return err
	}
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	ka, err := c.cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		return err
	}
	defer func() {
		// Best effort: a clean stop removes our counts at once instead of at TTL.
		rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, _ = c.cli.Revoke(rctx, lease.ID)
		rcancel()
	}()
	published := map[apps.ReplicaID]Load{}
	ticker := time.NewTicker(c.tick)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-ka:
			if !ok {
				return errLeaseLost
			}
		case <-ticker.C:
			// Reservations expire without a call, so look each tick.
			if err := c.publish(ctx, lease.ID, published); err != nil {
				return err
			}
		case <-c.kick:
			if err := c.publish(ctx, lease.ID, published); err != nil {
				return err
			}
		}
	}
}

type leaseErr string

func (e leaseErr) Error() string { return string(e) }

const errLeaseLost = leaseErr("keep-alive channel closed")

// publish writes the loads that changed since the last publish, in chunks of
// one transaction each.
func (c *Counter) publish(ctx context.Context, lease clientv3.LeaseID, published map[apps.ReplicaID]Load) error {
	now := c.Snapshot()
	var ops []clientv3.Op
	for r, l := range now {
		replicaSessions.WithLabelValues(r.Tenant, r.App, r.Revision, r.Replica, "connections").Set(float64(l.Connections))
		replicaSessions.WithLabelValues(r.Tenant, r.App, r.Revision, r.Replica, "reservations").Set(float64(l.Reservations))
		if published[r] != l {
			b, _ := json.Marshal(l)
			ops = append(ops, clientv3.OpPut(c.prefix+r.String(), string(b), clientv3.WithLease(lease)))
		}
	}
	for r := range published {
		if _, ok := now[r]; !ok {
			replicaSessions.DeleteLabelValues(r.Tenant, r.App, r.Revision, r.Replica, "connections")
			replicaSessions.DeleteLabelValues(r.Tenant, r.App, r.Revision, r.Replica, "reservations")
			ops = append(ops, clientv3.OpDelete(c.prefix+r.String()))
		}
	}
	for len(ops) > 0 {
		n := min(len(ops), 100)
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.cli.Txn(pctx).Then(ops[:n]...).Commit()
		cancel()
		if err != nil {
			return err
		}
		ops = ops[n:]
	}
	clear(published)
	for r, l := range now {
		published[r] = l
	}
	return nil
}
