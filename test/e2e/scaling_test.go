package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
	"github.com/discovery-platform/discovery/internal/testkit/platformtest"
	"github.com/discovery-platform/discovery/internal/testkit/proctest"
)

// session is one WebSocket player that keeps echoing until told to leave; an
// error before that is a session cut by the platform.
type session struct {
	c    *websocket.Conn
	stop chan struct{}
	done chan error
}

func open(t *testing.T, f *Framework, app string) (*session, error) {
	ep, code := f.GetEndpoint(app)
	if code != 200 {
		return nil, fmt.Errorf("get-endpoint answered %d", code)
	}
	c, _, err := websocket.DefaultDialer.Dial(ep.Endpoint+"ws", nil)
	if err != nil {
		return nil, err
	}
	s := &session{c: c, stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-s.stop:
				_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
				_ = c.Close()
				s.done <- nil
				return
			case <-tick.C:
			}
			msg := fmt.Sprint(i)
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				s.done <- err
				return
			}
			if _, got, err := c.ReadMessage(); err != nil || string(got) != msg {
				s.done <- fmt.Errorf("echo: %v (got %q)", err, got)
				return
			}
		}
	}()
	return s, nil
}

func (s *session) close() error {
	close(s.stop)
	return <-s.done
}

// readyReplicas counts the active revision's ready replicas.
func (f *Framework) readyReplicas(app string) int {
	n := 0
	for _, r := range f.Revisions(app) {
		if r.State != "active" {
			continue
		}
		for _, rep := range r.Replicas {
			if rep.State == "ready" && !rep.Stopping {
				n++
			}
		}
	}
	return n
}

func TestAutoscalerFollowsSessionsUpAndDown(t *testing.T) {
	if testing.Short() {
		t.Skip("ramp: skipped with -short")
	}
	f := New(t)
	f.Start()
	require.Equal(t, 201, f.Call("POST", "/apps", map[string]any{"name": "ramp", "health_path": "/healthz",
		"target_sessions": 50, "max_sessions": 60, "min_replicas": 1, "max_replicas": 8, "scale_down_delay": "1s"}, nil))
	rev := f.Deploy("ramp", nil)
	f.WaitState("ramp", rev, "active", 60*time.Second)

	var sessions []*session
	peak := 0
	for len(sessions) < 300 {
		// 25 players arrive at once; every one must get an endpoint and connect.
		var wg sync.WaitGroup
		var mu sync.Mutex
		var failures []error
		for i := 0; i < 25; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := open(t, f, "ramp")
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failures = append(failures, err)
					return
				}
				sessions = append(sessions, s)
			}()
		}
		wg.Wait()
		require.Empty(t, failures, "get-endpoint and connect never fail under max_replicas (at %d sessions)", len(sessions))
		peak = max(peak, f.readyReplicas("ramp"))
	}
	f.Eventually("replicas follow 300 sessions up (>= 6 for target 50)", 60*time.Second, func() bool {
		peak = max(peak, f.readyReplicas("ramp"))
		return peak >= 6
	})
	t.Logf("300 sessions: %d ready replicas", f.readyReplicas("ramp"))

	// Players leave in batches; nobody still playing is ever cut.
	for len(sessions) > 0 {
		n := min(50, len(sessions))
		for _, s := range sessions[:n] {
			require.NoError(t, s.close(), "a session ended by its own client closes cleanly")
		}
		sessions = sessions[n:]
		for _, s := range sessions {
			select {
			case err := <-s.done:
				t.Fatalf("a session was cut while %d remain: %v", len(sessions), err)
			default:
			}
		}
	}
	f.Eventually("replicas follow the sessions down to min_replicas", 60*time.Second, func() bool {
		return f.readyReplicas("ramp") == 1 && len(f.Running(rev)) == 1
	})
}

