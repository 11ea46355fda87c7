package main

// What the run prints: the configuration first, the figures at the end.

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// printConfig prints what the figures depend on.
func printConfig(c config, in *installation) {
	host, _ := os.Hostname()
	fmt.Printf("\n== configuration ==\n")
	fmt.Printf("machine        %s, %d CPUs, kernel %s, %s, MemTotal %s\n", host, runtime.NumCPU(), sysctl("kernel/osrelease"), runtime.Version(), memTotal())
	fmt.Printf("limits         fds %s per process; somaxconn %s; ephemeral ports %s\n", fdLimit(), sysctl("net/core/somaxconn"), sysctl("net/ipv4/ip_local_port_range"))
	fmt.Printf("gateway        --role gateway --gateway-procs %d on %s (pid %d and its workers), --max-sessions-per-addr 0 --max-sessions-per-tenant 0\n",
		c.gatewayProcs, in.gatewayAddr, in.gateway.PID())
	fmt.Printf("echo app       %d testapp replicas, one endpoint URL each: %s ...\n", c.replicas, in.endpoints[0])
	fmt.Printf("clients        %d sessions over %d client processes, from %s-%s, at most %.0f/s\n",
		c.sessions, c.clientProcs, sources[0], sources[len(sources)-1][strings.LastIndexByte(sources[len(sources)-1], '.')+1:], c.rate)
	if per := (c.sessions + c.gatewayProcs - 1) / c.gatewayProcs; per > perGatewayProc*3/4 {
		fmt.Printf("WARNING        %d sessions per gateway process on average: the processes share one socket and the kernel hands connections to whichever\n"+
			"               wakes first, so some take 20%% or more over the mean, and a process at its ~%d fills its fds and answers 502\n", per, perGatewayProc)
	}
}

