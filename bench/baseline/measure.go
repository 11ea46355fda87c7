package main

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/discovery-platform/discovery/bench/internal/rig"
)

// Sample is one process's figures at one moment.
type Sample struct {
	Goroutines int
	// HeapInuse is go_memstats_heap_inuse_bytes: printed, not checked, since
	// it saws up and down by megabytes between two GCs.
	HeapInuse float64
	// NextGC and GOGC are go_memstats_next_gc_bytes and go_gc_gogc_percent.
	// The goal is set at the end of each GC from the heap it found live
	// (about live × (1 + GOGC/100)), so it is the figure /metrics offers for
	// what a process retains, with no sawtooth: see Live.
	NextGC, GOGC float64
	RSSKB        int
	FDs          int
	// Conns is discovery_gateway_connections: the sessions it holds.
	Conns float64
	// GCs is go_gc_duration_seconds_count: how many GCs have run.
	GCs float64
}

// Figures is one process before the sessions, at their peak and after.
type Figures struct {
	Name              string
	Sessions          int
	Base, Peak, After Sample
}

// Live is the heap found live by the last GC, read back from its goal
// (within the stacks and globals the goal also counts, the same before and
// after).
func (s Sample) Live() float64 { return s.NextGC / (1 + s.GOGC/100) }

func (c *check) sample(ctx context.Context, in *instance) (Sample, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := rig.Metrics(cctx, c.api.HTTP, c.api.Scheme+"://"+in.api+"/metrics", c.api.Token,
		"go_goroutines", "go_memstats_heap_inuse_bytes", "go_memstats_next_gc_bytes", "go_gc_gogc_percent",
		"go_gc_duration_seconds_count", "discovery_gateway_connections")
	if err != nil {
		return Sample{}, err
	}
	pid := in.proc.PID()
	return Sample{Goroutines: int(m["go_goroutines"]), HeapInuse: m["go_memstats_heap_inuse_bytes"],
		NextGC: m["go_memstats_next_gc_bytes"], GOGC: m["go_gc_gogc_percent"], GCs: m["go_gc_duration_seconds_count"],
		Conns: m["discovery_gateway_connections"], RSSKB: rig.RSSKB(pid), FDs: rig.FDs(pid)}, nil
}

// baseline waits for the warm-up sessions to be gone, then watches every
// process until it has run two GCs (the first may have begun before the
// last close) and a few seconds have passed. Its baseline is the highest
// goroutine and fd counts seen meanwhile and the live heap of its last GC.
func (c *check) baseline(ctx context.Context) ([]Sample, error) {
	if !rig.Poll(ctx, 60*time.Second, 250*time.Millisecond, func() bool { return c.allClosed(ctx) }) {
		return nil, fmt.Errorf("the warm-up sessions were still counted 60s after they closed")
	}
	base, err := c.sampleAll(ctx)
	if err != nil {
		return nil, err
	}
	gc0 := make([]float64, len(base))
	for i := range base {
		gc0[i] = base[i].GCs
	}
	start := time.Now()
	ok := rig.Poll(ctx, c.cfg.Settle, 250*time.Millisecond, func() bool {
		now, err := c.sampleAll(ctx)
		if err != nil {
			return false
		}
		done := time.Since(start) >= 3*time.Second
		for i, s := range now {
			g, f := max(base[i].Goroutines, s.Goroutines), max(base[i].FDs, s.FDs)
			base[i] = s
			base[i].Goroutines, base[i].FDs = g, f
			done = done && s.GCs >= gc0[i]+2
		}
		return done
	})
	if !ok {
		return nil, fmt.Errorf("no two GCs within %s while taking the baseline", c.cfg.Settle)
	}
	return base, nil
}

