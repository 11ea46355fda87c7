package main

// The comparison's one table, its ratios and what each figure means.

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

// row is one path's figures as the table prints them.
type row struct {
	p          *path
	p50, p99   time.Duration // median over runs
	add50      time.Duration // median over runs of (p50 - direct's p50 in the same run)
	add99      time.Duration
	addMin     time.Duration // spread of the per-run added p50
	addMax     time.Duration
	runs       int
	cpuUS      float64 // proxy CPU per round trip, µs (-1: none)
	sysFrame   float64 // -1: not counted
	kbSession  float64 // -1: not measured
	hasLatency bool
}

// added is the added p50 in ns, -1 when the path has no latency figure.
func (r row) added() float64 {
	if !r.hasLatency || r.runs == 0 {
		return -1
	}
	return float64(r.add50)
}

func makeRow(p, direct *path) row {
	r := row{p: p, cpuUS: -1, sysFrame: -1, kbSession: -1}
	var p50s, p99s, a50, a99 []time.Duration
	for i, q := range p.runs {
		p50s, p99s = append(p50s, q.p50), append(p99s, q.p99)
		if p != direct && i < len(direct.runs) {
			a50 = append(a50, q.p50-direct.runs[i].p50)
			a99 = append(a99, q.p99-direct.runs[i].p99)
		}
	}
	if len(p50s) > 0 {
		r.hasLatency = true
		r.p50, r.p99, r.runs = medianDur(p50s), medianDur(p99s), len(p50s)
	}
	if len(a50) > 0 {
		r.add50, r.add99 = medianDur(a50), medianDur(a99)
		r.addMin, r.addMax = a50[0], a50[0]
		for _, a := range a50 {
			r.addMin, r.addMax = min(r.addMin, a), max(r.addMax, a)
		}
	}
	if p.proc != nil && p.trips > 0 {
		r.cpuUS = float64(ticksDur(p.ticks)) / float64(time.Microsecond) / float64(p.trips)
	}
	if p.sys != nil {
		r.sysFrame = p.sys.perFrame()
	}
	if p.idle != nil && p.idle.held > 0 {
		r.kbSession = p.idle.kbPerSession()
	}
	return r
}

