package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/discovery-platform/discovery/bench/internal/rig"
	"github.com/discovery-platform/discovery/internal/testkit/proctest"
)

// The faults one iteration may inject.
const (
	faultPlatform        = "platform"      // SIGKILL the platform (API, reconciler, its gateway)
	faultGateway         = "gateway"       // SIGKILL one --role gateway process
	faultReplica         = "replica"       // SIGKILL one replica process
	faultEtcd            = "etcd"          // stop etcd, start it again on the same data and ports
	faultEtcdAndPlatform = "etcd+platform" // kill the platform while etcd is away
	faultSabotage        = "sabotage"      // only on request: see sabotage
)

// faults injects faults until Duration passes or Iterations are done and
// returns how many it injected. The first ones go through every kind once,
// shuffled, so that a short run still covers them all.
func (c *chaos) faults(ctx context.Context, pl *players) int {
	rnd := rand.New(rand.NewPCG(uint64(c.cfg.Seed), 0))
	kinds := []string{faultPlatform, faultReplica, faultEtcd, faultEtcdAndPlatform}
	weighted := []string{faultPlatform, faultPlatform, faultReplica, faultReplica, faultReplica, faultEtcd, faultEtcd, faultEtcdAndPlatform}
	if c.cfg.Gateways > 0 {
		kinds = append(kinds, faultGateway)
		weighted = append(weighted, faultGateway, faultGateway)
	}
	if len(c.cfg.Faults) > 0 {
		kinds, weighted = append([]string(nil), c.cfg.Faults...), c.cfg.Faults
	}
	rnd.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	start := time.Now()
	n := 0
	// What followed a fault is printed once the next pause is over: the
	// players notice a cut at their next message, not at the kill.
	var after func()
	// Meanwhile a watcher times how long the platform takes to settle,
	// until the next fault.
	var stopWatch context.CancelFunc = func() {}
	var watching sync.WaitGroup
	for ; c.cfg.Iterations == 0 || n < c.cfg.Iterations; n++ {
		if time.Since(start) >= c.cfg.Duration || !rig.Sleep(ctx, jitter(rnd, c.cfg.Gap)) {
			break
		}
		stopWatch()
		watching.Wait()
		if after != nil {
			after()
		}
		kind := weighted[rnd.IntN(len(weighted))]
		if n < len(kinds) {
			kind = kinds[n]
		}
		before := c.stats.snapshot()
		o := c.inject(ctx, rnd, kind)
		c.mu.Lock()
		c.kills[kind]++
		c.lastFault = o.from
		c.mu.Unlock()
		c.printf("#%d %s: %s", n+1, kind, o.what)
		after = func() { c.observe(ctx, pl, before) }
		var wctx context.Context
		wctx, stopWatch = context.WithCancel(ctx)
		watching.Add(1)
		go func() { defer watching.Done(); c.watchSettle(wctx, kind, o.from) }()
	}
	stopWatch()
	watching.Wait()
	if after != nil {
		after()
	}
	return n
}

// watchSettle times one fault's recovery: from o.from until the platform
// is settled (see settled), if that happens before the next fault.
func (c *chaos) watchSettle(ctx context.Context, kind string, from time.Time) {
	if !rig.Poll(ctx, 2*time.Minute, 250*time.Millisecond, func() bool { ok, _ := c.settled(ctx, false); return ok }) {
		return
	}
	d := time.Since(from)
	c.mu.Lock()
	c.settleTimes[kind] = append(c.settleTimes[kind], d)
	c.mu.Unlock()
	c.printf("    settled %s after it", d.Round(time.Millisecond))
}

// outcome is what a fault did, and from when the platform could recover:
// the kill, or etcd's restart (nothing converges while etcd is away).
type outcome struct {
	what string
	from time.Time
}

func (c *chaos) inject(ctx context.Context, rnd *rand.Rand, kind string) outcome {
	switch kind {
	case faultPlatform:
		return c.killPlatform(ctx, time.Duration(rnd.IntN(3000))*time.Millisecond)
	case faultGateway:
		return c.killGateway(ctx, rnd)
	case faultReplica:
		return c.killReplica(rnd)
	case faultEtcd:
		return c.etcdOutage(ctx, 2*time.Second+time.Duration(rnd.IntN(10000))*time.Millisecond, -1, 0)
	case faultEtcdAndPlatform:
		return c.etcdOutage(ctx, 3*time.Second+time.Duration(rnd.IntN(8000))*time.Millisecond,
			time.Duration(rnd.IntN(2000))*time.Millisecond, time.Duration(rnd.IntN(1000))*time.Millisecond)
	case faultSabotage:
		return c.sabotage()
	}
	return outcome{"nothing", time.Now()}
}