func (c *check) sampleAll(ctx context.Context) ([]Sample, error) {
	out := make([]Sample, len(c.instances))
	for i, in := range c.instances {
		s, err := c.sample(ctx, in)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

func (c *check) allClosed(ctx context.Context) bool {
	now, err := c.sampleAll(ctx)
	if err != nil {
		return false
	}
	for _, s := range now {
		if s.Conns != 0 {
			return false
		}
	}
	return true
}

// peak waits until the gateways count every open session and each process
// has run a GC since, so its live heap includes them, then samples.
func (c *check) peak(ctx context.Context, open int, base []Sample) ([]Sample, error) {
	var counted []Sample
	if !rig.Poll(ctx, 60*time.Second, 250*time.Millisecond, func() bool {
		now, err := c.sampleAll(ctx)
		if err != nil {
			return false
		}
		total := 0
		for _, s := range now {
			total += int(s.Conns)
		}
		counted = now
		return total == open
	}) {
		return nil, fmt.Errorf("the gateways never counted the %d open sessions", open)
	}
	// Idle: a session that just moved bytes (a wss one's handshake) keeps
	// a goroutine for the relay's TLS linger (1 s); the figure is of
	// sessions past it, holding at most one goroutine per 50 of them.
	if !rig.Poll(ctx, 30*time.Second, 250*time.Millisecond, func() bool {
		now, err := c.sampleAll(ctx)
		if err != nil {
			return false
		}
		for i, s := range now {
			if s.Goroutines-base[i].Goroutines > max(20, int(s.Conns)/50) {
				return false
			}
		}
		counted = now
		return true
	}) {
		c.printf("the sessions still held goroutines after 30 s: measured as they are")
	}
	var out []Sample
	if !rig.Poll(ctx, c.cfg.Settle, 250*time.Millisecond, func() bool {
		now, err := c.sampleAll(ctx)
		if err != nil {
			return false
		}
		out = now
		for i, s := range now {
			if s.GCs <= counted[i].GCs {
				return false
			}
		}
		return true
	}) {
		return nil, fmt.Errorf("no GC within %s with the sessions open", c.cfg.Settle)
	}
	return out, nil
}

// allowance is how much more live heap than its baseline a process may
// keep after the sessions closed.
func (c *check) allowance(base Sample) float64 {
	return math.Max(base.Live()*c.cfg.HeapMargin, c.cfg.HeapSlack)
}

// settle polls every process until none holds a session, each has run two
// GCs since the close, and each is back within its margins. It returns the
// last figures and, if the bound passed, why not.
func (c *check) settle(ctx context.Context, base []Sample) ([]Sample, string) {
	var after []Sample
	closed, err := c.sampleAll(ctx)
	if err != nil {
		return base, err.Error()
	}
	var why string
	ok := rig.Poll(ctx, c.cfg.Settle, 250*time.Millisecond, func() bool {
		now, err := c.sampleAll(ctx)
		if err != nil {
			why = err.Error()
			return false
		}
		after = now
		var off []string
		for i, s := range now {
			b, name := base[i], c.instances[i].proc.Name
			switch {
			case s.Conns != 0:
				off = append(off, fmt.Sprintf("%s still counts %.0f sessions", name, s.Conns))
			case s.GCs < closed[i].GCs+2:
				// Two: sync.Pool keeps what it holds through one GC (its victim cache).
				off = append(off, fmt.Sprintf("%s has run %.0f GCs since the close, not two yet", name, s.GCs-closed[i].GCs))
			case s.Goroutines > b.Goroutines+c.cfg.GoroutineSlack:
				off = append(off, fmt.Sprintf("%s has %d goroutines (baseline %d + %d)", name, s.Goroutines, b.Goroutines, c.cfg.GoroutineSlack))
			case s.FDs > b.FDs+c.cfg.FDSlack:
				off = append(off, fmt.Sprintf("%s has %d fds open (baseline %d + %d)", name, s.FDs, b.FDs, c.cfg.FDSlack))
			case s.Live() > b.Live()+c.allowance(b):
				off = append(off, fmt.Sprintf("%s keeps %.1f MB live (baseline %.1f + %.1f MB)", name, mb(s.Live()), mb(b.Live()), mb(c.allowance(b))))
			}
		}
		why = strings.Join(off, "; ")
		return len(off) == 0
	})
	if ok {
		return after, ""
	}
	if after == nil {
		after = base
	}
	return after, fmt.Sprintf("not back to baseline %s after the sessions closed: %s", c.cfg.Settle, why)
}

func mb(b float64) float64 { return b / (1 << 20) }

func (c *check) report(res Result) {
	c.printf("\n== %d sessions opened and closed; per gateway process: baseline / peak / after ==", c.cfg.Sessions)
	c.printf("%-10s %8s  %-16s  %-26s  %-20s  %-20s  %s", "process", "sessions", "goroutines", "live heap MB (allowed)", "heap in use MB", "RSS MB", "fds")
	for _, f := range res.Processes {
		c.printf("%-10s %8d  %-16s  %-26s  %-20s  %-20s  %d / %d / %d", f.Name, f.Sessions,
			fmt.Sprintf("%d / %d / %d", f.Base.Goroutines, f.Peak.Goroutines, f.After.Goroutines),
			fmt.Sprintf("%.1f / %.1f / %.1f (%.1f)", mb(f.Base.Live()), mb(f.Peak.Live()), mb(f.After.Live()), mb(f.Base.Live()+c.allowance(f.Base))),
			fmt.Sprintf("%.1f / %.1f / %.1f", mb(f.Base.HeapInuse), mb(f.Peak.HeapInuse), mb(f.After.HeapInuse)),
			fmt.Sprintf("%.1f / %.1f / %.1f", float64(f.Base.RSSKB)/1024, float64(f.Peak.RSSKB)/1024, float64(f.After.RSSKB)/1024),
			f.Base.FDs, f.Peak.FDs, f.After.FDs)
		if f.Sessions > 0 {
			n := float64(f.Sessions)
			c.printf("%-10s at the peak, per session: live heap %.2f KB, RSS %.2f KB, %.2f fds, %.3f goroutines", "",
				(f.Peak.Live()-f.Base.Live())/1024/n, float64(f.Peak.RSSKB-f.Base.RSSKB)/n, float64(f.Peak.FDs-f.Base.FDs)/n,
				float64(f.Peak.Goroutines-f.Base.Goroutines)/n)
		}
	}
	c.printf("(live heap: what the last GC found live, from go_memstats_next_gc_bytes / (1 + GOGC/100). RSS is reported,")
	c.printf(" not checked: Go hands freed pages back to the OS lazily, through its scavenger)")
	rss, live := res.PerSession()
	c.printf("KB per idle %s session, all gateway processes: RSS %.2f, live heap %.2f", c.cfg.scheme(), rss, live)
	if len(res.Failures) > 0 {
		c.printf("RESULT: FAIL: %s", strings.Join(res.Failures, "; "))
		return
	}
	c.printf("RESULT: PASS: goroutines, fds and live heap back within their margins %s after the last session closed", res.Returned.Round(time.Millisecond))
}
