// Package e2e holds end-to-end stories: the real platform binary, its embedded
// etcd, real replica processes, driven over its HTTP API the way a user would.
package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/internal/testkit/proctest"
)

// assertConverged checks the promise after a crash: every recorded replica of a
// serving revision runs exactly once, and nothing runs without a record.
func assertConverged(t *testing.T, f *Framework, app string) {
	t.Helper()
	revs := f.Revisions(app)
	recorded := map[string]string{}
	for _, r := range revs {
		for _, rep := range r.Replicas {
			recorded[rep.ID] = r.ID
		}
	}
	procs, dup := proctest.Replicas(f.Marker)
	assert.Empty(t, dup, "no replica started twice")
	for id, p := range procs {
		assert.Equal(t, recorded[id], p.Revision, "process %d (replica %s) has a record: no orphan", p.PID, id)
	}
	for id, rev := range recorded {
		if st := revs[rev].State; st == "active" || st == "draining" {
			_, ok := procs[id]
			assert.True(t, ok, "recorded replica %s of %s revision %s runs", id, st, rev)
		}
	}
}

func TestKillNineMidRolloutConverges(t *testing.T) {
	f := New(t)
	f.Start()
	require.Equal(t, 201, f.Call("POST", "/apps", map[string]any{"name": "arena", "replicas": 2, "health_path": "/healthz", "reconnect_grace": "1h"}, nil))
	v1 := f.Deploy("arena", map[string]string{"VERSION": "1"})
	f.WaitState("arena", v1, "active", 30*time.Second)
	v1pids := f.Running(v1)
	require.Len(t, v1pids, 2)

	// Each rollout is cut by a SIGKILL of the platform at a different moment.
	moments := []struct {
		name string
		when func(rev string) bool
	}{
		{"right after the deploy call", func(string) bool { return true }},
		{"with replicas launched, not yet healthy", func(rev string) bool { return len(f.Running(rev)) >= 1 }},
		{"right after activation", func(rev string) bool { return f.Revisions("arena")[rev].State == "active" }},
	}
	prev := v1
	for i, m := range moments {
		t.Run(m.name, func(t *testing.T) {
			before := f.Running(v1)
			rev := f.Deploy("arena", map[string]string{"VERSION": string(rune('2' + i)), "HEALTH_DELAY": "1500ms"})
			f.Eventually(m.name, 30*time.Second, func() bool { return m.when(rev) })
			launched := f.Running(rev)
			f.Kill()

			for id, pid := range before {
				assert.True(t, proctest.Alive(pid), "replica %s of the oldest revision survives the platform's death", id)
			}
			f.Start()
			got := f.WaitState("arena", rev, "active", 60*time.Second)
			assert.Len(t, got.Replicas, 2)
			f.WaitState("arena", prev, "draining", 10*time.Second)
			f.Eventually("replicas settle", 20*time.Second, func() bool {
				r := f.Revisions("arena")[rev]
				ready := 0
				for _, rep := range r.Replicas {
					if rep.State == "ready" {
						ready++
					}
				}
				return ready == 2 && len(f.Running(rev)) == 2
			})
			for id, pid := range launched {
				assert.Equal(t, pid, f.Running(rev)[id], "replica %s launched before the kill was adopted, not restarted", id)
			}
			assert.Equal(t, before, f.Running(v1), "no running replica was killed or restarted")
			assertConverged(t, f, "arena")
			prev = rev
		})
	}
	assert.Equal(t, v1pids, f.Running(v1), "v1 ran through three crashes of the platform")
}

func TestGracefulStopLeavesReplicasForTheNextStart(t *testing.T) {
	f := New(t)
	f.Start()
	require.Equal(t, 201, f.Call("POST", "/apps", map[string]any{"name": "chat", "replicas": 1}, nil))
	v1 := f.Deploy("chat", nil)
	f.WaitState("chat", v1, "active", 30*time.Second)
	pids := f.Running(v1)
	require.Len(t, pids, 1)

	f.Stop()
	for _, pid := range pids {
		assert.True(t, proctest.Alive(pid), "replicas outlive the control plane")
	}
	f.Start()
	f.WaitState("chat", v1, "active", 30*time.Second)
	assert.Equal(t, pids, f.Running(v1), "re-adopted, not restarted")
	assertConverged(t, f, "chat")

	// Deleting the app is how an operator stops its replicas for good.
	require.Equal(t, 202, f.Call("DELETE", "/apps/chat", nil, nil))
	f.Eventually("app gone", 30*time.Second, func() bool { return f.Call("GET", "/apps/chat", nil, nil) == 404 })
	assert.Empty(t, f.Running(v1))
}
