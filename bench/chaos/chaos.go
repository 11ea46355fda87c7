package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/discovery-platform/discovery/bench/internal/rig"
	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
)

const (
	appName = "chaos"
	// replicasPerRevision is the app's replica count: two, so a replica kill
	// leaves the revision serving and a rollout has something to overlap.
	replicasPerRevision = 2
)

// gateway is one process players connect through. gen counts its deaths:
// a session that sees gen change since it connected was on a killed gateway.
type gateway struct {
	addr string
	proc *rig.Proc
	gen  atomic.Int64
}

// chaos is one run: the installation, the players and what they observed.
type chaos struct {
	cfg    Config
	start  time.Time
	dir    string
	marker string
	app    []string // the replica command

	etcd     *etcdtest.Etcd
	etcdUp   atomic.Bool
	platform *rig.Proc
	// gateways[0] is the platform's own; the rest are --role gateway.
	gateways []*gateway
	api      *rig.API

	players *players
	outMu   sync.Mutex
	stats   stats
	seen    *sampler
	evs     *eventLog

	mu sync.Mutex
	// killedReplicas: replica id → when this run SIGKILLed it.
	killedReplicas map[string]time.Time
	deployed       []string
	kills          map[string]int
	// lastFault is when the last fault began to heal (see outcome).
	lastFault time.Time
	// settleTimes are, per kind of fault, the times the platform took to
	// settle after one, when it did before the next.
	settleTimes map[string][]time.Duration
}

func (c *chaos) printf(format string, args ...any) {
	line := fmt.Sprintf("[%6.1fs] ", time.Since(c.start).Seconds()) + fmt.Sprintf(format, args...) + "\n"
	c.outMu.Lock()
	defer c.outMu.Unlock()
	_, _ = io.WriteString(c.cfg.Out, line) // one write per line: a test logs each as it comes
}

func (c *chaos) debugf(format string, args ...any) {
	if c.cfg.Verbose {
		c.printf(format, args...)
	}
}

func defaults(cfg Config) Config {
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano()
	}
	if cfg.Clients <= 0 {
		cfg.Clients = 1
	}
	if cfg.Gap <= 0 {
		cfg.Gap = 4 * time.Second
	}
	if cfg.RolloutEvery <= 0 {
		cfg.RolloutEvery = 8 * time.Second
	}
	if cfg.SessionLife <= 0 {
		cfg.SessionLife = 20 * time.Second
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 250 * time.Millisecond
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 5 * time.Second
	}
	if cfg.Converge <= 0 {
		cfg.Converge = 90 * time.Second
	}
	return cfg
}

