// Package etcdmirror keeps an in-memory copy of every key under an etcd prefix
// (list, then watch; relist after a compaction or a lost watch) and hands whole
// snapshots to a callback: the informer pattern, small.
package etcdmirror

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Mirror keeps an in-memory copy of every key under an etcd prefix: list once,
// then watch from the listed revision; after a compaction or a lost watch it
// lists again. Readers get whole snapshots through onChange, never a
// half-applied update (traefik's configuration watcher does the same).
type Mirror struct {
	Cli    *clientv3.Client
	Prefix string
	Log    *slog.Logger
	// OnChange gets the full key set after every batch of changes. It must not
	// keep the map: it is reused.
	OnChange func(kvs map[string][]byte)

	mu     sync.Mutex
	synced time.Time // last time the mirror was known to be current
	err    error
	// rev is the etcd revision the snapshot reflects: every write up to it
	// has been applied (a progress notification advances it on a quiet prefix).
	rev atomic.Int64
}

// Run mirrors until ctx ends.
func (m *Mirror) Run(ctx context.Context) {
	kvs := map[string][]byte{}
	for ctx.Err() == nil {
		rev, err := m.list(ctx, kvs)
		if err != nil {
			m.setErr(err)
			if !Sleep(ctx, time.Second) {
				return
			}
			continue
		}
		m.OnChange(kvs)
		m.watch(ctx, kvs, rev)
		if !Sleep(ctx, 200*time.Millisecond) {
			return
		}
	}
}

func (m *Mirror) list(ctx context.Context, kvs map[string][]byte) (int64, error) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := m.Cli.Get(lctx, m.Prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	clear(kvs)
	for _, kv := range resp.Kvs {
		kvs[string(kv.Key)] = kv.Value
	}
	m.setSynced()
	m.rev.Store(resp.Header.Revision)
	return resp.Header.Revision, nil
}

func (m *Mirror) watch(ctx context.Context, kvs map[string][]byte, rev int64) {
	wctx, cancel := context.WithCancel(WatchContext(ctx))
	defer cancel()
	wch := m.Cli.Watch(wctx, m.Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
	for resp := range wch {
		if err := resp.Err(); err != nil {
			m.setErr(err)
			return
		}
		for _, ev := range resp.Events {
			if ev.Type == clientv3.EventTypeDelete {
				delete(kvs, string(ev.Kv.Key))
			} else {
				kvs[string(ev.Kv.Key)] = ev.Kv.Value
			}
		}
		m.setSynced()
		if len(resp.Events) > 0 {
			m.OnChange(kvs)
		}
		// Only once OnChange has the events is the snapshot this current.
		m.rev.Store(resp.Header.Revision)
	}
}

func (m *Mirror) setSynced() {
	m.mu.Lock()
	m.synced, m.err = time.Now(), nil
	m.mu.Unlock()
}

func (m *Mirror) setErr(err error) {
	m.mu.Lock()
	m.err = err
	m.mu.Unlock()
	if m.Log != nil {
		m.Log.Warn("etcd mirror interrupted; will relist", "prefix", m.Prefix, "err", err)
	}
}

// Revision is the etcd revision the last snapshot handed to OnChange
// reflects (0 before the first list).
func (m *Mirror) Revision() int64 { return m.rev.Load() }

// WatchContext is the context the mirror's watch runs under (on ctx): a
// progress request (clientv3.Watcher.RequestProgress) must carry the same
// metadata to reach the mirror's watch stream.
func WatchContext(ctx context.Context) context.Context { return clientv3.WithRequireLeader(ctx) }

// Status reports when the mirror was last known current, and its last error.
func (m *Mirror) Status() (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.synced, m.err
}

// Sleep waits d or until ctx ends; it reports whether d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
