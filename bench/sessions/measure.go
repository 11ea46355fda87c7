package main

// One run's phases: before, open, peak, echo sample, close, return.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/discovery-platform/discovery/bench/internal/rig"
)

// dialTimeout bounds one session's TCP connect and handshake.
const dialTimeout = 30 * time.Second

// fdSlack is how many descriptors over its count before the sessions a
// process may hold and still have "returned" (kept-alive connections to
// etcd and the API come and go).
const fdSlack = 16

// bench is one run.
type bench struct {
	cfg     config
	in      *installation
	clients []*client
}

// snapshot is the processes' figures at one moment.
type snapshot struct {
	gateway  []proc
	replicas []proc
	clients  []proc
	memAvail int // KB
}

func (b *bench) snapshot(gw, replicas []int) snapshot {
	s := snapshot{gateway: readAll(gw), replicas: readAll(replicas), memAvail: memAvailableKB()}
	for _, c := range b.clients {
		s.clients = append(s.clients, read(c.cmd.Process.Pid))
	}
	return s
}

// result is what the run found, for the report.
type result struct {
	before, peak, after snapshot
	gwPIDs              []int
	opened, failed      int
	kinds               map[string]int
	first               string
	openTime            time.Duration
	echoOK, echoChecked int
	echoMax             time.Duration
	echoFirst           string
	returned            bool          // every descriptor came back within the bound
	returnedIn          time.Duration // how long after the last close
}

// measure runs the phases and prints the report.
func (b *bench) measure(ctx context.Context) (bool, error) {
	c := b.cfg
	printConfig(c, b.in)
	r := &result{kinds: map[string]int{}}
	r.gwPIDs = gatewayPIDs(b.in.gateway.PID())
	replicas := replicaPIDs(b.in.marker)
	if len(replicas) != c.replicas {
		return false, fmt.Errorf("found %d echo replica processes, want %d", len(replicas), c.replicas)
	}
	// Idle processes first settle (a Go heap grows for a moment after start).
	waitSteady(ctx, r.gwPIDs, 20*time.Second)
	r.before = b.snapshot(r.gwPIDs, replicas)

	var err error
	if b.clients, err = startClients(plans(c, b.in.endpoints, dialTimeout), b.in.marker, b.in.dir); err != nil {
		return false, err
	}
	fmt.Printf("\n== opening %d sessions: %d client processes, at most %.0f/s, %d handshakes at once in each ==\n",
		c.sessions, len(b.clients), c.rate, c.concurrency)
	opened, err := b.awaitOpened(ctx)
	if err != nil {
		return false, err
	}
	for _, o := range opened {
		r.opened += o.Held
		r.failed += o.Failed
		r.openTime = max(r.openTime, o.Elapsed)
		for k, v := range o.Kinds {
			r.kinds[k] += v
		}
		if r.first == "" {
			r.first = o.First
		}
	}
	fmt.Printf("%d open, %d failed, in %s\n", r.opened, r.failed, r.openTime.Round(time.Millisecond))

	// The peak: every held session is a pair of fds in some gateway
	// process, and the gateway's RSS has stopped growing.
	rig.Poll(ctx, 30*time.Second, 250*time.Millisecond, func() bool {
		_, fds := totals(readAll(r.gwPIDs))
		_, fds0 := totals(r.before.gateway)
		return fds-fds0 >= 2*r.opened
	})
	waitSteady(ctx, r.gwPIDs, 60*time.Second)
	r.peak = b.snapshot(r.gwPIDs, replicas)
	if now := gatewayPIDs(b.in.gateway.PID()); fmt.Sprint(now) != fmt.Sprint(r.gwPIDs) {
		fmt.Printf("NOTE: the gateway's processes changed while sessions were open: %v, now %v (a worker died and was restarted?)\n", r.gwPIDs, now)
	}

	fmt.Printf("echo on %d sessions spread over all of them...\n", min(c.sample, r.opened))
	if err := b.echo(ctx, r); err != nil {
		return false, err
	}

	fmt.Println("closing every session...")
	for _, cl := range b.clients {
		if err := cl.command("close"); err != nil {
			return false, fmt.Errorf("client process %d: %w", cl.i, err)
		}
	}
	if _, err := awaitAll(ctx, b.clients, "closed", 2*time.Minute); err != nil {
		return false, err
	}
	for _, cl := range b.clients {
		cl.stop(10 * time.Second)
	}
	closed := time.Now()
	if rig.Poll(ctx, 2*time.Minute, 250*time.Millisecond, func() bool {
		return returned(r.before.gateway, readAll(r.gwPIDs)) && returned(r.before.replicas, readAll(replicas))
	}) {
		r.returned, r.returnedIn = true, time.Since(closed)
	}
	r.after = snapshot{gateway: readAll(r.gwPIDs), replicas: readAll(replicas), memAvail: memAvailableKB()}
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	return printReport(c, r), nil
}

