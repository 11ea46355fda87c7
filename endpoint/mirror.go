package endpoint

import (
	"context"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// mirror keeps an in-memory copy of every key under an etcd prefix: list once,
// then watch from the listed revision; after a compaction or a lost watch it
// lists again. Readers get whole snapshots through onChange, never a
// half-applied update (traefik's configuration watcher does the same).
type mirror struct {
	cli    *clientv3.Client
	prefix string
	log    *slog.Logger
	// onChange gets the full key set after every batch of changes. It must not
	// keep the map: it is reused.
	onChange func(kvs map[string][]byte)

	mu     sync.Mutex
	synced time.Time // last time the mirror was known to be current
	err    error
}

// run mirrors until ctx ends.
func (m *mirror) run(ctx context.Context) {
	kvs := map[string][]byte{}
	for ctx.Err() == nil {
		rev, err := m.list(ctx, kvs)
		if err != nil {
			m.setErr(err)
			if !sleep(ctx, time.Second) {
				return
			}
			continue
		}
		m.onChange(kvs)
		m.watch(ctx, kvs, rev)
		if !sleep(ctx, 200*time.Millisecond) {
			return
		}
	}
}

func (m *mirror) list(ctx context.Context, kvs map[string][]byte) (int64, error) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := m.cli.Get(lctx, m.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	clear(kvs)
	for _, kv := range resp.Kvs {
		kvs[string(kv.Key)] = kv.Value
	}
	m.setSynced()
	return resp.Header.Revision, nil
}

func (m *mirror) watch(ctx context.Context, kvs map[string][]byte, rev int64) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := m.cli.Watch(wctx, m.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
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
			m.onChange(kvs)
		}
	}
}

func (m *mirror) setSynced() {
	m.mu.Lock()
	m.synced, m.err = time.Now(), nil
	m.mu.Unlock()
}

func (m *mirror) setErr(err error) {
	m.mu.Lock()
	m.err = err
	m.mu.Unlock()
	if m.log != nil {
		m.log.Warn("etcd mirror interrupted; will relist", "prefix", m.prefix, "err", err)
	}
}

// status reports when the mirror was last known current, and its last error.
func (m *mirror) status() (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.synced, m.err
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