// printTable prints the side-by-side table, the ratios to the anchors, the
// system calls of each proxy and what the figures mean.
func printTable(paths []*path, c config, replica int, m load) {
	direct := paths[0]
	rows := make([]row, len(paths))
	for i, p := range paths {
		rows[i] = makeRow(p, direct)
	}
	fmt.Println()
	fmt.Printf("%-18s %9s %9s %10s %10s %19s %9s %15s %11s %9s\n",
		"path", "p50", "p99", "added p50", "added p99", "added p50 min..max", "CPU/RT", "syscalls/frame", "KB/session", "sessions")
	for _, r := range rows {
		if !r.hasLatency && r.kbSession < 0 {
			fmt.Printf("%-18s %s\n", r.p.name, orDash(r.p.skip))
			continue
		}
		lat := [4]string{"-", "-", "-", "-"}
		spread := "-"
		if r.hasLatency {
			lat[0], lat[1] = us(r.p50), us(r.p99)
			if r.p != direct {
				lat[2], lat[3] = us(r.add50), us(r.add99)
				spread = us(r.addMin) + ".." + us(r.addMax)
			}
		}
		sessions := "-"
		if r.p.idle != nil {
			sessions = fmt.Sprint(r.p.idle.held)
		}
		fmt.Printf("%-18s %9s %9s %10s %10s %19s %9s %15s %11s %9s\n", r.p.name, lat[0], lat[1], lat[2], lat[3], spread,
			num(r.cpuUS, "%.1fµs"), num(r.sysFrame, "%.2f"), num(r.kbSession, "%.2f"), sessions)
		if r.p.skip != "" {
			fmt.Printf("%-18s (then stopped: %s)\n", "", r.p.skip)
		}
	}

	// Ratios: each proxy's figure over nginx's and over HAProxy's.
	var ng, hp *row
	for i := range rows {
		switch rows[i].p.name {
		case "nginx":
			ng = &rows[i]
		case "HAProxy":
			hp = &rows[i]
		}
	}
	fmt.Printf("\n%-18s %23s %23s %23s\n", "ratio (row/anchor)", "CPU per round trip", "added p50", "KB per idle session")
	fmt.Printf("%-18s %11s %11s %11s %11s %11s %11s\n", "", "/nginx", "/HAProxy", "/nginx", "/HAProxy", "/nginx", "/HAProxy")
	for _, r := range rows[1:] {
		fmt.Printf("%-18s %11s %11s %11s %11s %11s %11s\n", r.p.name,
			ratio(r.cpuUS, ng, func(x row) float64 { return x.cpuUS }), ratio(r.cpuUS, hp, func(x row) float64 { return x.cpuUS }),
			ratio(r.added(), ng, row.added), ratio(r.added(), hp, row.added),
			ratio(r.kbSession, ng, func(x row) float64 { return x.kbSession }), ratio(r.kbSession, hp, func(x row) float64 { return x.kbSession }))
	}

	if replica != 0 {
		var parts []string
		for _, p := range paths {
			if p.trips > 0 {
				parts = append(parts, fmt.Sprintf("%s %.1fµs", short(p.name), float64(ticksDur(p.replicaTicks))/float64(time.Microsecond)/float64(p.trips)))
			}
		}
		fmt.Printf("\nthe echo replica's own CPU per round trip, by path: %s\n", strings.Join(parts, ", "))
	}
	for _, p := range paths {
		if p.sys == nil {
			continue
		}
		fmt.Printf("\n%s: %d system calls for %d relayed frames = %.2f per frame (strace -c -f, all its processes and threads):\n",
			p.name, p.sys.total, p.sys.frames, p.sys.perFrame())
		for _, sc := range p.sys.calls {
			errs := ""
			if sc.errors > 0 {
				errs = fmt.Sprintf("  (%d failed)", sc.errors)
			}
			fmt.Printf("  %-18s %8d  %6.3f/frame%s\n", sc.name, sc.calls, float64(sc.calls)/float64(p.sys.frames), errs)
		}
	}

	trips := 0
	for _, p := range paths {
		trips = max(trips, p.trips)
	}
	fmt.Printf("\nadded p50/p99: median-of-runs: in each of the %d runs, the path's p50 (p99) minus the direct path's in that run;\n", c.runs)
	fmt.Printf("  the table shows the median over the runs, and the lowest..highest added p50 of a run. p50 and p99 columns:\n")
	fmt.Printf("  the median over the runs of each run's figure. Client, proxy and replica share the machine's %d cores.\n", runtime.NumCPU())
	fmt.Printf("  The hypervisor took %.0f%% of a core from this VM (steal) during the round trips: a latency and a CPU time no\n", m.steal)
	fmt.Printf("  proxy caused, spread over all paths alike by the runs.\n")
	if trips > 0 {
		fmt.Printf("CPU/RT: utime+stime of the proxy's processes (master and workers) over its %d timed round trips, divided by them;\n", trips)
		fmt.Printf("  read in 10 ms ticks, so ±%.2fµs; it includes what the proxy does meanwhile anyway (the gateway's etcd watch and\n",
			float64(tick)/float64(time.Microsecond)/float64(trips))
		var bg []string
		for _, r := range rows[1:] {
			if r.p.trips > 0 {
				bg = append(bg, fmt.Sprintf("%s %.2fµs", short(r.p.name), r.p.idleCPU*float64(r.p.wall)/float64(time.Microsecond)/float64(r.p.trips)))
			}
		}
		fmt.Printf("  session counts); the no-traffic rate over the same time would be: %s.\n", strings.Join(bg, ", "))
	}
	if c.strace {
		fmt.Printf("syscalls/frame: every system call strace saw in the proxy's processes over %d untimed round trips (2 frames each),\n", c.rtts)
		fmt.Printf("  runtime housekeeping included (futex, nanosleep, epoll waits); the calls are listed above.\n")
	} else {
		fmt.Printf("syscalls/frame: not counted (run with -strace).\n")
	}
	fmt.Printf("KB/session: RSS growth of the proxy's processes while holding the sessions idle, divided by them; one serving process each\n")
	fmt.Printf("  (nginx worker_processes 1, HAProxy nbthread 1, one gateway process). Memory a proxy sets aside at start for its\n")
	fmt.Printf("  configured maximum (nginx's connection array, HAProxy's fd table) is in the baseline, not in the figure.\n")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// num formats v, or "-" when it is negative (not measured).
func num(v float64, format string) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

// ratio is v over the anchor's figure, "-" when either is missing or the
// anchor's is not positive (an added latency within noise of zero).
func ratio(v float64, anchor *row, get func(row) float64) string {
	if anchor == nil {
		return "-"
	}
	a := get(*anchor)
	if v < 0 || a <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", v/a)
}