// replicaPIDs maps the replica processes running now by replica id.
func (c *chaos) replicaPIDs() map[string]int {
	procs, _ := proctest.Replicas(c.marker)
	out := map[string]int{}
	for id, p := range procs {
		out[id] = p.PID
	}
	return out
}

// killPlatform SIGKILLs the platform; its supervisor starts it again after
// down. Replicas must outlive it: they are checked right after the kill.
func (c *chaos) killPlatform(ctx context.Context, down time.Duration) outcome {
	before := c.replicaPIDs()
	pid := c.platform.PID()
	c.gateways[0].gen.Add(1) // before the signal: a session cut by it must see the change
	t0 := time.Now()
	c.platform.Kill(down)
	died := c.diedWith(before)
	back := c.waitReady(ctx)
	return outcome{fmt.Sprintf("SIGKILL platform (pid %d), restart after %s; ready again %s after the kill; replicas alive through it %d/%d%s",
		pid, down.Round(time.Millisecond), since(t0, back), len(before)-len(died), len(before), died.String()), t0}
}

// diedWith lists replicas of before that are gone though this run did not
// kill them: a platform death must not take a replica with it.
func (c *chaos) diedWith(before map[string]int) deaths {
	var out deaths
	for id, pid := range before {
		if !proctest.Alive(pid) && !c.replicaKilled(id) {
			out = append(out, fmt.Sprintf("%s (pid %d)", id, pid))
		}
	}
	if len(out) > 0 {
		c.stats.note("replicas gone right after a platform kill: %v (they may have been stopping already)", out)
	}
	return out
}

type deaths []string

func (d deaths) String() string {
	if len(d) == 0 {
		return ""
	}
	return "; GONE: " + strings.Join(d, ", ")
}

func since(t0 time.Time, ok bool) string {
	if !ok {
		return "NEVER (within 60s)"
	}
	return time.Since(t0).Round(time.Millisecond).String()
}

// waitReady waits until the API answers /readyz (it reaches etcd again).
func (c *chaos) waitReady(ctx context.Context) bool {
	return rig.Poll(ctx, 60*time.Second, 50*time.Millisecond, func() bool {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return c.api.Ready(cctx)
	})
}

func (c *chaos) killGateway(ctx context.Context, rnd *rand.Rand) outcome {
	i := 1 + rnd.IntN(len(c.gateways)-1)
	g := c.gateways[i]
	down := time.Duration(rnd.IntN(3000)) * time.Millisecond
	pid := g.proc.PID()
	g.gen.Add(1)
	t0 := time.Now()
	g.proc.Kill(down)
	back := rig.Poll(ctx, 60*time.Second, 50*time.Millisecond, func() bool {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return rig.Get(cctx, c.api.HTTP, "http://"+g.addr+"/healthz") == nil
	})
	return outcome{fmt.Sprintf("SIGKILL gateway %d (pid %d), restart after %s; serving again %s after the kill",
		i, pid, down.Round(time.Millisecond), since(t0, back)), t0}
}

func (c *chaos) killReplica(rnd *rand.Rand) outcome {
	procs, _ := proctest.Replicas(c.marker)
	if len(procs) == 0 {
		return outcome{"no replica running to kill", time.Now()}
	}
	ids := make([]string, 0, len(procs))
	for id := range procs {
		ids = append(ids, id)
	}
	sort.Strings(ids) // map order is random; the seed must choose
	id := ids[rnd.IntN(len(ids))]
	p := procs[id]
	t0 := time.Now()
	c.mu.Lock()
	c.killedReplicas[id] = t0 // before the signal, as for gateways
	c.mu.Unlock()
	_ = syscall.Kill(p.PID, syscall.SIGKILL)
	state := "?"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if revs, err := c.api.Revisions(ctx, appName); err == nil {
		for _, r := range revs {
			if r.ID == p.Revision {
				state = r.State
			}
		}
	}
	return outcome{fmt.Sprintf("SIGKILL replica %s (pid %d) of %s revision %s", id, p.PID, state, p.Revision), t0}
}

