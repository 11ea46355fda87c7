package apps_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
)

func newService(t *testing.T) (*apps.Service, *etcdtest.Etcd) {
	e := etcdtest.Start(t)
	return &apps.Service{Store: apps.NewStore(e.Client, "/t")}, e
}

func TestCreateAppOnceAndList(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t)
	a, err := svc.CreateApp(ctx, "default", apps.AppSpec{Name: "arena"})
	require.NoError(t, err)
	assert.NotZero(t, a.ModRevision)
	_, err = svc.CreateApp(ctx, "default", apps.AppSpec{Name: "arena"})
	assert.ErrorIs(t, err, apps.ErrExists)
	_, err = svc.CreateApp(ctx, "other", apps.AppSpec{Name: "arena"})
	require.NoError(t, err, "names are per tenant")

	list, err := svc.ListApps(ctx, "default")
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "arena", list[0].Name)

	evs, err := svc.Events(ctx, "default", "arena", "", 0)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Equal(t, apps.EventAppCreated, evs[0].Type)
}

func TestDeployGivesIncreasingGenerations(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t)
	_, err := svc.CreateApp(ctx, "default", apps.AppSpec{Name: "arena"})
	require.NoError(t, err)

	// Concurrent deploys: each gets its own generation, none is lost; each
	// supersedes the one before it, so one is left in flight.
	const n = 8
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func(i int) {
			_, err := svc.Deploy(ctx, "default", "arena", apps.RevisionSpec{Command: []string{"srv", fmt.Sprint(i)}})
			errs <- err
		}(i)
	}
	for i := 0; i < n; i++ {
		require.NoError(t, <-errs)
	}
	snap, err := svc.Load(ctx, "default", "arena")
	require.NoError(t, err)
	require.Len(t, snap.Revisions, n)
	for i, r := range snap.Revisions {
		assert.Equal(t, int64(n-i), r.Generation, "newest first, no gaps, no duplicates")
		assert.Len(t, r.ID, 8)
		if i == 0 {
			assert.Equal(t, apps.Pending, r.State)
			continue
		}
		assert.Equal(t, apps.Retired, r.State, "an older revision still in flight is superseded")
		assert.Equal(t, fmt.Sprintf(apps.SupersededReason, snap.Revisions[i-1].ID), r.Reason)
	}
	assert.Equal(t, int64(n), snap.App.Generation)
}

func TestTransitionComparesModRevision(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t)
	_, err := svc.CreateApp(ctx, "default", apps.AppSpec{Name: "arena"})
	require.NoError(t, err)
	rev, err := svc.Deploy(ctx, "default", "arena", apps.RevisionSpec{Image: "x:1"})
	require.NoError(t, err)

	out, err := svc.Store.Transition(ctx, apps.Change{Rev: rev, To: apps.Starting, Reason: "test"})
	require.NoError(t, err)
	assert.Equal(t, apps.Starting, out[0].State)
	assert.NotNil(t, out[0].StartedAt)

	// The stale copy loses: compare-and-swap, not last-writer-wins.
	_, err = svc.Store.Transition(ctx, apps.Change{Rev: rev, To: apps.Starting, Reason: "again"})
	assert.ErrorIs(t, err, apps.ErrConflict)
	// Illegal edges are refused before touching etcd.
	_, err = svc.Store.Transition(ctx, apps.Change{Rev: out[0], To: apps.Draining})
	assert.ErrorIs(t, err, apps.ErrIllegalState)

	got, err := svc.Store.GetRevision(ctx, "default", "arena", rev.ID)
	require.NoError(t, err)
	assert.Equal(t, apps.Starting, got.State)

	evs, err := svc.Events(ctx, "default", "arena", "", 0)
	require.NoError(t, err)
	var transitions int
	for _, e := range evs {
		if e.Type == apps.EventTransition {
			transitions++
			assert.Equal(t, apps.Pending, e.From)
			assert.Equal(t, apps.Starting, e.To)
		}
	}
	assert.Equal(t, 1, transitions, "exactly one transition event: the failed CAS wrote none")
}

// activeAndDraining drives two revisions to active/draining through the store.
func activeAndDraining(t *testing.T, svc *apps.Service) (old, cur apps.Revision) {
	ctx := context.Background()
	_, err := svc.CreateApp(ctx, "default", apps.AppSpec{Name: "arena"})
	require.NoError(t, err)
	advance := func(r apps.Revision, states ...apps.RevisionState) apps.Revision {
		for _, s := range states {
			out, err := svc.Store.Transition(ctx, apps.Change{Rev: r, To: s, Reason: "test"})
			require.NoError(t, err)
			r = out[0]
		}
		return r
	}
	r1, err := svc.Deploy(ctx, "default", "arena", apps.RevisionSpec{Image: "x:1"})
	require.NoError(t, err)
	r1 = advance(r1, apps.Starting, apps.Active)
	r2, err := svc.Deploy(ctx, "default", "arena", apps.RevisionSpec{Image: "x:2"})
	require.NoError(t, err)
	r2 = advance(r2, apps.Starting)
	out, err := svc.Store.Transition(ctx,
		apps.Change{Rev: r2, To: apps.Active, Reason: "healthy"},
		apps.Change{Rev: r1, To: apps.Draining, Reason: "superseded"})
	require.NoError(t, err)
	return out[1], out[0]
}

