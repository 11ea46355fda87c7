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

	"github.com/discovery-platform/discovery/internal/etcdtest"
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

// TestScheduledDefragmentationGivesSpaceBack: after history is compacted the
// file keeps its size until a defragmentation, which the schedule runs.
func TestScheduledDefragmentationGivesSpaceBack(t *testing.T) {
	e := etcdtest.Start(t)
	ctx := context.Background()
	val := strings.Repeat("y", 128<<10)
	var rev int64
	for i := 0; i < 40; i++ {
		resp, err := e.Client.Put(ctx, "/churn", val)
		require.NoError(t, err)
		rev = resp.Header.Revision
	}
	_, err := e.Client.Compact(ctx, rev, clientv3.WithCompactPhysical())
	require.NoError(t, err)
	before, err := e.Client.Status(ctx, e.Endpoint)
	require.NoError(t, err)
	require.Greater(t, before.DbSize-before.DbSizeInUse, before.DbSize/2, "compaction left free pages in the file")

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
