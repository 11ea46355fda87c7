// Package runtimetest is the contract every deployer.Runtime keeps, as one
// test suite run against each implementation (deployer/process on local
// processes, deployer/kubernetes on a real cluster), the way etcd's
// tests/common runs one suite over several cluster kinds. The replicas are
// the project's real test server (internal/testkit/testapp).
package runtimetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/deployer"
)

// Suite describes the runtime under test.
type Suite struct {
	// Runtime opens the runtime under test; each test calls it once and the
	// suite never closes it (register that with t.Cleanup).
	Runtime func(t *testing.T) deployer.Runtime
	// Spec is a ReplicaSpec that runs the testapp as id with env (a command
	// on the process runtime, an image mapped to it on Kubernetes).
	Spec func(t *testing.T, id apps.ReplicaID, env map[string]string) deployer.ReplicaSpec
	// Tenant the suite's replicas belong to; each test uses its own app.
	Tenant string
	// Within bounds every wait (a pod takes longer than a process).
	Within time.Duration
	// run tells one Run's replicas from another's (go test -count=N), whose
	// pods may still be terminating under the same names.
	run string
}

// Run runs the contract.
func Run(t *testing.T, s Suite) {
	if s.Within == 0 {
		s.Within = 20 * time.Second
	}
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	s.run = hex.EncodeToString(b)
	for _, tc := range []struct {
		name string
		test func(*testing.T, Suite)
	}{
		{"StartBecomesReadyAndServes", testReady},
		{"StartIsIdempotent", testIdempotent},
		{"UnhealthyReplicaIsNotReady", testUnhealthy},
		{"StopIsGraceful", testStop},
		{"CrashIsReportedWithItsOutput", testCrash},
		{"RemoveRefusesARunningReplica", testRemoveRunning},
		{"ListIsPerApp", testListPerApp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, s)
		})
	}
}

func (s Suite) id(t *testing.T, replica string) apps.ReplicaID {
	// An app per test, so tests run side by side.
	app := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	app = app[strings.LastIndex(app, "-")+1:]
	if len(app) > 24 {
		app = app[:24]
	}
	app += "-" + s.run
	return apps.ReplicaID{Tenant: s.Tenant, App: app, Revision: "9d00cc18", Replica: replica}
}

func find(t *testing.T, rt deployer.Runtime, id apps.ReplicaID) (deployer.Observed, bool) {
	list, err := rt.List(t.Context(), id.Tenant, id.App)
	require.NoError(t, err)
	for _, o := range list {
		if o.ReplicaID == id {
			return o, true
		}
	}
	return deployer.Observed{}, false
}

