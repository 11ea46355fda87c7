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

// TestChaosShort is the chaos program in small: a minute of faults of every
// kind under 40 players and rollouts every few seconds, then the same goals
// as the long run (make chaos): no session dropped but those on a killed
// replica or gateway, no orphan, no double start, nothing stuck, no event lost.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: skipped with -short")
	}
	platform, err := rig.Build(t.TempDir(), rig.PlatformPackage, "platform")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sum, err := Run(ctx, Config{
		Iterations: 6, Duration: time.Minute, Clients: 40, Gateways: 1, GatewayProcs: 2,
		Gap: 3 * time.Second, RolloutEvery: 5 * time.Second, SessionLife: 10 * time.Second,
		Interval: 250 * time.Millisecond, Grace: 3 * time.Second, Converge: time.Minute,
		Dir: t.TempDir(), Platform: platform, Testapp: build.Binary(t), Out: rig.TestLog(t),
	})
	require.NoError(t, err)
	assert.Empty(t, sum.Failures(), "the goals of the chaos run")
	for _, kind := range []string{faultPlatform, faultGateway, faultReplica, faultEtcd, faultEtcdAndPlatform} {
		assert.Positive(t, sum.Kills[kind], "the run injected a %s fault", kind)
	}
	assert.Greater(t, sum.Sessions, int64(40), "players came and went")
	assert.Positive(t, sum.Rollouts, "rollouts happened during the faults")
	assert.Positive(t, sum.Converge, "the platform converged after the last fault")
}

// TestChaosNoticesSabotage proves the checks can fail: a sabotage fault
// kills the busiest replica behind their back and starts a replica process
// twice and one with no record, and the run must report each.
func TestChaosNoticesSabotage(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: skipped with -short")
	}
	platform, err := rig.Build(t.TempDir(), rig.PlatformPackage, "platform")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sum, err := Run(ctx, Config{
		Iterations: 1, Duration: time.Minute, Clients: 10, Gateways: 1, Faults: []string{faultSabotage},
		Gap: 2 * time.Second, RolloutEvery: time.Hour, SessionLife: time.Minute, Grace: 2 * time.Second, Converge: 5 * time.Second,
		Dir: t.TempDir(), Platform: platform, Testapp: build.Binary(t), Out: rig.TestLog(t),
	})
	require.NoError(t, err)
	assert.Positive(t, sum.Unexpected, "the sessions on the replica killed unrecorded count as dropped")
	assert.NotEmpty(t, sum.Doubles, "the replica id started twice is reported")
	assert.NotEmpty(t, sum.Orphans, "the process with no record is reported")
	assert.NotEmpty(t, sum.Stuck, "the platform cannot settle with strays running")
	assert.NotEmpty(t, sum.Failures())
}

// TestMain removes the testapp build.Binary made for the run.
func TestMain(m *testing.M) {
	code := m.Run()
	build.Cleanup()
	os.Exit(code)
}

// TestSummaryFailsOnAnUnexplainedConnect: a first connect that failed with
// no kill to explain it fails the run (finding 9: the summary counted them
// and passed).
func TestSummaryFailsOnAnUnexplainedConnect(t *testing.T) {
	ok := Summary{Iterations: 1, Messages: 10, ConnectExpected: 3}
	assert.Empty(t, ok.Failures(), "connects a kill explains are fine")
	bad := ok
	bad.ConnectUnexplained = 1
	assert.Equal(t, []string{"1 first connects failed with no kill to explain them"}, bad.Failures())
}