// Run performs one chaos run and returns its summary. An error means the
// run could not be set up (a build, a port, the first start); a missed goal
// is in Summary.Failures.
func Run(ctx context.Context, cfg Config) (sum Summary, err error) {
	cfg = defaults(cfg)
	for _, f := range cfg.Faults {
		switch f {
		case faultPlatform, faultReplica, faultEtcd, faultEtcdAndPlatform, faultSabotage:
		case faultGateway:
			if cfg.Gateways == 0 {
				return sum, fmt.Errorf("fault %q needs -gateways > 0", f)
			}
		default:
			return sum, fmt.Errorf("unknown fault %q", f)
		}
	}
	c := &chaos{cfg: cfg, start: time.Now(), marker: rig.NewMarker(), killedReplicas: map[string]time.Time{}, kills: map[string]int{},
		settleTimes: map[string][]time.Duration{}}
	c.printf("chaos: seed %d, %d players, %d gateways (the platform's + %d), faults for %s (max %d iterations; 0 = no cap)",
		cfg.Seed, cfg.Clients, cfg.Gateways+1, cfg.Gateways, cfg.Duration, cfg.Iterations)
	if c.dir = cfg.Dir; c.dir == "" {
		if c.dir, err = os.MkdirTemp("", "discovery-chaos-"); err != nil {
			return sum, err
		}
	}
	defer func() {
		c.teardown()
		ok := err == nil && len(sum.Failures()) == 0
		switch {
		case cfg.Dir == "" && ok:
			_ = os.RemoveAll(c.dir)
		case !ok:
			c.printf("logs and data (the evidence) in %s", c.dir)
		}
	}()
	if err := c.setup(ctx); err != nil {
		return sum, err
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var bg sync.WaitGroup
	goBg := func(f func()) { bg.Add(1); go func() { defer bg.Done(); f() }() }
	goBg(func() { c.platform.Supervise(runCtx) })
	for _, g := range c.gateways[1:] {
		goBg(func() { g.proc.Supervise(runCtx) })
	}
	goBg(func() { c.seen.run(runCtx) })
	goBg(func() { c.evs.run(runCtx, c.api) })

	players := newPlayers(c)
	c.players = players
	players.start(runCtx)
	rollCtx, stopRollouts := context.WithCancel(runCtx)
	rolloutsDone := make(chan struct{})
	go func() { defer close(rolloutsDone); c.rollouts(rollCtx) }()

	iterations := c.faults(runCtx, players)
	stopRollouts()
	<-rolloutsDone

	sum = c.finish(runCtx, players, iterations)
	cancel()
	bg.Wait()
	sum.print(c.cfg.Out)
	if ctx.Err() != nil {
		return sum, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	return sum, nil
}

// setup builds the binaries, starts etcd, the platform and the gateways,
// and creates the app with its first revision.
func (c *chaos) setup(ctx context.Context) error {
	if c.cfg.Platform == "" || c.cfg.Testapp == "" {
		c.printf("building the platform and the test app...")
	}
	if err := rig.OpenToReplicas(c.dir); err != nil {
		return err
	}
	platform, testapp, err := rig.Binaries(c.dir, c.cfg.Platform, c.cfg.Testapp)
	if err != nil {
		return err
	}
	c.app = []string{testapp}
	// etcd lives in this program, outside the platform, so it can be stopped
	// and restarted under it on the same ports and data.
	if c.etcd, err = etcdtest.StartAt(filepath.Join(c.dir, "etcd")); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	c.etcdUp.Store(true)
	apiAddr, err := rig.FreeAddr()
	if err != nil {
		return err
	}
	c.api = rig.NewAPI(apiAddr)
	env := append(os.Environ(), c.marker)
	common := []string{"--etcd", c.etcd.Endpoint, "--probe-interval", "200ms", "--log-level", "info", "--replica-env", c.marker,
		"--max-sessions-per-addr", "0", "--max-sessions-per-tenant", "0", "--reservations-per-addr", "0"}
	for i := 0; i <= c.cfg.Gateways; i++ {
		addr, err := rig.FreeAddr()
		if err != nil {
			return err
		}
		name := "gateway" + strconv.Itoa(i)
		if i == 0 {
			name = "platform"
		}
		args := append([]string{"--gateway-addr", addr, "--data-dir", filepath.Join(c.dir, name)}, common...)
		if i == 0 {
			args = append(args, "--addr", apiAddr, "--resync", "2s", "--endpoint-rate", "0", "--gateway-procs", strconv.Itoa(max(c.cfg.GatewayProcs, 1)))
		} else {
			args = append(args, "--role", "gateway")
		}
		p := &rig.Proc{Name: name, Path: platform, Args: args, Env: env, Log: filepath.Join(c.dir, name+".log")}
		if err := p.Start(); err != nil {
			return err
		}
		c.gateways = append(c.gateways, &gateway{addr: addr, proc: p})
	}
	c.platform = c.gateways[0].proc
	if !rig.Poll(ctx, 60*time.Second, 100*time.Millisecond, func() bool { return c.api.Ready(ctx) }) {
		return fmt.Errorf("the platform did not become ready within 60s; its log ends:\n%s", c.platform.LogTail(3000))
	}
	if err := c.api.LoadToken(filepath.Join(c.dir, "platform")); err != nil {
		return err
	}
	// Room for every revision of the run: the default quota (50 replicas, 10
	// revisions kept) would cap rollouts and prune the history the event
	// check reads.
	if err := c.api.Do(ctx, "PUT", "/tenants/default/quota", map[string]any{"max_apps": 20, "max_replicas": 500,
		"max_revisions": 1000, "max_cpu_millis": 4000, "max_memory_mb": 8192}, nil); err != nil {
		return err
	}
	if err := c.api.Do(ctx, "POST", "/apps", map[string]any{"name": appName, "replicas": replicasPerRevision,
		"health_path": "/healthz", "reconnect_grace": c.cfg.Grace.String(), "shutdown_grace": "2s",
		// spread: players land on both replicas, so a replica kill cuts some, not all.
		"strategy": "spread"}, nil); err != nil {
		return err
	}
	first, err := c.api.Deploy(ctx, appName, c.app, map[string]string{"VERSION": "0"})
	if err != nil {
		return err
	}
	c.deployed = append(c.deployed, first)
	if !rig.Poll(ctx, 60*time.Second, 100*time.Millisecond, func() bool {
		_, code, _, _ := c.api.GetEndpoint(ctx, appName)
		return code == 200
	}) {
		return fmt.Errorf("the first revision %s never served", first)
	}
	for _, g := range c.gateways[1:] {
		if !rig.Poll(ctx, 60*time.Second, 100*time.Millisecond, func() bool { return rig.Get(ctx, c.api.HTTP, "http://"+g.addr+"/healthz") == nil }) {
			return fmt.Errorf("%s did not serve within 60s", g.proc.Name)
		}
	}
	c.seen = newSampler(c.marker)
	c.evs = newEventLog()
	c.printf("ready: etcd %s, API %s, first revision %s", c.etcd.Endpoint, apiAddr, first)
	return nil
}

// teardown stops everything this run started, whatever state it is in.
func (c *chaos) teardown() {
	for _, g := range c.gateways {
		g.proc.Kill(0)
	}
	rig.KillAll(c.marker) // the replicas, which outlive the platform by design
	if c.etcd != nil {
		if !c.etcdUp.Load() {
			_ = c.etcd.Resume() // so Stop has a member to stop
		}
		c.etcd.Stop()
	}
}

// rollouts deploys a new revision every RolloutEvery or so (jittered), some
// with a health delay so that faults land while they start. A deploy refused
// (platform down, etcd away) is simply tried at the next tick.
func (c *chaos) rollouts(ctx context.Context) {
	rnd := rand.New(rand.NewPCG(uint64(c.cfg.Seed), 1))
	for v := 1; ; {
		if !rig.Sleep(ctx, jitter(rnd, c.cfg.RolloutEvery)) {
			return
		}
		env := map[string]string{"VERSION": strconv.Itoa(v), "HEALTH_DELAY": time.Duration(rnd.IntN(1500) * int(time.Millisecond)).String()}
		id, err := c.api.Deploy(ctx, appName, c.app, env)
		if err != nil {
			c.stats.rolloutRefused.Add(1)
			c.debugf("rollout %d refused: %v", v, err)
			continue
		}
		c.mu.Lock()
		c.deployed = append(c.deployed, id)
		c.mu.Unlock()
		c.stats.rollouts.Add(1)
		v++
	}
}

// jitter returns a duration uniform in [d/2, 3d/2).
func jitter(rnd *rand.Rand, d time.Duration) time.Duration {
	return d/2 + time.Duration(rnd.Int64N(int64(d)))
}

func (c *chaos) replicaKilled(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.killedReplicas[id]
	return ok
}
