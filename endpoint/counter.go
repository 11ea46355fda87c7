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
		Name: "discovery_replica_sessions", Help: "This instance's sessions and reservations per replica.",
	}, []string{"tenant", "app", "revision", "replica"})
)

// Load is one instance's sessions on one replica.
type Load struct {
	Connections  int `json:"connections"`
	Reservations int `json:"reservations"`
}

// Total is what counts against capacity and keeps a revision alive.
func (l Load) Total() int { return l.Connections + l.Reservations }

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

	mu    sync.Mutex
	conns map[apps.ReplicaID]int
	// resv holds reservation expiry times per replica, oldest first.
	resv map[apps.ReplicaID][]time.Time
	// byRev indexes the replicas with sessions or reservations by revision
	// key, so a revision's load is summed over its own replicas only.
	byRev map[string]map[apps.ReplicaID]struct{}
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
		conns: map[apps.ReplicaID]int{}, resv: map[apps.ReplicaID][]time.Time{}, byRev: map[string]map[apps.ReplicaID]struct{}{}}
}

// Reserve holds a place on a replica for a client that was just given its
// endpoint, until it connects or ttl passes.
func (c *Counter) Reserve(r apps.ReplicaID, ttl time.Duration) {
	c.mu.Lock()
	c.resv[r] = append(c.resv[r], c.now().Add(ttl))
	c.index(r)
	c.mu.Unlock()
}

// index notes that r has a load; mu held.
func (c *Counter) index(r apps.ReplicaID) {
	k := revKey(r.Tenant, r.App, r.Revision)
	m := c.byRev[k]
	if m == nil {
		m = map[apps.ReplicaID]struct{}{}
		c.byRev[k] = m
	}
	m[r] = struct{}{}
}

// unindex forgets r once it has no load left; mu held.
func (c *Counter) unindex(r apps.ReplicaID) {
	if c.conns[r] > 0 || len(c.resv[r]) > 0 {
		return
	}
	k := revKey(r.Tenant, r.App, r.Revision)
	if m := c.byRev[k]; m != nil {
		delete(m, r)
		if len(m) == 0 {
			delete(c.byRev, k)
		}
	}
}

// Revision returns this instance's current load on a revision's replicas.
func (c *Counter) Revision(tenant, app, rev string) Load {
	c.mu.Lock()
	defer c.mu.Unlock()
	var l Load
	for r := range c.byRev[revKey(tenant, app, rev)] {
		c.expire(r)
		l.Connections += c.conns[r]
		l.Reservations += len(c.resv[r])
	}
	return l
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
	if q := c.resv[r]; len(q) > 0 {
		c.resv[r] = q[:len(q)-1]
		if len(q) == 1 {
			delete(c.resv, r)
		}
	}
	c.unindex(r)
	c.mu.Unlock()
}

// Connect counts a new session on a replica, consuming the oldest reservation
// for it if there is one.
func (c *Counter) Connect(r apps.ReplicaID) {
	gatewayConnections.Inc()
	c.mu.Lock()
	c.conns[r]++
	c.index(r)
	c.expire(r)
	if q := c.resv[r]; len(q) > 0 {
		c.resv[r] = q[1:]
		if len(q) == 1 {
			delete(c.resv, r)
		}
	}
	c.mu.Unlock()
}

// Disconnect counts a session's end.
func (c *Counter) Disconnect(r apps.ReplicaID) {
	gatewayConnections.Dec()
	c.mu.Lock()
	if c.conns[r]--; c.conns[r] <= 0 {
		delete(c.conns, r)
	}
	c.expire(r)
	c.unindex(r)
	c.mu.Unlock()
}

// expire drops a replica's expired reservations; called with mu held.
func (c *Counter) expire(r apps.ReplicaID) {
	q := c.resv[r]
	now := c.now()
	i := 0
	for i < len(q) && !q[i].After(now) {
		i++
	}
	switch {
	case i == len(q):
		delete(c.resv, r)
		c.unindex(r)
	case i > 0:
		c.resv[r] = q[i:]
	}
}

// Local returns this instance's current load on a replica.
func (c *Counter) Local(r apps.ReplicaID) Load {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(r)
	return Load{Connections: c.conns[r], Reservations: len(c.resv[r])}
}

// Snapshot returns every non-zero local load.
func (c *Counter) Snapshot() map[apps.ReplicaID]Load {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[apps.ReplicaID]Load{}
	for r, n := range c.conns {
		out[r] = Load{Connections: n}
	}
	for r := range c.resv {
		c.expire(r)
	}
	for r, q := range c.resv {
		l := out[r]
		l.Reservations = len(q)
		out[r] = l
	}
	return out
}

// Connections returns the number of open sessions this instance holds.
func (c *Counter) Connections() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.conns {
		n += v
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
		replicaSessions.WithLabelValues(r.Tenant, r.App, r.Revision, r.Replica).Set(float64(l.Total()))
		if published[r] != l {
			b, _ := json.Marshal(l)
			ops = append(ops, clientv3.OpPut(c.prefix+r.String(), string(b), clientv3.WithLease(lease)))
		}
	}
	for r := range published {
		if _, ok := now[r]; !ok {
			replicaSessions.DeleteLabelValues(r.Tenant, r.App, r.Revision, r.Replica)
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
