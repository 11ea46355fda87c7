package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/bench/internal/rig"
	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
)

// TestGatewaysReturnToBaselineAfterSessionsClose is the baseline check in
// small (make bench runs it at 10000 sessions): 4000 sessions over two
// gateway processes, all closed, and each process's goroutines, fds and
// live heap must come back within their margins. At about 1.4 KB of live
// heap per session, 2000 per process grow it by ~3 MB, past the 1 MB
// allowed, so a leak of most of it would show.
func TestGatewaysReturnToBaselineAfterSessionsClose(t *testing.T) {
	if testing.Short() {
		t.Skip("baseline: skipped with -short")
	}
	platform, err := rig.Build(t.TempDir(), rig.PlatformPackage, "platform")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Sessions: 4000, Gateways: 2, Replicas: 2, Settle: 150 * time.Second,
		HeapMargin: 0.10, HeapSlack: 1 << 20, GoroutineSlack: 10, FDSlack: 10,
		Dir: t.TempDir(), Platform: platform, Testapp: build.Binary(t), Out: rig.TestLog(t)})
	require.NoError(t, err)
	assert.Empty(t, res.Failures)
	require.Len(t, res.Processes, 2)
	for _, p := range res.Processes {
		assert.Greater(t, p.Sessions, 1000, "%s carried its share of the sessions", p.Name)
	}
	assert.Positive(t, res.Returned, "every process returned to its baseline")
}

// TestMain removes the testapp build.Binary made for the run.
func TestMain(m *testing.M) {
	code := m.Run()
	build.Cleanup()
	os.Exit(code)
}
