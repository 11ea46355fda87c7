package endpoint

import (
	"context"
	"sync"
	"time"

	"github.com/discovery-platform/discovery/apps"
)

// History keeps, in memory, how many sessions each serving revision had
// over the last day, so that a page opened now shows the last rollouts: a
// sample every Step, of which only the changes are kept (an idle app costs
// nothing). Bounded: at most Keep of history and MaxPoints points per
// revision, and once the whole table holds TotalPoints, a series that gets
// a point drops its oldest. Each instance samples the counts every instance
// publishes, so any instance answers about the same; a restart starts
// afresh.
type History struct {
	Step        time.Duration // 10 s
	Keep        time.Duration // 24 h
	MaxPoints   int           // per revision: Keep / Step
	TotalPoints int           // over every revision: 2,000,000 (16 MB)

	apps  AppLister
	count RevisionCounter
	now   func() time.Time

	mu     sync.Mutex
	series map[apps.Ref]map[string][]Point
	total  int
}

// Point is a revision's session count from T on (Unix milliseconds).
type Point struct {
	T int64 `json:"t"`
	N int   `json:"n"`
}

// AppLister walks the apps an instance knows (Routes).
type AppLister interface {
	Range(fn func(*AppRoutes) bool)
}

// RevisionCounter counts a revision's sessions (Sessions).
type RevisionCounter interface {
	Revision(tenant, app, rev string) apps.Sessions
}

// NewHistory returns a history of the apps l knows, counted by c.
func NewHistory(l AppLister, c RevisionCounter) *History {
	return &History{Step: 10 * time.Second, Keep: 24 * time.Hour, MaxPoints: 8640, TotalPoints: 2_000_000,
		apps: l, count: c, now: time.Now, series: map[apps.Ref]map[string][]Point{}}
}

// Run samples every Step until ctx ends.
func (h *History) Run(ctx context.Context) {
	t := time.NewTicker(h.Step)
	defer t.Stop()
	for {
		h.Sample()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sample records the current count of every serving revision that changed
// since the last sample, and forgets what is older than Keep and apps gone.
func (h *History) Sample() {
	now := h.now()
	cut := now.Add(-h.Keep).UnixMilli()
	known := map[apps.Ref]map[string]apps.Revision{}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.apps.Range(func(ar *AppRoutes) bool {
		ref := apps.Ref{Tenant: ar.App.Tenant, App: ar.App.Name}
		known[ref] = ar.Revisions
		for id, rev := range ar.Revisions {
			if rev.State.Terminal() && len(h.series[ref][id]) == 0 {
				continue
			}
			n := 0
			if !rev.State.Terminal() {
				s := h.count.Revision(ref.Tenant, ref.App, id)
				if !s.Known {
					continue
				}
				n = s.Count
			}
			h.add(ref, id, Point{T: now.UnixMilli(), N: n})
		}
		return true
	})
	for ref, revs := range h.series {
		for id, pts := range revs {
			if _, ok := known[ref][id]; !ok {
				// The app, or the revision's record, is gone.
				h.total -= len(pts)
				delete(revs, id)
			} else if kept := h.trim(pts, cut); len(kept) > 0 {
				revs[id] = kept
			} else {
				delete(revs, id)
			}
		}
		if len(revs) == 0 {
			delete(h.series, ref)
		}
	}
}

// add appends p to a revision's series if its count changed (a first zero
// is not kept: a revision that never had a session has no series).
func (h *History) add(ref apps.Ref, rev string, p Point) {
	revs := h.series[ref]
	pts := revs[rev]
	if (len(pts) == 0 && p.N == 0) || (len(pts) > 0 && pts[len(pts)-1].N == p.N) {
		return
	}
	if revs == nil {
		revs = map[string][]Point{}
		h.series[ref] = revs
	}
	if len(pts) >= h.MaxPoints || (h.total >= h.TotalPoints && len(pts) > 0) {
		pts = pts[1:]
		h.total--
	}
	revs[rev] = append(pts, p)
	h.total++
}

// trim drops the points before cut, keeping the last of them (the count
// in force at cut) at cut; a series whose last point is a zero before cut
// goes entirely.
func (h *History) trim(pts []Point, cut int64) []Point {
	i := 0
	for i < len(pts) && pts[i].T < cut {
		i++
	}
	if i == 0 {
		return pts
	}
	if i == len(pts) && pts[i-1].N == 0 {
		h.total -= len(pts)
		return nil
	}
	kept := append([]Point{{T: cut, N: pts[i-1].N}}, pts[i:]...)
	h.total -= len(pts) - len(kept)
	return kept
}

// Of returns an app's series by revision, oldest point first (copies).
func (h *History) Of(tenant, app string) map[string][]Point {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string][]Point{}
	for id, pts := range h.series[apps.Ref{Tenant: tenant, App: app}] {
		out[id] = append([]Point(nil), pts...)
	}
	return out
}