func TestScaleToZeroAndColdStartSharedByConcurrentCalls(t *testing.T) {
	f := New(t)
	f.Start()
	require.Equal(t, 201, f.Call("POST", "/apps", map[string]any{"name": "lazy", "health_path": "/healthz",
		"target_sessions": 100, "min_replicas": 0, "max_replicas": 4, "scale_down_delay": "1s"}, nil))
	rev := f.Deploy("lazy", nil)
	f.WaitState("lazy", rev, "active", 60*time.Second)
	f.Eventually("idle app reaches zero replicas", 30*time.Second, func() bool {
		return len(f.Revisions("lazy")[rev].Replicas) == 0 && len(f.Running(rev)) == 0
	})

	var ok atomic.Int64
	var wg sync.WaitGroup
	replicas := sync.Map{}
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ep, code := f.GetEndpoint("lazy")
			if code == 200 {
				ok.Add(1)
				replicas.Store(ep.Replica, true)
			} else {
				t.Errorf("cold get-endpoint answered %d", code)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int64(50), ok.Load(), "all 50 concurrent calls succeed")
	n := 0
	replicas.Range(func(any, any) bool { n++; return true })
	assert.Equal(t, 1, n, "they share one replica")
	assert.Len(t, f.Running(rev), 1, "exactly one replica was started")
}

func TestLeaderFailoverDuringRolloutOrphansNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("failover: skipped with -short")
	}
	etcd := etcdtest.Start(t)
	shared := platformtest.TempDir(t)
	marker := proctest.Marker(t)
	t.Cleanup(func() { proctest.KillAll(marker) })
	var insts []*Framework
	for i := 0; i < 3; i++ {
		f := New(t)
		f.Marker = marker
		f.Args = []string{"--etcd", etcd.Endpoint, "--replica-dir", filepath.Join(shared, "replicas"), "--instance", fmt.Sprintf("p%d", i)}
		if i > 0 {
			f.Token = insts[0].Token
		}
		f.Start()
		insts = append(insts, f)
	}
	leader := func() string {
		sess, err := concurrency.NewSession(etcd.Client)
		require.NoError(t, err)
		defer sess.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := concurrency.NewElection(sess, "/discovery/leader").Leader(ctx)
		if err != nil {
			return ""
		}
		return string(resp.Kvs[0].Value)
	}
	via := insts[1]
	require.Equal(t, 201, via.Call("POST", "/apps", map[string]any{"name": "ha", "replicas": 2, "health_path": "/healthz", "reconnect_grace": "1h"}, nil))
	v1 := via.Deploy("ha", nil)
	via.WaitState("ha", v1, "active", 60*time.Second)

	// Deploy v2 and kill the leader while v2's replicas come up.
	v2 := via.Deploy("ha", map[string]string{"HEALTH_DELAY": "1500ms"})
	via.Eventually("v2 replicas launched", 30*time.Second, func() bool { return len(via.Running(v2)) >= 1 })
	old := leader()
	require.True(t, strings.HasPrefix(old, "p"), "a leader is elected: %q", old)
	var victim *Framework
	for i, f := range insts {
		if fmt.Sprintf("p%d", i) == old {
			victim = f
		}
	}
	killedAt := time.Now()
	victim.Kill()
	var survivor *Framework
	for _, f := range insts {
		if f != victim {
			survivor = f
		}
	}
	survivor.Eventually("another instance leads", 30*time.Second, func() bool { l := leader(); return l != "" && l != old })
	t.Logf("new leader %s took over %s after the kill", leader(), time.Since(killedAt).Round(100*time.Millisecond))
	survivor.WaitState("ha", v2, "active", 60*time.Second)
	survivor.WaitState("ha", v1, "draining", 10*time.Second)
	survivor.Eventually("v2 fully ready", 30*time.Second, func() bool { return len(survivor.Running(v2)) == 2 })
	assertConverged(t, survivor, "ha")
	assert.Len(t, survivor.Running(v1), 2, "v1's replicas kept running")
}
