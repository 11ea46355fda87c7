package endpoint

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/discovery-platform/discovery/apps"
)

// fakeApps is one app's routes and its revisions' counts (the real table
// and session counts are exercised by test/browser's history test).
type fakeApps struct {
	ar     *AppRoutes
	counts map[string]int
}

func (f *fakeApps) Range(fn func(*AppRoutes) bool) {
	if f.ar != nil {
		fn(f.ar)
	}
}

func (f *fakeApps) Revision(_, _, rev string) apps.Sessions {
	return apps.Sessions{Known: true, Count: f.counts[rev]}
}

func TestHistoryKeepsChangesBounded(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	now := t0
	f := &fakeApps{ar: &AppRoutes{App: apps.App{Tenant: "t", Name: "a"}, Revisions: map[string]apps.Revision{
		"v1": {ID: "v1", State: apps.Active}, "v0": {ID: "v0", State: apps.Retired}}}, counts: map[string]int{}}
	h := NewHistory(f, f)
	h.now = func() time.Time { return now }
	h.MaxPoints = 4
	step := func(counts map[string]int) {
		f.counts = counts
		now = now.Add(10 * time.Second)
		h.Sample()
	}

	step(map[string]int{"v1": 0})
	assert.Empty(t, h.Of("t", "a"), "no session yet, no series; a retired revision without history has none")
	step(map[string]int{"v1": 2})
	step(map[string]int{"v1": 2})
	step(map[string]int{"v1": 3})
	assert.Equal(t, []Point{{t0.UnixMilli() + 20_000, 2}, {t0.UnixMilli() + 40_000, 3}}, h.Of("t", "a")["v1"], "only changes are kept")

	// A rollout: v1 drains, v2 fills.
	f.ar = &AppRoutes{App: f.ar.App, Revisions: map[string]apps.Revision{"v1": {ID: "v1", State: apps.Draining}, "v2": {ID: "v2", State: apps.Active}}}
	step(map[string]int{"v1": 1, "v2": 2})
	f.ar.Revisions["v1"] = apps.Revision{ID: "v1", State: apps.Retired}
	step(map[string]int{"v2": 3})
	got := h.Of("t", "a")
	assert.Equal(t, 0, got["v1"][len(got["v1"])-1].N, "a retired revision's series ends at zero")
	assert.Equal(t, 3, got["v2"][len(got["v2"])-1].N)
	assert.Len(t, got["v1"], 4, "at most MaxPoints per revision")

	// Past Keep, the old points go; the count in force is kept at the cut.
	h.Keep = 5 * time.Second
	step(map[string]int{"v2": 3})
	got = h.Of("t", "a")
	assert.NotContains(t, got, "v1", "a series that ended at zero before the cut goes")
	assert.Equal(t, []Point{{now.UnixMilli() - 5_000, 3}}, got["v2"])

	// The whole table's bound: a series that gets a point drops its oldest.
	h.Keep, h.TotalPoints = time.Hour, 2
	step(map[string]int{"v2": 4})
	step(map[string]int{"v2": 5})
	assert.Equal(t, []Point{{now.UnixMilli() - 10_000, 4}, {now.UnixMilli(), 5}}, h.Of("t", "a")["v2"])

	// The app gone: its history goes.
	f.ar = nil
	step(nil)
	assert.Empty(t, h.Of("t", "a"))
	assert.Zero(t, h.total)
}
