package apps_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/apps"
)

func TestTicketIsUsedOnceByItsTargetOnly(t *testing.T) {
	svc, _ := newService(t)
	st := svc.Store
	ctx := context.Background()
	now := time.Now()
	st.Now = func() time.Time { return now }
	target := apps.ReplicaID{Tenant: "acme", App: "arena", Revision: "r2", Replica: "x"}

	tk, err := st.IssueTicket(ctx, apps.Ticket{Tenant: "acme", App: "arena", Revision: "r2", Replica: "x", FromRevision: "r1", FromReplica: "y"})
	require.NoError(t, err)
	require.True(t, apps.ValidTicketID(tk.ID), tk.ID)
	got, err := st.Ticket(ctx, tk.ID)
	require.NoError(t, err)
	assert.Equal(t, target, got.Target())
	assert.Equal(t, "r1", got.FromRevision)

	// Another replica, app or tenant cannot use it, and trying changes nothing.
	for _, other := range []apps.ReplicaID{
		{Tenant: "acme", App: "arena", Revision: "r2", Replica: "z"},
		{Tenant: "acme", App: "other", Revision: "r2", Replica: "x"},
		{Tenant: "evil", App: "arena", Revision: "r2", Replica: "x"},
	} {
		_, err := st.UseTicket(ctx, tk.ID, other)
		require.ErrorIs(t, err, apps.ErrGone, "%v", other)
	}

	// Presented twice at once, by its target: exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := st.UseTicket(ctx, tk.ID, target); err == nil {
				wins.Add(1)
			} else if !errors.Is(err, apps.ErrGone) {
				t.Errorf("unexpected error: %v", err)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(1), wins.Load())
	_, err = st.Ticket(ctx, tk.ID)
	require.ErrorIs(t, err, apps.ErrGone, "a used ticket is gone")
	_, err = st.UseTicket(ctx, tk.ID, target)
	require.ErrorIs(t, err, apps.ErrGone, "replayed")
}

func TestTicketExpiresAndCanBeVoided(t *testing.T) {
	svc, _ := newService(t)
	st := svc.Store
	ctx := context.Background()
	now := time.Now()
	st.Now = func() time.Time { return now }
	target := apps.ReplicaID{Tenant: "acme", App: "arena", Revision: "r2", Replica: "x"}
	tk, err := st.IssueTicket(ctx, apps.Ticket{Tenant: "acme", App: "arena", Revision: "r2", Replica: "x", FromRevision: "r1"})
	require.NoError(t, err)
	tk2, err := st.IssueTicket(ctx, apps.Ticket{Tenant: "acme", App: "arena", Revision: "r2", Replica: "x", FromRevision: "r1"})
	require.NoError(t, err)
	assert.NotEqual(t, tk.ID, tk2.ID)

	now = now.Add(apps.TicketTTL)
	_, err = st.UseTicket(ctx, tk.ID, target)
	require.ErrorIs(t, err, apps.ErrGone, "expired")

	now = now.Add(-time.Second)
	require.NoError(t, st.VoidTicket(ctx, tk2.ID))
	_, err = st.UseTicket(ctx, tk2.ID, target)
	require.ErrorIs(t, err, apps.ErrGone, "voided")

	for _, bad := range []string{"", "short", "../../apps/acme/arena", "0123456789012345678901234!"} {
		_, err := st.Ticket(ctx, bad)
		require.ErrorIs(t, err, apps.ErrGone, "%q", bad)
	}
}

// A replica that crashed voids the tickets of the players on their way to
// it, once: the used ones, the expired ones and another replica's stay.
func TestTicketsToAGoneReplicaAreVoidedOnce(t *testing.T) {
	svc, _ := newService(t)
	st := svc.Store
	ctx := context.Background()
	now := time.Now()
	st.Now = func() time.Time { return now }
	gone := apps.ReplicaID{Tenant: "acme", App: "arena", Revision: "r2", Replica: "x"}
	issue := func(replica string) apps.Ticket {
		tk, err := st.IssueTicket(ctx, apps.Ticket{Tenant: "acme", App: "arena", Revision: "r2", Replica: replica, FromRevision: "r1"})
		require.NoError(t, err)
		return tk
	}
	expired := issue("x")
	now = now.Add(apps.TicketTTL / 2)
	pending, used, other := []apps.Ticket{issue("x"), issue("x")}, issue("x"), issue("y")
	_, err := st.UseTicket(ctx, used.ID, gone)
	require.NoError(t, err)
	now = now.Add(apps.TicketTTL/2 + time.Second) // the first one has expired

	voided, err := st.VoidTicketsTo(ctx, gone)
	require.NoError(t, err)
	ids := func(ts []apps.Ticket) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.ID)
		}
		return out
	}
	assert.ElementsMatch(t, ids(pending), ids(voided))
	for _, tk := range voided {
		assert.Equal(t, "r1", tk.FromRevision)
		_, err := st.Ticket(ctx, tk.ID)
		require.ErrorIs(t, err, apps.ErrGone)
	}
	_, err = st.Ticket(ctx, other.ID)
	require.NoError(t, err, "another replica's ticket stays")
	_, err = st.Ticket(ctx, expired.ID)
	require.ErrorIs(t, err, apps.ErrGone)

	again, err := st.VoidTicketsTo(ctx, gone)
	require.NoError(t, err)
	assert.Empty(t, again, "counted once")
}
