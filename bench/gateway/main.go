// Command gateway-bench puts Discovery's gateway beside nginx and HAProxy in
// one table, measured in the same run against the same echo replica, and
// prints the figures (never a pass or a fail):
//
//   - added round-trip latency over a direct connection (32-byte WebSocket
//     echoes to internal/testkit/testapp's /ws): -runs runs of -rtts round
//     trips on each path, the paths' order rotated from run to run so the
//     machine's noise hits them alike; each run's p50 and p99 minus the direct
//     path's in that run, and the table shows the median of the runs;
//   - CPU per round trip of the proxy: utime+stime of the proxy process and its
//     children (nginx's and HAProxy's workers) from /proc/<pid>/stat, read
//     around each block of round trips, summed, divided by the round trips;
//   - with -strace, system calls per relayed frame (two frames per round
//     trip), from `strace -c -f` attached to the proxy's processes for a
//     separate block of round trips, with the count of each call;
//   - KB of RSS per idle session: -conns idle WebSocket sessions held open
//     through one proxy at a time, the RSS growth of its processes divided by
//     the sessions. Each proxy is one serving process (nginx worker_processes
//     1, HAProxy nbthread 1, one `--role gateway` platform process), which at
//     the fd limit here (20000, 2 per session) holds about 9.9k sessions; the
//     clients dial from 127.0.0.2-9;
//   - the ratios of the gateway's (and each anchor's) CPU per round trip,
//     added p50 and KB per session to nginx's and HAProxy's.
//
// nginx and HAProxy come from Debian (apt-get install nginx-light haproxy, run
// here when they are missing; a missing one is reported and skipped). Apart
// from the table it measures get-endpoint (rate, latency and the platform's
// CPU per call, with -ep-workers callers) and the autoscaler's answer to a
// burst of sessions.
//
// It builds the real platform binary and runs it on an etcd it embeds: one
// instance with the API, reconciler and a gateway (get-endpoint, the burst),
// and one `--role gateway` instance, the gateway under test. Everything
// listens on loopback and everything it starts is stopped at the end.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/discovery-platform/discovery/bench/internal/rig"
	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
	"github.com/discovery-platform/discovery/internal/testkit/platformtest"
)

// config is what the flags ask for.
type config struct {
	conns      int
	replicas   int
	epDuration time.Duration
	epWorkers  int
	rtts       int
	runs       int
	strace     bool
	install    bool
}

func main() {
	var c config
	flag.IntVar(&c.conns, "conns", 9900, "idle WebSocket sessions held through each proxy for the memory figure (one proxy process holds ~9.9k at the 20000 fd limit)")
	flag.IntVar(&c.replicas, "replicas", 4, "replicas of the echo app")
	flag.DurationVar(&c.epDuration, "ep-duration", 5*time.Second, "how long to drive get-endpoint")
	flag.IntVar(&c.epWorkers, "ep-workers", 16, "concurrent get-endpoint callers")
	flag.IntVar(&c.rtts, "rtts", 5000, "echo round trips per path in each run")
	flag.IntVar(&c.runs, "runs", 5, "runs of -rtts round trips per path, the paths' order rotated each run")
	flag.BoolVar(&c.strace, "strace", false, "also count system calls per relayed frame with strace -c -f (a separate block of -rtts round trips per proxy)")
	flag.BoolVar(&c.install, "install", true, "apt-get install nginx-light, haproxy (and strace with -strace) when missing")
	flag.Parse()
	if c.rtts < 1 || c.runs < 1 || c.conns < 0 {
		fmt.Fprintln(os.Stderr, "bench: -rtts and -runs must be positive, -conns not negative")
		os.Exit(2)
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	dir, err := os.MkdirTemp("", "discovery-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := rig.OpenToReplicas(dir); err != nil {
		return err
	}
	tools := ensureTools(dir, c.strace, c.install)
	fmt.Println("building platform and echo app...")
	platform, echo, err := rig.Binaries(dir, "", "")
	if err != nil {
		return err
	}
	etcd, err := etcdtest.StartAt(filepath.Join(dir, "etcd"))
	if err != nil {
		return err
	}
	defer etcd.Stop()
	marker := rig.NewMarker()
	defer rig.KillAll(marker)
	stopOnSignal(marker, etcd, dir)
	var procs []*rig.Proc // stopped at the end, last started first
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].Stop(15 * time.Second)
		}
	}()

	// Instance 0 serves the API, the reconciler and a gateway of its own;
	// instance 1 is only a gateway: the one under test.
	api, err := rig.FreeAddr()
	if err != nil {
		return err
	}
	var gwAddrs []string
	for i := 0; i < 2; i++ {
		gw, err := rig.FreeAddr()
		if err != nil {
			return err
		}
		args := []string{"--etcd", etcd.Endpoint, "--gateway-addr", gw, "--data-dir", filepath.Join(dir, "data"+strconv.Itoa(i)),
			"--instance", "bench-" + strconv.Itoa(i), "--probe-interval", "200ms", "--log-level", "warn",
			"--max-sessions-per-addr", "0", "--max-sessions-per-tenant", "0", "--reservations-per-addr", "0", "--replica-env", marker}
		if i == 0 {
			args = append(args, "--addr", api, "--endpoint-rate", "0")
		} else {
			args = append(args, "--role", "gateway")
		}
		name := "bench-" + strconv.Itoa(i)
		p := &rig.Proc{Name: name, Path: platform, Args: args, Env: append(os.Environ(), marker), Log: filepath.Join(dir, name+".log")}
		if err := start(p); err != nil {
			return err
		}
		procs, gwAddrs = append(procs, p), append(gwAddrs, gw)
	}
	control, gateway := procs[0], procs[1]
	if err := waitHTTP("http://"+api+"/readyz", 60*time.Second); err != nil {
		return fmt.Errorf("%w; the platform's log ends:\n%s", err, control.LogTail(3000))
	}
	if token, err = platformtest.ReadToken(filepath.Join(dir, "data0")); err != nil {
		return err
	}
	base := "http://" + api + "/api/v1/tenants/default/apps"
	if err := post(base, map[string]any{"name": "echo", "replicas": c.replicas, "health_path": "/healthz"}); err != nil {
		return err
	}
	if err := post(base+"/echo/revisions", map[string]any{"command": []string{echo}}); err != nil {
		return err
	}
	epURL := base + "/echo/endpoint"
	if err := waitHTTP(epURL, 60*time.Second); err != nil {
		return fmt.Errorf("app never became reachable: %w", err)
	}
	if err := waitHTTP("http://"+gwAddrs[1]+"/healthz", 30*time.Second); err != nil {
		return fmt.Errorf("%w; the gateway's log ends:\n%s", err, gateway.LogTail(3000))
	}

	fmt.Printf("\n== configuration ==\n")
	printConfig(c, tools, gateway)

	fmt.Printf("\n== get-endpoint: %d workers for %s ==\n", c.epWorkers, c.epDuration)
	benchEndpoint(epURL, c.epWorkers, c.epDuration, control.PID())

	// One endpoint pins one replica: every path below reaches that replica.
	ep, err := getEndpoint(epURL)
	if err != nil {
		return err
	}
	direct, err := replicaAddress(base+"/echo/revisions", ep.Replica)
	if err != nil {
		return err
	}
	fmt.Printf("\n== proxies side by side: WebSocket echo, 32 B, to replica %s at %s ==\n", ep.Replica, direct)
	paths := []*path{
		{name: "direct", url: "ws://" + direct + "/ws"},
		{name: "Discovery gateway", url: rig.Via(ep.Endpoint, gwAddrs[1]) + "ws", proc: gateway, log: gateway.Log},
	}
	for _, a := range []struct {
		name  string
		bin   string
		start func(bin, dir, upstream, marker string, conns int) (*rig.Proc, string, error)
	}{{"nginx", tools.nginx, startNginx}, {"HAProxy", tools.haproxy, startHAProxy}} {
		p := &path{name: a.name}
		paths = append(paths, p)
		if a.bin == "" {
			p.skip = "anchor missing: not installed"
			fmt.Printf("%s: anchor missing (not installed); its row stays empty\n", a.name)
			continue
		}
		proc, addr, err := a.start(a.bin, dir, direct, marker, c.conns)
		if err != nil {
			p.skip = "anchor missing: " + err.Error()
			fmt.Printf("%s: anchor missing: %v\n", a.name, err)
			continue
		}
		procs = append(procs, proc)
		p.proc, p.url, p.log = proc, "ws://"+addr+"/ws", proc.Log
	}
	compare(paths, c, tools.strace, dir, marker, replicaPID(marker, ep.Replica))

	fmt.Printf("\n== autoscaler: a burst of 300 sessions on an app with target 50 ==\n")
	return benchBurst(base, echo, 300)
}

