package apps

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/internal/etcdmirror"
	"github.com/discovery-platform/discovery/internal/storeerr"
)

// Feed follows the store's app, revision and replica records for one
// handler: a list, then a watch per kind, decoding only the records that
// changed. A record that cannot be decoded is logged and skipped, never
// handed on half-read.
type Feed struct {
	s       *Store
	h       FeedHandler
	log     *slog.Logger
	mirrors []*etcdmirror.Mirror
	// decoded counts records decoded (tests: a change costs its own records).
	decoded atomic.Int64
	catch   catchUps
}

// NewFeed returns a feed of the store's records to h; Run runs it.
func (s *Store) NewFeed(h FeedHandler, log *slog.Logger) *Feed {
	if log == nil {
		log = slog.Default()
	}
	f := &Feed{s: s, h: h, log: log}
	for _, kind := range []RecordKind{KindApp, KindRevision, KindReplica} {
		f.mirrors = append(f.mirrors, &etcdmirror.Mirror{Cli: s.cli, Prefix: s.kindPrefix(kindDir[kind]), Log: log,
			OnReset:  func(all []etcdmirror.Event) { h.Reset(kind, f.decode(kind, all)) },
			OnEvents: func(evs []etcdmirror.Event) { h.Apply(kind, f.decode(kind, evs)) },
		})
	}
	return f
}

var kindDir = map[RecordKind]string{KindApp: "apps", KindRevision: "revisions", KindReplica: "replicas"}

// Run follows the records until ctx ends.
func (f *Feed) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, m := range f.mirrors {
		wg.Go(func() { m.Run(ctx) })
	}
	wg.Wait()
}

// Decoded is how many records the feed has decoded so far.
func (f *Feed) Decoded() int64 { return f.decoded.Load() }

// Synced reports the oldest time at which every kind was known to be
// current (zero until all have loaded once).
func (f *Feed) Synced() time.Time {
	var oldest time.Time
	for i, m := range f.mirrors {
		t, _ := m.Status()
		if i == 0 || t.Before(oldest) {
			oldest = t
		}
	}
	return oldest
}

// Revision is the etcd revision every kind has been delivered up to.
func (f *Feed) Revision() int64 {
	var least int64
	for i, m := range f.mirrors {
		if r := m.Revision(); i == 0 || r < least {
			least = r
		}
	}
	return least
}

func (f *Feed) decode(kind RecordKind, evs []etcdmirror.Event) []Record {
	out := make([]Record, 0, len(evs))
	p := f.s.kindPrefix(kindDir[kind])
	for _, ev := range evs {
		rec, ok := recordOf(kind, strings.TrimPrefix(ev.Key, p))
		if !ok {
			f.log.Warn("ignoring a key of unexpected shape", "key", ev.Key)
			continue
		}
		if ev.Deleted {
			rec.Deleted = true
			out = append(out, rec)
			continue
		}
		f.decoded.Add(1)
		var err error
		switch kind {
		case KindApp:
			var a App
			if a, err = decodeApp(ev.Value, ev.ModRevision); err == nil {
				rec.App = &a
			}
		case KindRevision:
			var r Revision
			if r, err = decodeRevision(ev.Value, ev.ModRevision); err == nil {
				rec.Rev = &r
			}
		case KindReplica:
			var r Replica
			if r, err = decodeReplica(ev.Value, ev.ModRevision); err == nil {
				rec.ReplicaRec = &r
			}
		}
		if err != nil {
			f.log.Error("a record in the store cannot be decoded; skipping it", "key", ev.Key, "err", err)
			continue
		}
		out = append(out, rec)
	}
	return out
}

// recordOf names a record from its key below its kind's prefix:
// {tenant}/{app}, {tenant}/{app}/{revision}, {tenant}/{app}/{revision}/{replica}.
func recordOf(kind RecordKind, rest string) (Record, bool) {
	parts := strings.Split(rest, "/")
	if len(parts) != 2+int(kind) {
		return Record{}, false
	}
	rec := Record{Kind: kind, Ref: Ref{Tenant: parts[0], App: parts[1]}}
	if kind >= KindRevision {
		rec.Revision = parts[2]
	}
	if kind == KindReplica {
		rec.Replica = parts[3]
	}
	return rec, true
}

