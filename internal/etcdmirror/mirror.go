// Package etcdmirror follows every key under an etcd prefix (list, then
// watch from the listed revision; list again after a compaction or a lost
// watch): the informer pattern, small. It delivers either whole snapshots
// (OnChange: simple, for small prefixes) or the changes themselves (OnReset
// and OnEvents: for large ones, so a change costs its own keys only).
package etcdmirror

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Event is one key's change: its new value, or its deletion.
type Event struct {
	Key         string
	Value       []byte
	Deleted     bool
	ModRevision int64
}

// Mirror follows every key under an etcd prefix. Set OnChange for snapshots,
// or OnReset and OnEvents for changes; readers never see a half-applied
// batch either way (traefik's configuration watcher does the same).
type Mirror struct {
	Cli    *clientv3.Client
	Prefix string
	Log    *slog.Logger
	// OnChange gets the full key set after every batch of changes. It must not
	// keep the map: it is reused.
	OnChange func(kvs map[string][]byte)
	// OnReset gets every key after each (re)list: it replaces what the
	// reader had. OnEvents gets each batch of changes after it. The mirror
	// keeps no copy of the keys in this mode.
	OnReset  func(all []Event)
	OnEvents func(changes []Event)

	mu     sync.Mutex
	synced time.Time // last time the mirror was known to be current
	err    error
	// rev is the etcd revision the reader's state reflects: every write up to
	// it has been delivered (a progress notification advances it on a quiet
	// prefix).
	rev atomic.Int64
	// afterList runs between a list and its watch (tests: a compaction there).
	afterList func()
}

// Run mirrors until ctx ends.
func (m *Mirror) Run(ctx context.Context) {
	var kvs map[string][]byte
	if m.OnChange != nil {
		kvs = map[string][]byte{}
	}
	for ctx.Err() == nil {
		rev, err := m.list(ctx, kvs)
		if err != nil {
			m.setErr(err)
			if !sleep(ctx, time.Second) {
				return
			}
			continue
		}
		if m.afterList != nil {
			m.afterList()
		}
		m.watch(ctx, kvs, rev)
		if !sleep(ctx, 200*time.Millisecond) {
			return
		}
	}
}

func (m *Mirror) list(ctx context.Context, kvs map[string][]byte) (int64, error) {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := m.Cli.Get(lctx, m.Prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	if kvs != nil {
		clear(kvs)
		for _, kv := range resp.Kvs {
			kvs[string(kv.Key)] = kv.Value
		}
		m.OnChange(kvs)
	} else {
		all := make([]Event, len(resp.Kvs))
		for i, kv := range resp.Kvs {
			all[i] = Event{Key: string(kv.Key), Value: kv.Value, ModRevision: kv.ModRevision}
		}
		m.OnReset(all)
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
		if len(resp.Events) > 0 {
			m.deliver(kvs, resp.Events)
		}
		m.setSynced()
		// Only once the reader has the events is its state this current.
		m.rev.Store(resp.Header.Revision)
	}
}

func (m *Mirror) deliver(kvs map[string][]byte, evs []*clientv3.Event) {
	if kvs != nil {
		for _, ev := range evs {
			if ev.Type == clientv3.EventTypeDelete {
				delete(kvs, string(ev.Kv.Key))
			} else {
				kvs[string(ev.Kv.Key)] = ev.Kv.Value
			}
		}
		m.OnChange(kvs)
		return
	}
	out := make([]Event, len(evs))
	for i, ev := range evs {
		out[i] = Event{Key: string(ev.Kv.Key), Deleted: ev.Type == clientv3.EventTypeDelete, ModRevision: ev.Kv.ModRevision}
		if !out[i].Deleted {
			out[i].Value = ev.Kv.Value
		}
	}
	m.OnEvents(out)
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

// Revision is the etcd revision the reader's state reflects (0 before the
// first list).
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

// sleep waits d or until ctx ends; it reports whether d passed.
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