// printReport prints the figures; it reports whether every session opened,
// every sampled one echoed and every descriptor came back.
func printReport(c config, r *result) bool {
	fmt.Printf("\n== %d idle WebSocket sessions through %d gateway processes ==\n", c.sessions, len(r.gwPIDs))
	fmt.Printf("sessions       requested %d, opened %d, failed %d\n", c.sessions, r.opened, r.failed)
	if r.failed > 0 {
		fmt.Printf("               failures by kind: %s; the first: %s\n", kindsLine(r.kinds), r.first)
	}
	fmt.Printf("time to open   %s (%.0f sessions/s)\n", r.openTime.Round(time.Millisecond), float64(r.opened)/max(r.openTime.Seconds(), 1e-9))

	fmt.Printf("\nper gateway process (RSS in MB; sessions ≈ fds gained / 2):\n")
	fmt.Printf("  %-10s %8s  %9s %9s %9s  %6s %6s %6s  %8s\n", "process", "pid", "RSS before", "peak", "growth", "fds", "peak", "after", "sessions")
	for i := range r.gwPIDs {
		name := "gateway"
		if i > 0 {
			name = fmt.Sprintf("worker %d", i)
		}
		b, p, a := r.before.gateway[i], r.peak.gateway[i], r.after.gateway[i]
		fmt.Printf("  %-10s %8d  %9.1f %9.1f %+9.1f  %6d %6d %6d  %8d\n", name, b.pid, mb(b.rssKB), mb(p.rssKB), mb(p.rssKB-b.rssKB),
			b.fds, p.fds, a.fds, (p.fds-b.fds)/2)
	}
	rss0, fds0 := totals(r.before.gateway)
	rss1, fds1 := totals(r.peak.gateway)
	_, fds2 := totals(r.after.gateway)
	fmt.Printf("  %-10s %8s  %9.1f %9.1f %+9.1f  %6d %6d %6d  %8d\n", "total", "", mb(rss0), mb(rss1), mb(rss1-rss0), fds0, fds1, fds2, (fds1-fds0)/2)
	lo, hi := spread(r.before.gateway, r.peak.gateway)
	fmt.Printf("  sessions per process: %d to %d, mean %d (one listening socket: the kernel gives each connection to the process that accepts first)\n",
		lo, hi, r.opened/max(len(r.gwPIDs), 1))

	kb := kbPerSession(rss1-rss0, r.opened)
	fmt.Printf("\ngateway RSS    %.1f MB before, %.1f MB at the peak: +%.1f MB for %d sessions\n", mb(rss0), mb(rss1), mb(rss1-rss0), r.opened)
	a0, a1 := anonTotal(r.before.gateway), anonTotal(r.peak.gateway)
	fmt.Printf("               of which RssAnon (each process's own memory; the rest is binary pages mapped by every process alike) %.1f -> %.1f MB: +%.1f MB, %.2f KB/session\n",
		mb(a0), mb(a1), mb(a1-a0), kbPerSession(a1-a0, r.opened))
	fmt.Printf("per session    %s\n", againstBar(kb, r.opened))
	if lo, hi := spread(r.before.gateway, r.peak.gateway); len(r.gwPIDs) >= 3 && hi-lo >= r.opened/len(r.gwPIDs)/5 {
		var xs, ys []float64
		for i := range r.gwPIDs {
			xs = append(xs, float64(r.peak.gateway[i].fds-r.before.gateway[i].fds)/2)
			ys = append(ys, float64(r.peak.gateway[i].rssKB-r.before.gateway[i].rssKB))
		}
		if a, b, ok := fit(xs, ys); ok {
			fmt.Printf("               the processes' unequal shares split it: growth ≈ %.1f MB per process + %.2f KB × its sessions (least squares over %d processes):\n"+
				"               %.2f KB is what one more session costs, the rest is what a process's first sessions cost it once (%.0f MB over %d processes)\n",
				a/1024, b, len(xs), b, a*float64(len(xs))/1024, len(xs))
		}
	}

	rRSS0, rFDs0 := totals(r.before.replicas)
	rRSS1, rFDs1 := totals(r.peak.replicas)
	_, rFDs2 := totals(r.after.replicas)
	cRSS, cFDs := totals(r.peak.clients)
	fmt.Printf("beside it      echo replicas (%d): RSS %.1f -> %.1f MB, fds %d -> %d -> %d; client processes (%d): RSS %.1f MB, fds %d; MemAvailable %.0f -> %.0f MB\n",
		len(r.before.replicas), mb(rRSS0), mb(rRSS1), rFDs0, rFDs1, rFDs2, len(r.peak.clients), mb(cRSS), cFDs, mb(r.before.memAvail), mb(r.peak.memAvail))

	fmt.Printf("echo sample    %d/%d sessions echoed while all %d were open (slowest %s)", r.echoOK, r.echoChecked, r.opened, r.echoMax.Round(time.Microsecond))
	if r.echoFirst != "" {
		fmt.Printf("; first failure: %s", r.echoFirst)
	}
	fmt.Println()
	if r.returned {
		fmt.Printf("after close    every gateway process and replica back within %d fds of before, %s after the last close\n", fdSlack, r.returnedIn.Round(time.Millisecond))
	} else {
		fmt.Printf("after close    descriptors NOT back within %d of before 2 minutes after the last close (see the fds columns)\n", fdSlack)
	}

	ok := r.opened == c.sessions && r.echoChecked > 0 && r.echoOK == r.echoChecked && r.returned
	verdict := "every session opened, every sampled one echoed, every descriptor came back"
	if !ok {
		verdict = "NOT every session opened, echoed and returned (see above)"
	}
	fmt.Printf("RESULT         %s\n", verdict)
	return ok
}

// spread is the fewest and most sessions (fds gained / 2) of one process.
func spread(before, peak []proc) (lo, hi int) {
	for i := range before {
		n := (peak[i].fds - before[i].fds) / 2
		if i == 0 || n < lo {
			lo = n
		}
		hi = max(hi, n)
	}
	return lo, hi
}

func mb(kb int) float64 { return float64(kb) / 1024 }

// fdLimit is this process's descriptor limit, soft and hard.
func fdLimit() string {
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			if f := strings.Fields(rest); len(f) >= 2 {
				return f[0] + " soft / " + f[1] + " hard"
			}
		}
	}
	return "?"
}

// memTotal is the machine's memory from /proc/meminfo.
func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.Join(strings.Fields(strings.TrimPrefix(line, "MemTotal:")), " ")
}
