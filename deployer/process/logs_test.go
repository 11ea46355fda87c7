package process

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/deployer/process/supervisor"
)

// TestLogsStayBoundedUnderFlood: a replica writing as fast as it can never
// has more than twice LogLimit on disk, at any moment, and Logs shows its
// latest output in order across the rotation.
func TestLogsStayBoundedUnderFlood(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	const last = 10000000 // ~79 MB of numbered lines: over a thousand rotations
	cfg := testConfig(t)
	cfg.LogLimit = limit
	rt := open(t, cfg)
	spec := shell("flood", "seq 1 "+strconv.Itoa(last)+"; echo done; exec sleep 600")
	require.NoError(t, rt.Start(t.Context(), spec))
	dir := filepath.Join(cfg.StateDir, dirName(spec.ReplicaID))

	size := func(name string) int64 {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return 0
		}
		return st.Size()
	}
	var samples, rotated, highest int
	deadline := time.Now().Add(3 * waitLimit)
	for ; ; samples++ {
		cur, old := size(supervisor.LogFile), size(supervisor.OldLogFile)
		require.LessOrEqual(t, cur, int64(limit), "log past the limit")
		require.LessOrEqual(t, old, int64(limit), "log.1 past the limit")
		require.LessOrEqual(t, cur+old, int64(2*limit))
		if old > 0 {
			rotated++
		}
		if samples%50 != 0 {
			continue
		}

		b, err := rt.Logs(context.Background(), spec.ReplicaID, 0)
		require.NoError(t, err)
		require.LessOrEqual(t, len(b), limit)
		if strings.HasSuffix(string(b), "\n"+strconv.Itoa(last)+"\ndone\n") {
			break
		}
		// Whole lines between the first and the last are consecutive
		// numbers: nothing lost or reordered where log.1 meets log. The
		// newest keeps growing.
		lines := strings.Split(string(b), "\n")
		if len(lines) > 3 {
			lines = lines[1 : len(lines)-1]
			first, err := strconv.Atoi(lines[0])
			require.NoError(t, err, "line %q", lines[0])
			for i, l := range lines {
				require.Equal(t, strconv.Itoa(first+i), l, "line %d of the tail", i)
			}
			n := first + len(lines) - 1
			require.GreaterOrEqual(t, n, highest, "the tail went back in time")
			highest = n
		}
		if time.Now().After(deadline) {
			t.Fatalf("the flood did not end within %s; log ends %q", 3*waitLimit, tailString(b))
		}
	}
	t.Logf("%d samples, %d with log.1 present, latest seen mid-flood: %d", samples, rotated, highest)
	assert.Greater(t, rotated, 1000, "sampled many times while the log rotated")
	assert.Equal(t, apps.ReplicaStarting, get(rt, spec.ReplicaID).State, "still running (it never listens)")
}
