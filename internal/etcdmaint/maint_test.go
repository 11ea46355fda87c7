package etcdmaint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
)

const quota = 8 << 20

// fill writes 64 KiB values under prefix until etcd refuses with NOSPACE.
func fill(t *testing.T, cli *clientv3.Client, prefix string) {
	t.Helper()
	val := strings.Repeat("x", 64<<10)
	for i := 0; ; i++ {
		require.Less(t, i, 1000, "etcd never ran out of space")
		_, err := cli.Put(context.Background(), fmt.Sprintf("%s%04d", prefix, i), val)
		if errors.Is(err, rpctypes.ErrNoSpace) {
			return
		}
		require.NoError(t, err)
	}
}

type recorder struct {
	mu   sync.Mutex
	got  []Cleared
	logs bytes.Buffer
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs.Write(p)
}

func (r *recorder) cleared(_ context.Context, c Cleared) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, c)
	return nil
}

// dumpOnFailure shows the maintainer's log when the test fails.
func (r *recorder) dumpOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("maintainer log:\n%s", r.log())
		}
	})
}

func (r *recorder) log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs.String()
}

func noSpaceGauge() float64 {
	var d dto.Metric
	if err := alarmGauge.WithLabelValues(NoSpace).Write(&d); err != nil {
		panic(err)
	}
	return d.GetGauge().GetValue()
}

// TestEmbeddedMemberRecoversFromNoSpace: a full store raises NOSPACE and
// refuses writes; while its live data needs the space the maintainer reports
// and does not disarm; once the data is deleted it compacts, defragments and
// disarms, and writes work again.
func TestEmbeddedMemberRecoversFromNoSpace(t *testing.T) {
	e := etcdtest.StartWith(t, etcdtest.Options{QuotaBackendBytes: quota})
	var rec recorder
	rec.dumpOnFailure(t)
	m := New(e.Client, Config{Recover: true, OnCleared: rec.cleared, Logger: slog.New(slog.NewTextHandler(&rec, nil))})
	ctx := context.Background()

	fill(t, e.Client, "/junk/")
	_, err := e.Client.Put(ctx, "/after", "small")
	require.ErrorIs(t, err, rpctypes.ErrNoSpace, "a full store refuses every write")

	m.Check(ctx)
	raised, _ := m.Raised(NoSpace)
	assert.True(t, raised)
	assert.Equal(t, 1.0, noSpaceGauge())
	assert.Contains(t, rec.log(), "still full after compaction and defragmentation", "live data cannot be compacted away")
	_, err = e.Client.Put(ctx, "/after", "small")
	require.ErrorIs(t, err, rpctypes.ErrNoSpace, "not disarmed while still full")

	// A full store still takes deletes: they free the space.
	_, err = e.Client.Delete(ctx, "/junk/", clientv3.WithPrefix())
	require.NoError(t, err)
	m.Check(ctx)
	raised, _ = m.Raised(NoSpace)
	assert.False(t, raised)
	assert.Equal(t, 0.0, noSpaceGauge())
	_, err = e.Client.Put(ctx, "/after", "small")
	require.NoError(t, err, "writes work after recovery")
	require.Len(t, rec.got, 1)
	assert.Equal(t, NoSpace, rec.got[0].Alarm)
	assert.True(t, rec.got[0].Recovered)
	assert.False(t, rec.got[0].Until.Before(rec.got[0].Since))
	st, err := e.Client.Status(ctx, e.Endpoint)
	require.NoError(t, err)
	assert.Less(t, st.DbSize, int64(quota/2), "defragmented: the file gave its space back")
}

// TestExternalClusterIsOnlyReported: without Recover the maintainer never
// compacts or disarms; it records the alarm once its operator cleared it.
func TestExternalClusterIsOnlyReported(t *testing.T) {
	e := etcdtest.StartWith(t, etcdtest.Options{QuotaBackendBytes: quota})
	var rec recorder
	m := New(e.Client, Config{OnCleared: rec.cleared, Logger: slog.New(slog.NewTextHandler(&rec, nil))})
	ctx := context.Background()
	fill(t, e.Client, "/junk/")
	_, err := e.Client.Delete(ctx, "/junk/", clientv3.WithPrefix())
	require.NoError(t, err)
	m.Check(ctx)
	m.Check(ctx)
	assert.Equal(t, 1.0, noSpaceGauge())
	al, err := e.Client.AlarmList(ctx)
	require.NoError(t, err)
	assert.Len(t, al.Alarms, 1, "left for the cluster's operator")

	// The operator's recovery: compact, defragment, disarm.
	_, err = e.Client.Compact(ctx, al.Header.Revision, clientv3.WithCompactPhysical())
	require.NoError(t, err)
	_, err = e.Client.Defragment(ctx, e.Endpoint)
	require.NoError(t, err)
	_, err = e.Client.AlarmDisarm(ctx, &clientv3.AlarmMember{})
	require.NoError(t, err)
	m.Check(ctx)
	assert.Equal(t, 0.0, noSpaceGauge())
	require.Len(t, rec.got, 1)
	assert.False(t, rec.got[0].Recovered, "cleared by someone else")
}

