package endpoint

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/apps"
)

// A counter on a clock the test moves, with no etcd (nothing is published).
func clockedCounter() (*Counter, *time.Time) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	c := NewCounter(nil, CounterConfig{Instance: "i"})
	c.now = func() time.Time { return now }
	return c, &now
}

func TestReservationsExpireConsumeAndStayBounded(t *testing.T) {
	c, now := clockedCounter()
	r := apps.ReplicaID{Tenant: "t", App: "a", Revision: "r1", Replica: "x"}

	// A burst within one grain costs one bucket, however many calls.
	for range 100_000 {
		c.Reserve(r, 10*time.Second)
	}
	require.Equal(t, Load{Reservations: 100_000}, c.Local(r))
	assert.Len(t, c.loads[r].resv.buckets, 1, "a burst shares a bucket")

	// Later calls add buckets; the count is what has not expired.
	*now = now.Add(5 * time.Second)
	c.Reserve(r, 10*time.Second)
	c.Reserve(r, 10*time.Second)
	assert.Len(t, c.loads[r].resv.buckets, 2)
	assert.Equal(t, 100_002, c.Revision("t", "a", "r1").Reservations)

	// A session consumes the oldest reservation; a released demand the newest.
	c.Connect(r)
	assert.Equal(t, Load{Connections: 1, Reservations: 100_001}, c.Local(r))
	c.Release(r)
	assert.Equal(t, Load{Connections: 1, Reservations: 100_000}, c.Local(r))

	// The burst expires at its TTL (rounded up to the grain), not before.
	*now = now.Add(5*time.Second - time.Millisecond)
	assert.Equal(t, 100_000, c.Local(r).Reservations)
	*now = now.Add(resvGrain + time.Millisecond)
	assert.Equal(t, Load{Connections: 1, Reservations: 1}, c.Local(r))

	// Loads of several replicas at once, one unknown.
	other := apps.ReplicaID{Tenant: "t", App: "a", Revision: "r1", Replica: "y"}
	totals := []int{0, 7}
	c.addTotals([]apps.ReplicaID{r, other}, totals)
	assert.Equal(t, []int{2, 7}, totals)

	// When everything has ended the replica is forgotten.
	c.Disconnect(r)
	*now = now.Add(10 * time.Second)
	assert.Equal(t, Load{}, c.Local(r))
	assert.Empty(t, c.loads)
	assert.Empty(t, c.byRev)
	assert.Empty(t, c.Snapshot())
}

func TestAnEarlierExpiryJoinsTheNewestBucket(t *testing.T) {
	c, now := clockedCounter()
	r := apps.ReplicaID{Tenant: "t", App: "a", Revision: "r1", Replica: "x"}
	c.Reserve(r, 10*time.Second)
	c.Reserve(r, time.Second) // the app's TTL shrank meanwhile
	*now = now.Add(2 * time.Second)
	assert.Equal(t, 2, c.Local(r).Reservations, "kept as long as the newest bucket: never less than asked")
	*now = now.Add(9 * time.Second)
	assert.Zero(t, c.Local(r).Reservations)
}