func TestActivateRollsBackInOneTransaction(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t)
	old, cur := activeAndDraining(t, svc)

	// No ready replica recorded for the old revision: nothing could serve.
	_, err := svc.Activate(ctx, "default", "arena", old.ID)
	assert.ErrorIs(t, err, apps.ErrIllegalState)

	_, err = svc.Store.PutReplica(ctx, apps.Replica{ID: "aaaaaa", Tenant: "default", App: "arena", Revision: old.ID, State: apps.ReplicaReady}, nil)
	require.NoError(t, err)
	got, err := svc.Activate(ctx, "default", "arena", old.ID)
	require.NoError(t, err)
	assert.Equal(t, apps.Active, got.State)

	snap, err := svc.Load(ctx, "default", "arena")
	require.NoError(t, err)
	a, ok := snap.Active()
	require.True(t, ok)
	assert.Equal(t, old.ID, a.ID)
	r, _ := snap.Revision(cur.ID)
	assert.Equal(t, apps.Draining, r.State, "the previously active revision drains")

	_, err = svc.Activate(ctx, "default", "arena", "ffffffff")
	assert.ErrorIs(t, err, apps.ErrNotFound)
}

func TestRetireRefusesActive(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t)
	old, cur := activeAndDraining(t, svc)
	_, err := svc.Retire(ctx, "default", "arena", cur.ID)
	assert.ErrorIs(t, err, apps.ErrIllegalState)
	got, err := svc.Retire(ctx, "default", "arena", old.ID)
	require.NoError(t, err)
	assert.Equal(t, apps.Retired, got.State)
	got, err = svc.Retire(ctx, "default", "arena", old.ID)
	require.NoError(t, err, "retiring twice is a no-op")
	assert.Equal(t, apps.Retired, got.State)
}

func TestEventsAreBoundedAndOrdered(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t)
	_, err := svc.CreateApp(ctx, "default", apps.AppSpec{Name: "arena"})
	require.NoError(t, err)
	base := time.Now()
	for i := 0; i < apps.MaxEventsPerApp+20; i++ {
		require.NoError(t, svc.Store.AppendEvent(ctx, apps.Event{Tenant: "default", App: "arena", Type: apps.EventError,
			Time: base.Add(time.Duration(i) * time.Millisecond), Message: fmt.Sprint(i)}))
	}
	require.NoError(t, svc.Store.TrimEvents(ctx, "default", "arena"))
	evs, err := svc.Events(ctx, "default", "arena", "", apps.MaxEventsPerApp)
	require.NoError(t, err)
	require.Len(t, evs, apps.MaxEventsPerApp)
	assert.Equal(t, fmt.Sprint(apps.MaxEventsPerApp+19), evs[len(evs)-1].Message, "newest kept")
	for i := 1; i < len(evs); i++ {
		assert.Less(t, evs[i-1].ID, evs[i].ID)
	}
	after, err := svc.Events(ctx, "default", "arena", evs[len(evs)-3].ID, 10)
	require.NoError(t, err)
	assert.Len(t, after, 2, "after= returns only newer events")
}

func TestWatchNamesChangedApps(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc, _ := newService(t)
	ch := svc.Store.Watch(ctx)
	_, err := svc.CreateApp(ctx, "default", apps.AppSpec{Name: "arena"})
	require.NoError(t, err)
	_, err = svc.Deploy(ctx, "default", "arena", apps.RevisionSpec{Image: "x"})
	require.NoError(t, err)
	deadline := time.After(10 * time.Second)
	seen := 0
	for seen < 2 {
		select {
		case ref := <-ch:
			require.Equal(t, apps.Ref{Tenant: "default", App: "arena"}, ref)
			seen++
		case <-deadline:
			t.Fatal("watch did not report both changes")
		}
	}
}

func TestDeleteAppRefusesDeploy(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t)
	_, err := svc.CreateApp(ctx, "default", apps.AppSpec{Name: "arena"})
	require.NoError(t, err)
	a, err := svc.DeleteApp(ctx, "default", "arena", apps.DeleteOptions{})
	require.NoError(t, err)
	assert.True(t, a.Deleting)
	_, err = svc.Deploy(ctx, "default", "arena", apps.RevisionSpec{Image: "x"})
	assert.True(t, errors.Is(err, apps.ErrIllegalState), "%v", err)
	snap, err := svc.Store.Load(ctx, "default", "arena")
	require.NoError(t, err)
	require.NoError(t, svc.Store.DeleteAppData(ctx, snap))
	_, err = svc.GetApp(ctx, "default", "arena")
	assert.ErrorIs(t, err, apps.ErrNotFound)
}
