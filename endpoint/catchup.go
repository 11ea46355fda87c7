package endpoint

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/internal/etcdmirror"
)

// Instances learn of a new replica through their own watches, each a little
// late, and not by the same amount: after an etcd outage one instance's
// client may reconnect seconds after another's. So an endpoint handed out by
// one instance may reach a gateway whose table has not heard of its replica
// yet. Before the gateway calls a replica gone, it catches its table up with
// etcd: one linearizable read names the current revision, a progress request
// moves quiet watches to it, and the answer waits until every part of the
// table has applied it.

// catchUpSpacing is the least time between two catch-up rounds, so a flood of
// requests for unknown replicas costs etcd at most one read per spacing.
const catchUpSpacing = 20 * time.Millisecond

// catchUpRound is one catch-up shared by every request that arrived before
// it started.
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

// CatchUp returns once the table reflects every write etcd had committed when
// it was called, or with an error (etcd unreachable, ctx done). Concurrent
// callers share rounds; a caller never joins a round that started before it
// arrived, since that round's read may predate the write the caller needs.
func (r *Routes) CatchUp(ctx context.Context) error {
	r.catch.mu.Lock()
	round := r.catch.next
	if round == nil {
		round = &catchUpRound{done: make(chan struct{})}
		r.catch.next = round
		if !r.catch.running {
			r.startRound()
		}
	}
	r.catch.mu.Unlock()
	select {
	case <-round.done:
		return round.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// startRound runs the pending round; called with catch.mu held.
func (r *Routes) startRound() {
	round := r.catch.next
	r.catch.next, r.catch.running = nil, true
	wait := catchUpSpacing - time.Since(r.catch.last)
	go func() {
		if wait > 0 {
			time.Sleep(wait) // rate limit: rounds at most every catchUpSpacing
		}
		r.catch.mu.Lock()
		r.catch.last = time.Now()
		r.catch.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		round.err = r.catchUp(ctx)
		cancel()
		close(round.done)
		r.catch.mu.Lock()
		r.catch.running = false
		if r.catch.next != nil {
			r.startRound()
		}
		r.catch.mu.Unlock()
	}()
}

func (r *Routes) catchUp(ctx context.Context) error {
	resp, err := r.cli.Get(ctx, r.prefix+"/apps/", clientv3.WithCountOnly(), clientv3.WithLimit(1))
	if err != nil {
		return fmt.Errorf("catch up: %w", err)
	}
	target := resp.Header.Revision
	if r.behind(target) {
		// A quiet prefix sees no event at target: ask for progress.
		if err := r.cli.RequestProgress(etcdmirror.WatchContext(ctx)); err != nil {
			return fmt.Errorf("catch up: %w", err)
		}
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for i := 1; r.behind(target); i++ {
		select {
		case <-ctx.Done():
			return fmt.Errorf("catch up to etcd revision %d: %w", target, ctx.Err())
		case <-tick.C:
		}
		if i%50 == 0 {
			// A watch that was reconnecting missed the request: ask again.
			_ = r.cli.RequestProgress(etcdmirror.WatchContext(ctx))
		}
	}
	return nil
}

func (r *Routes) behind(rev int64) bool {
	for _, m := range r.mirrors {
		if m.Revision() < rev {
			return true
		}
	}
	return false
}
