package main

// The side-by-side comparison: round trips, CPU, system calls and idle
// sessions through each proxy to one replica, printed as one table.

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/discovery-platform/discovery/bench/internal/rig"
	"github.com/discovery-platform/discovery/internal/testkit/platformtest"
)

// path is one way to the echo replica: direct, or through one proxy.
type path struct {
	name string
	url  string
	proc *rig.Proc // the proxy (its master for nginx and HAProxy); nil: direct
	log  string    // the proxy's error log, shown when sessions fail
	skip string    // why the path has no figures ("" when it has)

	conn         *websocket.Conn
	runs         []pct         // each run's p50 and p99
	ticks        int64         // the proxy's utime+stime over its timed round trips
	replicaTicks int64         // the replica's, over the same round trips
	trips        int           // timed round trips done
	wall         time.Duration // wall time of its timed round trips
	idleCPU      float64       // the proxy's CPU with no traffic, in cores
	sys          *syscalls
	idle         *idle
}

// echo32 is the message every round trip sends and gets back.
var echo32 = []byte(strings.Repeat("x", 32))

// idleCPUWindow is how long the proxies' CPU is read with no traffic.
const idleCPUWindow = 3 * time.Second

// warmup round trips precede the timed ones on each new connection.
const warmup = 200

// compare measures every path and prints the table.
func compare(paths []*path, c config, strace, dir, marker string, replica int) {
	for _, p := range paths {
		if p.skip != "" {
			continue
		}
		conn, _, err := websocket.DefaultDialer.Dial(p.url, nil)
		if err != nil {
			p.skip = "dial: " + err.Error()
			fmt.Printf("%s: %v\n", p.name, err)
			continue
		}
		p.conn = conn
		if _, err := roundTrips(conn, warmup, nil); err != nil {
			p.skip = "warm-up: " + err.Error()
			fmt.Printf("%s: %v\n", p.name, err)
		}
	}
	live := measured(paths)
	if len(live) == 0 || live[0].name != "direct" {
		fmt.Println("no direct connection to the replica: nothing to compare against")
		return
	}

	// What each proxy burns with no traffic at all (the gateway watches etcd
	// and reports session counts), for reading CPU/RT.
	idle0, t0 := map[*path]int64{}, time.Now()
	for _, p := range live {
		idle0[p] = proxyTicks(p)
	}
	rig.Sleep(context.Background(), idleCPUWindow)
	var idleCPU []string
	for _, p := range live[1:] {
		p.idleCPU = float64(ticksDur(proxyTicks(p)-idle0[p])) / float64(time.Since(t0))
		idleCPU = append(idleCPU, fmt.Sprintf("%s %.1f%%", short(p.name), 100*p.idleCPU))
	}
	fmt.Printf("CPU with no traffic for %s (of one core): %s\n", idleCPUWindow, strings.Join(idleCPU, ", "))

	fmt.Printf("round trips: %d runs of %d per path, the order rotated each run\n", c.runs, c.rtts)
	lat := make([]time.Duration, 0, c.rtts)
	m0 := readMachine()
	for r := 0; r < c.runs; r++ {
		var line []string
		mr := readMachine()
		for k := range live {
			p := live[(r+k)%len(live)]
			if p.skip != "" {
				continue
			}
			t0, r0, w0 := proxyTicks(p), cpuTicks(replica), time.Now()
			var err error
			lat, err = roundTrips(p.conn, c.rtts, lat[:0])
			p.wall += time.Since(w0)
			p.ticks += proxyTicks(p) - t0
			p.replicaTicks += cpuTicks(replica) - r0
			p.trips += len(lat)
			if err != nil {
				p.skip = fmt.Sprintf("round trip failed in run %d: %v", r+1, err)
				fmt.Printf("%s: %s\n", p.name, p.skip)
				continue
			}
			q := percentiles(lat)
			p.runs = append(p.runs, q)
			line = append(line, fmt.Sprintf("%s %s/%s", short(p.name), us(q.p50), us(q.p99)))
		}
		fmt.Printf("  run %d (p50/p99): %s  (steal %.0f%%)\n", r+1, strings.Join(line, "  "), machineSince(mr).steal)
	}
	m := machineSince(m0)
	fmt.Printf("  hypervisor steal meanwhile: %.1f%% of a core (/proc/stat: time this VM's CPUs ran something else)\n", m.steal)

	if strace != "" {
		fmt.Printf("system calls: strace -c -f on each proxy's processes for %d more round trips (%d frames)\n", c.rtts, 2*c.rtts)
		for _, p := range measured(paths) {
			if p.proc == nil {
				continue
			}
			s, err := straceBlock(p, strace, dir, marker, c.rtts)
			if err != nil {
				fmt.Printf("  %s: strace: %v\n", p.name, err)
				continue
			}
			p.sys = s
		}
	} else if c.strace {
		fmt.Println("system calls: strace missing, not counted")
	}
	for _, p := range paths {
		if p.conn != nil {
			_ = p.conn.Close()
			p.conn = nil
		}
	}

	if c.conns > 0 {
		fmt.Printf("idle sessions: %d through each proxy in turn\n", c.conns)
		for _, p := range paths {
			if p.proc == nil || p.skip != "" {
				continue
			}
			p.idle = idleSessions(p, c.conns, replica)
		}
	}
	printTable(paths, c, replica, m)
}

// measured returns the paths still in the comparison.
func measured(paths []*path) []*path {
	var out []*path
	for _, p := range paths {
		if p.skip == "" {
			out = append(out, p)
		}
	}
	return out
}