// started lists every process the run starts, for stopOnSignal: nginx writes
// its process title over its environment, so the marker does not find it.
var started struct {
	sync.Mutex
	procs []*rig.Proc
}

// start starts p and notes it in started.
func start(p *rig.Proc) error {
	started.Lock()
	started.procs = append(started.procs, p)
	started.Unlock()
	return p.Start()
}

// stopOnSignal makes a Ctrl-C or a SIGTERM stop everything the run started
// (all of it carries the marker, or shares a process group with something
// that does: nginx's worker) before the program leaves; the processes run in
// groups of their own and would not get the terminal's signal.
func stopOnSignal(marker string, etcd *etcdtest.Etcd, dir string) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-ch
		fmt.Fprintf(os.Stderr, "\n%s: stopping everything this run started\n", sig)
		started.Lock()
		for _, p := range started.procs {
			if pid := p.PID(); pid > 0 {
				_ = syscall.Kill(-pid, syscall.SIGKILL) // its group: nginx's worker too
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		rig.KillAll(marker)
		etcd.Stop()
		_ = os.RemoveAll(dir)
		os.Exit(130)
	}()
}

// printConfig prints what the figures depend on.
func printConfig(c config, t tools, gateway *rig.Proc) {
	host, _ := os.Hostname()
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	fmt.Printf("machine      %s, %d CPUs, kernel %s, %s\n", host, runtime.NumCPU(), strings.TrimSpace(string(kernel)), runtime.Version())
	env := os.Getenv("GOMAXPROCS")
	if env == "" {
		env = "unset"
	}
	fmt.Printf("GOMAXPROCS   %d in this client; $GOMAXPROCS %s, inherited by the platform processes (Go's default there too)\n", runtime.GOMAXPROCS(0), env)
	fmt.Printf("gateway      the platform binary, --role gateway: pid %d, %d process(es), %d threads\n",
		gateway.PID(), len(tree(gateway.PID())), threads(gateway.PID()))
	fmt.Printf("nginx        %s\n", orMissing(t.nginxVersion))
	fmt.Printf("HAProxy      %s\n", orMissing(t.haproxyVersion))
	if c.strace {
		fmt.Printf("strace       %s\n", orMissing(t.straceVersion))
	}
	fmt.Printf("round trips  %d per path per run, %d runs, 32-byte binary messages, one connection per path\n", c.rtts, c.runs)
	fmt.Printf("sessions     %d idle per proxy, one proxy at a time, clients dialling from 127.0.0.2-%d\n", c.conns, 1+len(sources))
	fmt.Printf("fd limit     %s\n", fdLimit())
}

func orMissing(s string) string {
	if s == "" {
		return "missing (its row stays empty)"
	}
	return s
}
