// Package etcdhealth watches whether etcd answers, so the parts that serve from
// memory (get-endpoint, the gateway) can say how stale they may be and the
// parts that write can refuse at once instead of hanging.
package etcdhealth

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var etcdUp = promauto.NewGauge(prometheus.GaugeOpts{
	Name: "discovery_etcd_up", Help: "1 while this instance reaches etcd, 0 during an outage.",
})

// Health probes etcd with a small read every interval.
type Health struct {
	cli      *clientv3.Client
	key      string
	interval time.Duration
	log      *slog.Logger
	// OnRecovered, when set before Run, records an outage once etcd answers
	// again (during it nothing could be written): from the last answer before
	// it to the first after. An error retries it at the next probe, for up
	// to ten minutes.
	OnRecovered func(ctx context.Context, start, end time.Time) error
	pending     []Outage // outages not yet recorded; only Run touches it

	mu     sync.Mutex
	lastOK time.Time
	down   time.Time // when the current outage began; zero while up
}

// New returns a prober reading key (any key; absence is fine).
func New(cli *clientv3.Client, key string, interval time.Duration, log *slog.Logger) *Health {
	if interval <= 0 {
		interval = time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	etcdUp.Set(1)
	return &Health{cli: cli, key: key, interval: interval, log: log, lastOK: time.Now()}
}

// Outage is one stretch of etcd not answering.
type Outage struct{ Start, End time.Time }

// Run probes until ctx ends.
func (h *Health) Run(ctx context.Context) {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, h.interval)
		_, err := h.cli.Get(pctx, h.key, clientv3.WithCountOnly(), clientv3.WithSerializable())
		cancel()
		if ctx.Err() != nil {
			return
		}
		if o, ok := h.record(err); ok {
			h.pending = append(h.pending, o)
		}
		if err == nil {
			h.flush(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// flush records the outages etcd has come back from.
func (h *Health) flush(ctx context.Context) {
	if h.OnRecovered == nil {
		h.pending = nil
		return
	}
	var keep []Outage
	for _, o := range h.pending {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := h.OnRecovered(rctx, o.Start, o.End)
		cancel()
		if err != nil && ctx.Err() == nil && time.Since(o.End) < 10*time.Minute {
			h.log.Warn("recording the etcd outage failed; retrying", "err", err)
			keep = append(keep, o)
		}
	}
	h.pending = keep
}

// record notes a probe's outcome; it returns the outage this one ended.
func (h *Health) record(err error) (Outage, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	var ended Outage
	ok := false
	switch {
	case err == nil && !h.down.IsZero():
		h.log.Info("etcd reachable again", "outage", now.Sub(h.down).Round(time.Millisecond))
		ended, ok = Outage{Start: h.down, End: now}, true
		h.down = time.Time{}
		etcdUp.Set(1)
	case err != nil && h.down.IsZero():
		h.down = h.lastOK
		h.log.Warn("etcd unreachable: serving open sessions and reconnects from memory, refusing writes", "err", err)
		etcdUp.Set(0)
	}
	if err == nil {
		h.lastOK = now
	}
	return ended, ok
}

// Down reports whether etcd is unreachable now, and since when.
func (h *Health) Down() (bool, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.down.IsZero(), h.down
}

// Stale is how long ago etcd last answered, 0 while it answers.
func (h *Health) Stale() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down.IsZero() {
		return 0
	}
	return time.Since(h.lastOK)
}