// awaitOpened waits for every client process to have opened its share,
// printing the progress every ten seconds. The bound is twice the time the
// rate asks for, and two minutes more.
func (b *bench) awaitOpened(ctx context.Context) ([]report, error) {
	c := b.cfg
	bound := 2*time.Duration(float64(c.sessions)/c.rate*float64(time.Second)) + 2*time.Minute
	type answer struct {
		reports []report
		err     error
	}
	done := make(chan answer, 1)
	go func() {
		rs, err := awaitAll(ctx, b.clients, "opened", bound)
		done <- answer{rs, err}
	}()
	t0 := time.Now()
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case a := <-done:
			return a.reports, a.err
		case <-tick.C:
			held, failed := progress(b.clients)
			_, fds := totals(readAll(gatewayPIDs(b.in.gateway.PID())))
			fmt.Printf("  %s: %d open, %d failed; gateway processes hold %d fds\n", time.Since(t0).Round(time.Second), held, failed, fds)
		}
	}
}

// echo has every client process send one message on its share of the
// sample and wait for it back.
func (b *bench) echo(ctx context.Context, r *result) error {
	for i, k := range split(b.cfg.sample, len(b.clients)) {
		if err := b.clients[i].command(fmt.Sprintf("echo %d", k)); err != nil {
			return fmt.Errorf("client process %d: %w", i, err)
		}
	}
	rs, err := awaitAll(ctx, b.clients, "echo", 2*time.Minute)
	if err != nil {
		return err
	}
	for _, e := range rs {
		r.echoOK += e.EchoOK
		r.echoChecked += e.EchoChecked
		r.echoMax = max(r.echoMax, e.EchoMax)
		if r.echoFirst == "" {
			r.echoFirst = e.First
		}
	}
	return nil
}

// teardown stops the client processes, then the installation.
func (b *bench) teardown() {
	for _, c := range b.clients {
		c.stop(10 * time.Second)
	}
	b.in.close()
}

// waitSteady waits (within) until the processes' total RSS holds still over
// two readings a second apart.
func waitSteady(ctx context.Context, pids []int, within time.Duration) {
	last, still := -1, 0
	rig.Poll(ctx, within, time.Second, func() bool {
		now, _ := totals(readAll(pids))
		if last >= 0 && steady(last, now) {
			still++
		} else {
			still = 0
		}
		last = now
		return still >= 2
	})
}

// returned reports whether every process holds at most fdSlack more
// descriptors than before.
func returned(before, now []proc) bool {
	for i := range before {
		if now[i].fds > before[i].fds+fdSlack {
			return false
		}
	}
	return true
}

// kindsLine prints failure kinds, the most frequent first.
func kindsLine(kinds map[string]int) string {
	type kv struct {
		k string
		v int
	}
	var l []kv
	for k, v := range kinds {
		l = append(l, kv{k, v})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].v > l[j].v || l[i].v == l[j].v && l[i].k < l[j].k })
	var parts []string
	for _, e := range l {
		parts = append(parts, fmt.Sprintf("%s: %d", e.k, e.v))
	}
	return strings.Join(parts, ", ")
}
