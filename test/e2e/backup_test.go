package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBackupAndRestoreIntoAFreshDataDir: a snapshot of a running platform,
// restored into a new data dir, brings back apps, revisions, tenants, roles,
// quotas and events, and the platform started on it re-adopts the replicas
// that kept running.
func TestBackupAndRestoreIntoAFreshDataDir(t *testing.T) {
	f := New(t)
	f.Start()
	require.Equal(t, 201, f.Call("POST", "/apps", map[string]any{"name": "keep", "replicas": 1, "health_path": "/healthz"}, nil))
	rev := f.Deploy("keep", nil)
	f.WaitState("keep", rev, "active", 60*time.Second)
	pids := f.Running(rev)
	require.Len(t, pids, 1)
	admin := func(method, path, body string) int {
		t.Helper()
		req, _ := newRequest(method, "http://"+f.Addr+path, body, f.Token)
		return do(t, req)
	}
	require.Equal(t, 201, admin("POST", "/api/v1/tenants", `{"name":"acme","quota":{"max_apps":3,"max_replicas":7,"max_revisions":4,"max_cpu_millis":100,"max_memory_mb":64}}`))
	require.Equal(t, 200, admin("PUT", "/api/v1/tenants/acme/members/alice", `{"role":"deployer"}`))

	snap := filepath.Join(t.TempDir(), "snap.db")
	out, err := exec.Command(platformBinary(t), "backup", "--data-dir", f.DataDir, "--out", snap).CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "wrote "+snap)

	f.Stop() // replicas keep running
	fresh := filepath.Join(t.TempDir(), "restored")
	out, err = exec.Command(platformBinary(t), "restore", "--from", snap, "--data-dir", fresh).CombinedOutput()
	require.NoError(t, err, string(out))
	out, err = exec.Command(platformBinary(t), "restore", "--from", snap, "--data-dir", fresh).CombinedOutput()
	require.Error(t, err, "restoring over an existing data dir is refused")
	assert.Contains(t, string(out), "already exists")

	g := New(t)
	g.Marker = f.Marker
	g.DataDir = fresh
	g.Token = f.Token // the snapshot holds the signing key: old tokens stay valid
	g.Args = []string{"--replica-dir", filepath.Join(f.DataDir, "replicas")}
	g.Start()
	got := g.WaitState("keep", rev, "active", 60*time.Second)
	require.Len(t, got.Replicas, 1)
	assert.Equal(t, pids, g.Running(rev), "the running replica was re-adopted, not restarted")
	var evs struct{ Events []struct{ Type string } }
	require.Equal(t, 200, g.Call("GET", "/apps/keep/events", nil, &evs))
	assert.NotEmpty(t, evs.Events, "events restored")
	req, _ := newRequest("GET", "http://"+g.Addr+"/api/v1/tenants/acme/quota", "", g.Token)
	body := doBody(t, req)
	assert.Contains(t, body, `"max_replicas":7`, "quota restored")
	req, _ = newRequest("GET", "http://"+g.Addr+"/api/v1/tenants/acme/members", "", g.Token)
	assert.Contains(t, doBody(t, req), `"subject":"alice","role":"deployer"`, "roles restored")
	assert.True(t, strings.HasPrefix(got.State, "active"))
}
