package etcdmirror

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
)

// reader is what a mirror's user keeps: the keys, rebuilt from resets and
// events.
type reader struct {
	mu     sync.Mutex
	keys   map[string]string
	resets int
}

func (r *reader) reset(all []Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = map[string]string{}
	for _, e := range all {
		r.keys[e.Key] = string(e.Value)
	}
	r.resets++
}

func (r *reader) apply(evs []Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range evs {
		if e.Deleted {
			delete(r.keys, e.Key)
		} else {
			r.keys[e.Key] = string(e.Value)
		}
	}
}

func (r *reader) snapshot() (map[string]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.keys))
	for k, v := range r.keys {
		out[k] = v
	}
	return out, r.resets
}

// TestMirrorRelistsAfterACompaction: history the watch needs is compacted
// away between the list and the watch (changes and deletions included); the
// watch fails, the mirror lists again and its reader ends with exactly what
// etcd holds.
func TestMirrorRelistsAfterACompaction(t *testing.T) {
	e := etcdtest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range 5 {
		_, err := e.Client.Put(ctx, fmt.Sprintf("/p/k%d", i), "v1")
		require.NoError(t, err)
	}
	r := &reader{}
	var once sync.Once
	m := &Mirror{Cli: e.Client, Prefix: "/p/", OnReset: r.reset, OnEvents: r.apply}
	m.afterList = func() {
		once.Do(func() {
			_, err := e.Client.Put(ctx, "/p/k0", "v2")
			require.NoError(t, err)
			_, err = e.Client.Delete(ctx, "/p/k1")
			require.NoError(t, err)
			resp, err := e.Client.Put(ctx, "/p/new", "v1")
			require.NoError(t, err)
			_, err = e.Client.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical())
			require.NoError(t, err)
		})
	}
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	want := map[string]string{"/p/k0": "v2", "/p/k2": "v1", "/p/k3": "v1", "/p/k4": "v1", "/p/new": "v1"}
	require.Eventually(t, func() bool { got, _ := r.snapshot(); return assert.ObjectsAreEqual(want, got) }, 10*time.Second, 5*time.Millisecond)
	_, resets := r.snapshot()
	assert.Equal(t, 2, resets, "listed once, then again after the watch found its history compacted")
	_, err := m.Status()
	assert.NoError(t, err, "the mirror recovered")

	// And it follows changes after the relist.
	_, err = e.Client.Delete(ctx, "/p/new")
	require.NoError(t, err)
	delete(want, "/p/new")
	require.Eventually(t, func() bool { got, _ := r.snapshot(); return assert.ObjectsAreEqual(want, got) }, 10*time.Second, 5*time.Millisecond)
}

// TestMirrorSnapshotModeHandsWholeKeySets: OnChange gets every key after
// each change.
func TestMirrorSnapshotModeHandsWholeKeySets(t *testing.T) {
	e := etcdtest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var last map[string][]byte
	m := &Mirror{Cli: e.Client, Prefix: "/s/", OnChange: func(kvs map[string][]byte) {
		mu.Lock()
		last = make(map[string][]byte, len(kvs))
		for k, v := range kvs {
			last[k] = v
		}
		mu.Unlock()
	}}
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	_, err := e.Client.Put(ctx, "/s/a", "1")
	require.NoError(t, err)
	_, err = e.Client.Put(ctx, "/s/b", "2")
	require.NoError(t, err)
	_, err = e.Client.Delete(ctx, "/s/a")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(last) == 1 && string(last["/s/b"]) == "2"
	}, 10*time.Second, 5*time.Millisecond)
	assert.Positive(t, m.Revision())
}