// etcdOutage stops etcd for d. With killAfter >= 0 the platform is also
// SIGKILLed killAfter into the outage, so it must start while etcd is away
// (and fail, and be restarted by its supervisor until etcd is back). During
// the outage it probes what the platform promises: get-endpoint answers
// from memory (marked stale) and a write is refused with 503.
func (c *chaos) etcdOutage(ctx context.Context, d, killAfter, restartIn time.Duration) outcome {
	t0 := time.Now()
	c.etcdUp.Store(false)
	c.etcd.Pause()
	var notes []string
	if killAfter >= 0 {
		rig.Sleep(ctx, killAfter)
		c.gateways[0].gen.Add(1)
		pid := c.platform.PID()
		c.platform.Kill(restartIn)
		notes = append(notes, fmt.Sprintf("SIGKILL platform (pid %d) %s into the outage", pid, killAfter.Round(time.Millisecond)))
	} else {
		degraded := rig.Poll(ctx, 10*time.Second, 100*time.Millisecond, func() bool {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			return !c.api.Ready(cctx)
		})
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, code, stale, _ := c.api.GetEndpoint(cctx, appName)
		_, err := c.api.Deploy(cctx, appName, c.app, map[string]string{"VERSION": "during-outage"})
		cancel()
		write := "accepted (!)"
		if se, ok := err.(*rig.StatusError); ok {
			write = fmt.Sprint(se.Code)
		} else if err != nil {
			write = err.Error()
		}
		notes = append(notes, fmt.Sprintf("readyz degraded=%v, get-endpoint %d stale=%v, a deploy answered %s", degraded, code, stale, write))
	}
	rig.Sleep(ctx, time.Until(t0.Add(d)))
	var err error
	for i := 0; i < 10; i++ { // the ports are this run's, but a restart may race a closing socket
		if err = c.etcd.Resume(); err == nil {
			break
		}
		rig.Sleep(ctx, 500*time.Millisecond)
	}
	if err != nil {
		c.stats.note("etcd did not restart: %v", err)
		return outcome{"etcd did not restart: " + err.Error(), time.Now()}
	}
	c.etcdUp.Store(true)
	up := time.Now()
	back := c.waitReady(ctx)
	return outcome{fmt.Sprintf("etcd stopped for %s (%s); platform ready %s after etcd returned",
		up.Sub(t0).Round(time.Millisecond), strings.Join(notes, "; "), since(up, back)), up}
}

// observe prints what followed a fault: what the players saw since, and
// what the players and the platform look like now.
func (c *chaos) observe(ctx context.Context, pl *players, before statsSnapshot) {
	open, _ := pl.open()
	now := c.stats.snapshot()
	states := "revisions unreadable"
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if revs, err := c.api.Revisions(cctx, appName); err == nil {
		count := map[string]int{}
		for _, r := range revs {
			count[r.State]++
		}
		var parts []string
		for _, s := range []string{"pending", "starting", "active", "draining", "retired", "failed"} {
			if count[s] > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", s, count[s]))
			}
		}
		states = strings.Join(parts, ", ")
	}
	c.printf("    since: sessions %d, left %d, cut with a killed replica %d, with a killed gateway %d (reconnected %d), UNEXPECTED %d; now: players open %d, revisions %s, replica processes %d",
		now.sessions-before.sessions, now.completed-before.completed, now.droppedReplica-before.droppedReplica,
		now.droppedGateway-before.droppedGateway, now.reconnected-before.reconnected, now.unexpected-before.unexpected,
		open, states, len(c.replicaPIDs()))
}

// sabotage does behind the checks' back what the platform must never do, so
// a test can prove they notice: it SIGKILLs the replica holding the most
// players without recording the kill (their sessions count as dropped by
// the platform), starts a second process under a running replica's id (a
// double start) and one under an id no record has (an orphan).
func (c *chaos) sabotage() outcome {
	t0 := time.Now()
	procs, _ := proctest.Replicas(c.marker)
	busiest, most := "", -1
	_, open := c.players.open()
	for id := range procs {
		if open[id] > most {
			busiest, most = id, open[id]
		}
	}
	if busiest == "" {
		return outcome{"no replica running", t0}
	}
	p := procs[busiest]
	_ = syscall.Kill(p.PID, syscall.SIGKILL)
	var started []string
	for _, id := range []string{pickOther(procs, busiest), "5ab07a"} {
		if id == "" {
			continue
		}
		cmd := exec.Command(c.app[0])
		cmd.Env = append(os.Environ(), c.marker, "PORT=0", "DISCOVERY_REPLICA="+id, "DISCOVERY_REVISION="+procs[id].Revision)
		if err := cmd.Start(); err == nil {
			started = append(started, fmt.Sprintf("%s (pid %d)", id, cmd.Process.Pid))
			go func() { _ = cmd.Wait() }() // KillAll ends it; this reaps it
		}
	}
	return outcome{fmt.Sprintf("SIGKILL replica %s (pid %d, %d players) unrecorded; started stray replicas %s",
		busiest, p.PID, most, strings.Join(started, ", ")), t0}
}

// pickOther returns a running replica id other than not, "" if none.
func pickOther(procs map[string]proctest.Replica, not string) string {
	ids := make([]string, 0, len(procs))
	for id := range procs {
		if id != not {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}