// wait polls List until cond holds for the replica (or its absence).
func (s Suite) wait(t *testing.T, rt deployer.Runtime, id apps.ReplicaID, what string, cond func(deployer.Observed, bool) bool) deployer.Observed {
	t.Helper()
	deadline := time.Now().Add(s.Within)
	for {
		o, ok := find(t, rt, id)
		if cond(o, ok) {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s: not %s within %s (last seen: %+v, listed %v)", id.Replica, what, s.Within, o, ok)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

func (s Suite) waitState(t *testing.T, rt deployer.Runtime, id apps.ReplicaID, want apps.ReplicaState) deployer.Observed {
	t.Helper()
	return s.wait(t, rt, id, string(want), func(o deployer.Observed, ok bool) bool { return ok && o.State == want })
}

func (s Suite) waitLog(t *testing.T, rt deployer.Runtime, id apps.ReplicaID, want string) {
	t.Helper()
	deadline := time.Now().Add(s.Within)
	for {
		b, err := rt.Logs(t.Context(), id, 64<<10)
		if err == nil && strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s: log never showed %q (err %v):\n%s", id.Replica, want, err, b)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

func get(t *testing.T, url string) (string, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

func testReady(t *testing.T, s Suite) {
	rt := s.Runtime(t)
	id := s.id(t, "r1")
	spec := s.Spec(t, id, map[string]string{"VERSION": "0.2"})
	spec.HealthPath = "/healthz"
	require.NoError(t, rt.Start(t.Context(), spec))
	o := s.waitState(t, rt, id, apps.ReplicaReady)
	require.NotEmpty(t, o.Address)
	assert.WithinDuration(t, time.Now(), o.StartedAt, 2*s.Within)

	// The replica sees its identity and the revision's env, and it serves
	// at the address the runtime reports.
	body, err := get(t, "http://"+o.Address+"/")
	require.NoError(t, err)
	var got struct{ Revision, Replica, Version string }
	require.NoError(t, json.Unmarshal([]byte(body), &got), body)
	assert.Equal(t, []string{"9d00cc18", "r1", "0.2"}, []string{got.Revision, got.Replica, got.Version})
	s.waitLog(t, rt, id, "listening on "+o.Address)

	// A change of state is announced for the app.
	deadline := time.After(s.Within)
	for {
		select {
		case ref := <-rt.Changes():
			if ref == (apps.Ref{Tenant: id.Tenant, App: id.App}) {
				require.NoError(t, rt.Stop(t.Context(), id, time.Second))
				return
			}
		case <-deadline:
			t.Fatal("no change announced for the app")
		}
	}
}

func testIdempotent(t *testing.T, s Suite) {
	rt := s.Runtime(t)
	id := s.id(t, "r1")
	spec := s.Spec(t, id, nil)
	require.NoError(t, rt.Start(t.Context(), spec))
	first := s.waitState(t, rt, id, apps.ReplicaReady)
	require.NoError(t, rt.Start(t.Context(), spec), "a second Start of a running id is no error")
	list, err := rt.List(t.Context(), id.Tenant, id.App)
	require.NoError(t, err)
	assert.Len(t, list, 1, "one replica, not two")
	again, _ := find(t, rt, id)
	assert.Equal(t, first.Address, again.Address, "the running replica was left alone")
	require.NoError(t, rt.Stop(t.Context(), id, time.Second))
}

func testUnhealthy(t *testing.T, s Suite) {
	rt := s.Runtime(t)
	sick, well := s.id(t, "sick"), s.id(t, "well")
	sickSpec := s.Spec(t, sick, map[string]string{"NEVER_HEALTHY": "1"})
	sickSpec.HealthPath = "/healthz"
	wellSpec := s.Spec(t, well, nil)
	wellSpec.HealthPath = "/healthz"
	require.NoError(t, rt.Start(t.Context(), sickSpec))
	s.waitLog(t, rt, sick, "listening on")
	require.NoError(t, rt.Start(t.Context(), wellSpec))
	// The healthy one, started after the sick one was already listening,
	// gets ready; the sick one never does.
	s.waitState(t, rt, well, apps.ReplicaReady)
	o, ok := find(t, rt, sick)
	require.True(t, ok)
	assert.Equal(t, apps.ReplicaStarting, o.State, "a replica failing its health check is not ready")
	require.NoError(t, rt.Stop(t.Context(), sick, time.Second))
	require.NoError(t, rt.Stop(t.Context(), well, time.Second))
}

func testStop(t *testing.T, s Suite) {
	rt := s.Runtime(t)
	id := s.id(t, "r1")
	require.NoError(t, rt.Start(t.Context(), s.Spec(t, id, map[string]string{"SHUTDOWN_DELAY": "300ms"})))
	s.waitState(t, rt, id, apps.ReplicaReady)
	require.NoError(t, rt.Stop(t.Context(), id, 10*time.Second))
	require.NoError(t, rt.Stop(t.Context(), id, 10*time.Second), "stopping twice is no error")
	// SIGTERM reached the app, which finished on its own: the replica ends
	// (listed as exited until removed, or gone), never killed.
	s.waitLog(t, rt, id, "got SIGTERM")
	o := s.wait(t, rt, id, "exited or gone", func(o deployer.Observed, ok bool) bool { return !ok || o.State == apps.ReplicaExited })
	if o.State == apps.ReplicaExited {
		assert.NotContains(t, o.Exit, "killed")
		require.NoError(t, rt.Remove(t.Context(), id))
	}
	// A runtime that observes through a watch may list it a moment longer.
	s.wait(t, rt, id, "removed", func(_ deployer.Observed, ok bool) bool { return !ok })
	require.NoError(t, rt.Stop(t.Context(), id, time.Second), "stopping an unknown replica is no error")
}

func testCrash(t *testing.T, s Suite) {
	rt := s.Runtime(t)
	id := s.id(t, "r1")
	require.NoError(t, rt.Start(t.Context(), s.Spec(t, id, map[string]string{"FAIL_START": "1"})))
	o := s.waitState(t, rt, id, apps.ReplicaExited)
	assert.Equal(t, "exit status 3", o.Exit)
	s.waitLog(t, rt, id, "failing on purpose")
	require.NoError(t, rt.Remove(t.Context(), id))
	s.wait(t, rt, id, "removed", func(_ deployer.Observed, ok bool) bool { return !ok })
}

func testRemoveRunning(t *testing.T, s Suite) {
	rt := s.Runtime(t)
	id := s.id(t, "r1")
	require.NoError(t, rt.Start(t.Context(), s.Spec(t, id, nil)))
	s.waitState(t, rt, id, apps.ReplicaReady)
	require.Error(t, rt.Remove(t.Context(), id), "a running replica cannot be removed")
	o, ok := find(t, rt, id)
	require.True(t, ok)
	assert.Equal(t, apps.ReplicaReady, o.State)
	require.NoError(t, rt.Stop(t.Context(), id, time.Second))
}

func testListPerApp(t *testing.T, s Suite) {
	rt := s.Runtime(t)
	a := s.id(t, "r1")
	b := a
	b.App, b.Replica = a.App+"-other", "r2"
	require.NoError(t, rt.Start(t.Context(), s.Spec(t, a, nil)))
	require.NoError(t, rt.Start(t.Context(), s.Spec(t, b, nil)))
	s.waitState(t, rt, a, apps.ReplicaReady)
	s.waitState(t, rt, b, apps.ReplicaReady)
	list, err := rt.List(t.Context(), a.Tenant, a.App)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, a, list[0].ReplicaID)
	require.NoError(t, rt.Stop(t.Context(), a, time.Second))
	require.NoError(t, rt.Stop(t.Context(), b, time.Second))
}