// fragment rewrites a 128 KiB value 40 times and compacts the history away,
// leaving most of the file free until a defragmentation.
func fragment(t *testing.T, e *etcdtest.Etcd) (val string, st *clientv3.StatusResponse) {
	t.Helper()
	ctx := context.Background()
	val = strings.Repeat("y", 128<<10)
	var rev int64
	for i := 0; i < 40; i++ {
		resp, err := e.Client.Put(ctx, "/churn", val)
		require.NoError(t, err)
		rev = resp.Header.Revision
	}
	_, err := e.Client.Compact(ctx, rev, clientv3.WithCompactPhysical())
	require.NoError(t, err)
	st, err = e.Client.Status(ctx, e.Endpoint)
	require.NoError(t, err)
	require.Greater(t, st.DbSize-st.DbSizeInUse, st.DbSize/2, "compaction left free pages in the file")
	return val, st
}

// TestScheduledDefragmentationGivesSpaceBack: after history is compacted the
// file keeps its size until a defragmentation, which the schedule runs.
func TestScheduledDefragmentationGivesSpaceBack(t *testing.T) {
	e := etcdtest.Start(t)
	ctx := context.Background()
	val, before := fragment(t, e)

	var rec recorder
	m := New(e.Client, Config{Defrag: time.Millisecond, Logger: slog.New(slog.NewTextHandler(&rec, nil))})
	m.lastDefr = time.Now().Add(-time.Second) // due
	m.Check(ctx)
	after, err := e.Client.Status(ctx, e.Endpoint)
	require.NoError(t, err)
	assert.Less(t, after.DbSize, before.DbSize/2, "defragmented")
	assert.Contains(t, rec.log(), "etcd defragmented")

	// Nothing free: the next run skips the member rather than block it.
	m.lastDefr = time.Now().Add(-time.Second)
	m.Check(ctx)
	assert.Equal(t, 1, strings.Count(rec.log(), "etcd defragmented"))
	got, err := e.Client.Get(ctx, "/churn")
	require.NoError(t, err)
	assert.Equal(t, val, string(got.Kvs[0].Value), "data intact")
}

// The schedule is kept in etcd: a maintainer started after a restart counts
// from the last defragmentation, not from its own start, so a platform
// restarted more often than the interval still defragments.
func TestDefragmentationScheduleSurvivesRestarts(t *testing.T) {
	e := etcdtest.Start(t)
	ctx := context.Background()
	const key = "/discovery/maintenance/last-defrag"
	_, before := fragment(t, e)
	stored := func() time.Time {
		resp, err := e.Client.Get(ctx, key)
		require.NoError(t, err)
		require.Len(t, resp.Kvs, 1)
		ts, err := time.Parse(time.RFC3339Nano, string(resp.Kvs[0].Value))
		require.NoError(t, err)
		return ts
	}
	newMaintainer := func(rec *recorder) *Maintainer {
		return New(e.Client, Config{Defrag: time.Hour, ScheduleKey: key, Logger: slog.New(slog.NewTextHandler(rec, nil))})
	}

	// First start: no record yet; the schedule starts now, nothing is done.
	var first recorder
	start := time.Now()
	newMaintainer(&first).Check(ctx)
	assert.NotContains(t, first.log(), "etcd defragmented")
	assert.WithinDuration(t, start, stored(), time.Minute, "the schedule's start is recorded")

	// A restart 10 minutes after the last one: not due.
	last := time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Millisecond)
	_, err := e.Client.Put(ctx, key, last.Format(time.RFC3339Nano))
	require.NoError(t, err)
	var early recorder
	m := newMaintainer(&early)
	m.Check(ctx)
	assert.NotContains(t, early.log(), "etcd defragmented")
	assert.True(t, last.Equal(m.lastDefr), "counts from the stored time: %v", m.lastDefr)

	// A restart 2 hours after the last one: due at once, though the new
	// process has just started.
	_, err = e.Client.Put(ctx, key, time.Now().Add(-2*time.Hour).UTC().Format(time.RFC3339Nano))
	require.NoError(t, err)
	var late recorder
	newMaintainer(&late).Check(ctx)
	assert.Contains(t, late.log(), "etcd defragmented")
	assert.WithinDuration(t, time.Now(), stored(), time.Minute, "the new time is recorded")
	after, err := e.Client.Status(ctx, e.Endpoint)
	require.NoError(t, err)
	assert.Less(t, after.DbSize, before.DbSize/2, "defragmented")
}

// A maintainer that was due by its own clock defers to a more recent
// defragmentation another instance recorded.
func TestDefragmentationDefersToAnotherInstance(t *testing.T) {
	e := etcdtest.Start(t)
	ctx := context.Background()
	const key = "/discovery/maintenance/last-defrag"
	fragment(t, e)
	var rec recorder
	m := New(e.Client, Config{Defrag: time.Hour, ScheduleKey: key, Logger: slog.New(slog.NewTextHandler(&rec, nil))})
	m.Check(ctx) // loads (records) the schedule
	other := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	_, err := e.Client.Put(ctx, key, other.Format(time.RFC3339Nano))
	require.NoError(t, err)
	m.lastDefr = time.Now().Add(-2 * time.Hour) // due by its own clock
	m.Check(ctx)
	assert.NotContains(t, rec.log(), "etcd defragmented")
	assert.True(t, other.Equal(m.lastDefr), "adopted the other instance's time: %v", m.lastDefr)
}
