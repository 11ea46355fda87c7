package deployer

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestAutoscale(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	long := now.Add(-time.Hour)
	recent := now.Add(-5 * time.Second)
	pol := Policy{Min: 1, Max: 6, Target: 50, ScaleDownDelay: 30 * time.Second}
	zero := pol
	zero.Min = 0
	r := func(id string, sessions int, empty time.Time) ReplicaLoad {
		return ReplicaLoad{ID: id, Ready: true, Sessions: sessions, EmptySince: empty}
	}
	cases := []struct {
		name     string
		pol      Policy
		replicas []ReplicaLoad
		total    int
		want     Scale
	}{
		{"idle app keeps min", pol, []ReplicaLoad{r("a", 0, long)}, 0, Scale{Desired: 1}},
		{"no replicas yet starts min", pol, nil, 0, Scale{Desired: 1}},
		{"under target stays", pol, []ReplicaLoad{r("a", 40, now)}, 40, Scale{Desired: 1}},
		{"at target stays", pol, []ReplicaLoad{r("a", 50, now)}, 50, Scale{Desired: 1}},
		{"past target scales up at once", pol, []ReplicaLoad{r("a", 51, now)}, 51, Scale{Desired: 2}},
		{"300 sessions need 6", pol, []ReplicaLoad{r("a", 60, now)}, 300, Scale{Desired: 6}},
		{"past max is capped", pol, []ReplicaLoad{r("a", 60, now)}, 400, Scale{Desired: 6, Capped: true}},
		{"reservations count", pol, []ReplicaLoad{r("a", 10, now), r("b", 10, now)}, 120, Scale{Desired: 3}},
		{"scale down removes only long-idle replicas", pol,
			[]ReplicaLoad{r("a", 30, now), r("b", 0, long), r("c", 0, recent)}, 30, Scale{Desired: 2, Remove: []string{"b"}}},
		{"a busy replica is never removed", pol,
			[]ReplicaLoad{r("a", 1, now), r("b", 1, now), r("c", 1, now)}, 3, Scale{Desired: 3}},
		{"not-ready idle replicas go first", pol,
			[]ReplicaLoad{r("a", 0, long), {ID: "b", Ready: false, EmptySince: long}, r("c", 10, now)}, 10, Scale{Desired: 1, Remove: []string{"b", "a"}}},
		{"min one keeps the last idle replica", pol, []ReplicaLoad{r("a", 0, long), r("b", 0, long)}, 0, Scale{Desired: 1, Remove: []string{"a"}}},
		{"scale to zero after the idle window", zero, []ReplicaLoad{r("a", 0, long)}, 0, Scale{Desired: 0, Remove: []string{"a"}}},
		{"scale to zero waits for the idle window", zero, []ReplicaLoad{r("a", 0, recent)}, 0, Scale{Desired: 1}},
		{"cold start: demand with no replica", zero, nil, 3, Scale{Desired: 1}},
		{"app-held lease keeps one", zero, []ReplicaLoad{r("a", 0, long)}, 1, Scale{Desired: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, Autoscale(c.pol, c.replicas, c.total, now))
		})
	}
}

func TestPickRemovableNeverTakesABusyReplica(t *testing.T) {
	// The fixed-size scale-down uses the same rule: sessionless replicas only.
	// (Covered end to end by the reconciler tests; here the pure rule.)
	sessions := map[string]int{"a": 2, "b": 0, "c": 0}
	live := replicasOf("a", "b", "c")
	got := pickRemovable(live, 3, func(r replicaT) int { return sessions[r.ID] }, false)
	var ids []string
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	assert.ElementsMatch(t, []string{"b", "c"}, ids)
}
