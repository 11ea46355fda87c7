package etcdhealth_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/internal/etcdhealth"
	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
)

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "timed out waiting for: %s", what)
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// TestAnOutageIsRecordedWhenEtcdReturns: the outage is handed to
// OnRecovered once etcd answers again, and a failed recording is retried.
func TestAnOutageIsRecordedWhenEtcdReturns(t *testing.T) {
	e := etcdtest.Start(t)
	h := etcdhealth.New(e.Client, "/probe", 50*time.Millisecond, nil)
	var mu sync.Mutex
	var got []etcdhealth.Outage
	calls := 0
	h.OnRecovered = func(_ context.Context, start, end time.Time) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			return errors.New("first try fails")
		}
		got = append(got, etcdhealth.Outage{Start: start, End: end})
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	e.Pause()
	t0 := time.Now()
	eventually(t, "the outage is seen", func() bool { down, _ := h.Down(); return down })
	require.NoError(t, e.Resume())
	eventually(t, "the outage is recorded", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1
	})
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 2, calls, "retried after a failure, then not again")
	o := got[0]
	assert.True(t, o.Start.Before(t0.Add(time.Second)), "starts at the last answer before the outage")
	assert.True(t, o.End.After(o.Start))
	down, _ := h.Down()
	assert.False(t, down)
}