// WaitFor returns once the feed has delivered every write up to etcd
// revision rev (a writer's own write: read-your-writes without asking etcd).
func (f *Feed) WaitFor(ctx context.Context, rev int64) error {
	if f.Revision() >= rev {
		return nil
	}
	// A kind the write did not touch sees no event at rev: a progress
	// notification moves it there (the watch stream answers it, no read).
	_ = f.s.cli.RequestProgress(etcdmirror.WatchContext(ctx))
	tick := time.NewTicker(500 * time.Microsecond)
	defer tick.Stop()
	for i := 1; f.Revision() < rev; i++ {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for etcd revision %d: %w", rev, ctx.Err())
		case <-tick.C:
		}
		if i%40 == 0 {
			// A watch that was reconnecting missed the request: ask again.
			_ = f.s.cli.RequestProgress(etcdmirror.WatchContext(ctx))
		}
	}
	return nil
}

// CatchUp returns once the feed has delivered every write etcd had committed
// when it was called, or with an error (etcd unreachable, ctx done).
// Concurrent callers share rounds; a caller never joins a round that started
// before it arrived, since that round's read may predate the write it needs.
func (f *Feed) CatchUp(ctx context.Context) error {
	return f.catch.wait(ctx, f.catchUp)
}

func (f *Feed) catchUp(ctx context.Context) error {
	resp, err := f.s.kv.Get(ctx, f.s.kindPrefix("apps"), clientv3.WithCountOnly(), clientv3.WithLimit(1))
	if err != nil {
		return fmt.Errorf("catch up: %w", err)
	}
	target := resp.Header.Revision
	if f.Revision() < target {
		// A quiet prefix sees no event at target: ask for progress.
		if err := f.s.cli.RequestProgress(etcdmirror.WatchContext(ctx)); err != nil {
			return fmt.Errorf("catch up: %w", storeerr.From(err))
		}
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for i := 1; f.Revision() < target; i++ {
		select {
		case <-ctx.Done():
			return fmt.Errorf("catch up to etcd revision %d: %w", target, ctx.Err())
		case <-tick.C:
		}
		if i%50 == 0 {
			// A watch that was reconnecting missed the request: ask again.
			_ = f.s.cli.RequestProgress(etcdmirror.WatchContext(ctx))
		}
	}
	return nil
}

// catchUpSpacing is the least time between two catch-up rounds, so a flood
// of callers costs etcd at most one read per spacing.
const catchUpSpacing = 20 * time.Millisecond

// catchUpRound is one catch-up shared by every caller that arrived before it
// started.
type catchUpRound struct {
	done chan struct{}
	err  error
}

type catchUps struct {
	mu      sync.Mutex
	running bool
	next    *catchUpRound // the round that starts when the running one ends
	last    time.Time     // when the last round started
}

func (c *catchUps) wait(ctx context.Context, run func(context.Context) error) error {
	c.mu.Lock()
	round := c.next
	if round == nil {
		round = &catchUpRound{done: make(chan struct{})}
		c.next = round
		if !c.running {
			c.start(run)
		}
	}
	c.mu.Unlock()
	select {
	case <-round.done:
		return round.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// start runs the pending round; called with mu held.
func (c *catchUps) start(run func(context.Context) error) {
	round := c.next
	c.next, c.running = nil, true
	wait := catchUpSpacing - time.Since(c.last)
	go func() {
		if wait > 0 {
			time.Sleep(wait) // rate limit: rounds at most every catchUpSpacing
		}
		c.mu.Lock()
		c.last = time.Now()
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		round.err = run(ctx)
		cancel()
		close(round.done)
		c.mu.Lock()
		c.running = false
		if c.next != nil {
			c.start(run)
		}
		c.mu.Unlock()
	}()
}
