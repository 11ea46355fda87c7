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
// small (make bench runs it at 10000 sessions), over ws:// and over wss://:
// 4000 sessions over two gateway processes, all closed, and each process's
// goroutines, fds and live heap must come back within their margins. At
// about 1.2-1.6 KB of live heap per ws session (4.5 per wss session), 2000
// per process grow it by ~3 MB or more, past the 1 MB allowed, so a leak of
// most of it would show. An idle wss session must also stay far below the
// 8-9.5 KB of live heap it took with a goroutine per direction or with
// crypto/tls's idle read buffers kept.
func TestGatewaysReturnToBaselineAfterSessionsClose(t *testing.T) {
	if testing.Short() {
		t.Skip("baseline: skipped with -short")
	}
	platform, err := rig.Build(t.TempDir(), rig.PlatformPackage, "platform")
	require.NoError(t, err)
	testapp := build.Binary(t)
	for _, tls := range []bool{false, true} {
		t.Run(Config{TLS: tls}.scheme(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			res, err := Run(ctx, Config{Sessions: 4000, Gateways: 2, Replicas: 2, Settle: 150 * time.Second,
				HeapMargin: 0.10, HeapSlack: 1 << 20, GoroutineSlack: 10, FDSlack: 10, TLS: tls,
				Dir: t.TempDir(), Platform: platform, Testapp: testapp, Out: rig.TestLog(t)})
			require.NoError(t, err)
			assert.Empty(t, res.Failures)
			require.Len(t, res.Processes, 2)
			for _, p := range res.Processes {
				assert.Greater(t, p.Sessions, 1000, "%s carried its share of the sessions", p.Name)
			}
			assert.Positive(t, res.Returned, "every process returned to its baseline")
			rss, live := res.PerSession()
			t.Logf("per idle %s session: RSS %.2f KB, live heap %.2f KB", Config{TLS: tls}.scheme(), rss, live)
			if tls {
				assert.Less(t, live, 7.0, "KB of live heap per idle wss session")
			}
		})
	}
}

// TestMain removes the testapp build.Binary made for the run.
func TestMain(m *testing.M) {
	code := m.Run()
	build.Cleanup()
	os.Exit(code)
}