// proxyTicks is the CPU time of the path's proxy and its workers (0 direct).
func proxyTicks(p *path) int64 {
	if p.proc == nil {
		return 0
	}
	return treeTicks(p.proc.PID())
}

// roundTrips sends n 32-byte messages one after the other, each once the
// previous one came back, and appends each round trip's time to lat.
func roundTrips(c *websocket.Conn, n int, lat []time.Duration) ([]time.Duration, error) {
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	defer c.SetReadDeadline(time.Time{})
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if err := c.WriteMessage(websocket.BinaryMessage, echo32); err != nil {
			return lat, err
		}
		if _, msg, err := c.ReadMessage(); err != nil {
			return lat, err
		} else if len(msg) != len(echo32) {
			return lat, fmt.Errorf("echo of %d bytes, want %d", len(msg), len(echo32))
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, nil
}

// sources are the client addresses idle sessions dial from: a bound source
// port is taken on its address whatever the destination, so spreading the
// sessions leaves each address far below its 28k ephemeral ports.
var sources = func() []net.IP {
	var ips []net.IP
	for i := 2; i <= 9; i++ {
		ips = append(ips, net.IPv4(127, 0, 0, byte(i)))
	}
	return ips
}()

// dialConcurrency is how many idle sessions are being opened at once: one.
// A handshake under way is not an idle session, and nginx closes connections
// that still wait for their request when its free connections run low (the
// last 1/16 of worker_connections, which at the fd limit is where 9.9k
// sessions end), so concurrent handshakes would make it drop some.
const dialConcurrency = 1

// idle is what holding idle sessions through a proxy cost it.
type idle struct {
	held, failed        int
	opened              time.Duration
	rssBefore, rssAfter int // KB, the proxy's processes
	fdsBefore, fdsAfter int
	echoOK, echoChecked int
	drained             bool
}

func (i *idle) kbPerSession() float64 {
	if i == nil || i.held == 0 {
		return 0
	}
	return float64(i.rssAfter-i.rssBefore) / float64(i.held)
}

// idleSessions opens conns WebSocket sessions through p's proxy, holds them
// idle until the proxy's RSS settles, reads it, checks a sample still
// echoes, closes them all and waits for the proxy (and the replica) to let go
// of their descriptors before the next proxy's turn.
func idleSessions(p *path, conns int, replica int) *idle {
	pid := p.proc.PID()
	res := &idle{rssBefore: treeRSSKB(pid), fdsBefore: treeFDs(pid)}
	replicaFDs := rig.FDs(replica)
	dialers := make([]*websocket.Dialer, len(sources))
	for i, ip := range sources {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 30 * time.Second}
		dialers[i] = &websocket.Dialer{NetDialContext: d.DialContext, HandshakeTimeout: 30 * time.Second, ReadBufferSize: 256, WriteBufferSize: 256}
	}
	held := make([]*websocket.Conn, 0, conns)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	sem := make(chan struct{}, dialConcurrency)
	t0 := time.Now()
	for i := 0; i < conns; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, _, err := dialers[i%len(dialers)].DialContext(context.Background(), p.url, nil)
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	res.opened, res.held, res.failed = time.Since(t0), len(held), int(failed.Load())

	// A Go heap may still grow (and an event loop still allocate) for a
	// moment after the last handshake: read once the RSS holds still.
	last := treeRSSKB(pid)
	rig.Poll(context.Background(), 15*time.Second, 500*time.Millisecond, func() bool {
		now := treeRSSKB(pid)
		still := abs(now-last) <= max(64, last/500)
		last = now
		return still
	})
	res.rssAfter, res.fdsAfter = treeRSSKB(pid), treeFDs(pid)

	// The sessions were real: a sample of them still echoes.
	for i := 0; i < len(held); i += max(1, len(held)/50) {
		res.echoChecked++
		_ = held[i].SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := roundTrips(held[i], 1, nil); err == nil {
			res.echoOK++
		}
	}
	for _, c := range held {
		_ = c.Close()
	}
	res.drained = rig.Poll(context.Background(), 60*time.Second, 100*time.Millisecond, func() bool {
		return treeFDs(pid) <= res.fdsBefore+16 && (replica == 0 || rig.FDs(replica) <= replicaFDs+16)
	})

	msg := ""
	if e, ok := firstErr.Load().(string); ok {
		msg = " (first failure: " + e + ")"
	}
	fmt.Printf("  %-18s %d sessions (%d failed%s) opened in %s; RSS %d -> %d KB, fds %d -> %d; echo %d/%d sampled; %s\n",
		p.name+":", res.held, res.failed, msg, res.opened.Round(time.Millisecond), res.rssBefore, res.rssAfter, res.fdsBefore, res.fdsAfter,
		res.echoOK, res.echoChecked, map[bool]string{true: "all closed", false: "descriptors not all released within 60 s"}[res.drained])
	if res.failed > 0 && p.log != "" {
		fmt.Printf("  %s's log ends:\n%s\n", p.name, platformtest.LogTail(p.log, 800))
	}
	return res
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// medianDur is the median of ds (the mean of the middle two for an even count).
func medianDur(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// us prints a duration in microseconds.
func us(d time.Duration) string { return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond)) }

// short names a path in the per-run lines.
func short(name string) string {
	switch name {
	case "Discovery gateway":
		return "gateway"
	case "HAProxy":
		return "haproxy"
	}
	return name
}
