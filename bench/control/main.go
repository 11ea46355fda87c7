// Command control measures Discovery's control plane on this machine and
// prints figures (it never passes or fails):
//
//   - deploy → active: a revision of an app that is ready a few milliseconds
//     after exec (the test app), from the deploy call's answer to the
//     "-> active" event on the activity stream; median, min, max of -runs;
//   - cold start: an app scaled to zero, from the get-endpoint call to the
//     first echo on its socket (get-endpoint waits while the autoscaler
//     starts a replica); median, min, max of -runs;
//   - the control plane at growing numbers of apps (-sizes, default 10, 1k,
//     10k and 100k; apps spread over tenants of 10,000): the app creation
//     rate reaching that size (16 concurrent creators), the platform
//     process's idle CPU (ms of CPU per second over -idle), and get-endpoint
//     latency p50/p99 with one worker on an app with a replica.
//
// The platform runs the embedded etcd and the process runtime, as `make run`
// does, with --probe-interval 1s (the default) and no rate limits.
//
//	go run ./bench/control [-sizes 10,1000,10000,100000] [-runs 10] [-idle 10s]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/discovery-platform/discovery/bench/internal/rig"
)

func main() {
	sizes := flag.String("sizes", "10,1000,10000,100000", "numbers of apps to measure the control plane at")
	runs := flag.Int("runs", 10, "deploys and cold starts to time")
	idle := flag.Duration("idle", 10*time.Second, "how long to measure idle CPU at each size")
	calls := flag.Int("calls", 2000, "get-endpoint calls per size (one worker)")
	flag.Parse()
	var ns []int
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "control: -sizes wants numbers, got", s)
			os.Exit(2)
		}
		ns = append(ns, n)
	}
	if err := run(ns, *runs, *idle, *calls); err != nil {
		fmt.Fprintln(os.Stderr, "control:", err)
		os.Exit(1)
	}
}

type bench struct {
	api    *rig.API
	proc   *rig.Proc
	testap string
}

func run(sizes []int, runs int, idle time.Duration, calls int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "discovery-control-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := rig.OpenToReplicas(dir); err != nil {
		return err
	}
	fmt.Println("building the platform and the test app...")
	platform, testapp, err := rig.Binaries(dir, "", "")
	if err != nil {
		return err
	}
	marker := rig.NewMarker()
	defer rig.KillAll(marker)
	apiAddr, err := rig.FreeAddr()
	if err != nil {
		return err
	}
	gwAddr, err := rig.FreeAddr()
	if err != nil {
		return err
	}
	p := &rig.Proc{Name: "platform", Path: platform, Env: append(os.Environ(), marker), Log: filepath.Join(dir, "platform.log"),
		Args: []string{"--addr", apiAddr, "--gateway-addr", gwAddr, "--data-dir", filepath.Join(dir, "data"), "--log-level", "warn",
			"--endpoint-rate", "0", "--reservations-per-addr", "0", "--tenant-write-rate", "0", "--replica-env", marker}}
	if err := p.Start(); err != nil {
		return err
	}
	defer p.Stop(30 * time.Second)
	b := &bench{api: rig.NewAPI(apiAddr), proc: p, testap: testapp}
	if !rig.Poll(ctx, 60*time.Second, 50*time.Millisecond, func() bool { return b.api.Ready(ctx) }) {
		return fmt.Errorf("the platform did not become ready; its log ends:\n%s", p.LogTail(3000))
	}
	if err := b.api.LoadToken(filepath.Join(dir, "data")); err != nil {
		return err
	}
	fmt.Printf("GOMAXPROCS of this program %s; the platform pid %d\n", os.Getenv("GOMAXPROCS"), p.PID())

	fmt.Printf("\n== deploy -> active, %d deploys of an app ready a few ms after exec ==\n", runs)
	if err := b.deploys(ctx, runs); err != nil {
		return err
	}
	fmt.Printf("\n== cold start of a scaled-to-zero app: get-endpoint until the socket echoes, %d runs ==\n", runs)
	if err := b.coldStarts(ctx, runs); err != nil {
		return err
	}
	fmt.Printf("\n== the control plane at growing numbers of apps ==\n")
	fmt.Printf("%8s  %14s  %16s  %14s  %14s\n", "apps", "create rate/s", "idle CPU ms/s", "get-ep p50", "get-ep p99")
	have := 0
	for _, n := range sizes {
		rate, err := b.createApps(ctx, have, n)
		if err != nil {
			return err
		}
		have = max(have, n)
		cpu := b.idleCPU(idle)
		p50, p99, err := b.getEndpoints(ctx, calls)
		if err != nil {
			return err
		}
		fmt.Printf("%8d  %14.0f  %16.1f  %14s  %14s\n", n, rate, cpu, p50, p99)
	}
	return nil
}

// deploys times deploy → active of the "hot" app, runs times.
func (b *bench) deploys(ctx context.Context, runs int) error {
	if err := b.api.Do(ctx, "POST", "/apps", map[string]any{"name": "hot", "health_path": "/healthz", "replicas": 1, "reconnect_grace": "1s"}, nil); err != nil {
		return err
	}
	var took []time.Duration
	for i := 0; i <= runs; i++ {
		d, err := b.deployOnce(ctx, "hot", map[string]string{"RUN": strconv.Itoa(i)})
		if err != nil {
			return err
		}
		if i > 0 { // the first deploy also starts the app's first replica ever
			took = append(took, d)
		}
	}
	fmt.Println(summary(took))
	return nil
}

// deployOnce deploys a revision and polls it (every millisecond: the
// activity stream polls its events every 500 ms, too coarse here) until it is
// active.
func (b *bench) deployOnce(ctx context.Context, app string, env map[string]string) (time.Duration, error) {
	var rev rig.Revision
	start := time.Now()
	if err := b.api.Do(ctx, "POST", "/apps/"+app+"/revisions", map[string]any{"command": []string{b.testap}, "env": env}, &rev); err != nil {
		return 0, err
	}
	if !rig.Poll(ctx, 30*time.Second, time.Millisecond, func() bool {
		var got rig.Revision
		return b.api.Do(ctx, "GET", "/apps/"+app+"/revisions/"+rev.ID, nil, &got) == nil && got.State == "active"
	}) {
		return 0, fmt.Errorf("revision %s not active within 30s", rev.ID)
	}
	return time.Since(start), nil
}

// coldStarts times get-endpoint + dial + echo on an app scaled to zero.
func (b *bench) coldStarts(ctx context.Context, runs int) error {
	if err := b.api.Do(ctx, "POST", "/apps", map[string]any{"name": "cold", "health_path": "/healthz", "min_replicas": 0, "max_replicas": 2,
		"target_sessions": 10, "scale_down_delay": "1s", "reservation_ttl": "1s", "reconnect_grace": "1s"}, nil); err != nil {
		return err
	}
	if _, err := b.deployOnce(ctx, "cold", nil); err != nil {
		return err
	}
	var took []time.Duration
	for range runs {
		if err := b.waitReplicas(ctx, "cold", 0, 60*time.Second); err != nil {
			return err
		}
		start := time.Now()
		var ep rig.Endpoint
		if err := b.api.Do(ctx, "GET", "/apps/cold/endpoint", nil, &ep); err != nil {
			return err
		}
		c, _, err := websocket.DefaultDialer.Dial(ep.Endpoint+"ws", nil)
		if err != nil {
			return err
		}
		if err := c.WriteMessage(websocket.BinaryMessage, []byte("ping")); err != nil {
			return err
		}
		if _, _, err := c.ReadMessage(); err != nil {
			return err
		}
		took = append(took, time.Since(start))
		_ = c.Close()
	}
	fmt.Println(summary(took))
	return nil
}

// waitReplicas waits until an app runs n replicas (records of serving
// revisions, stopping ones not counted).
func (b *bench) waitReplicas(ctx context.Context, app string, n int, within time.Duration) error {
	ok := rig.Poll(ctx, within, 20*time.Millisecond, func() bool {
		revs, err := b.api.Revisions(ctx, app)
		if err != nil {
			return false
		}
		live := 0
		for _, r := range revs {
			for _, rep := range r.Replicas {
				if !rep.Stopping {
					live++
				}
			}
		}
		return live == n
	})
	if !ok {
		return fmt.Errorf("app %s did not reach %d replicas within %s", app, n, within)
	}
	return nil
}

// createApps brings the number of bulk apps from have to n (10,000 per
// tenant), 16 at a time, and returns the rate.
func (b *bench) createApps(ctx context.Context, have, n int) (float64, error) {
	if n <= have {
		return 0, nil
	}
	const perTenant = 10000
	for t := have / perTenant; t <= (n-1)/perTenant; t++ {
		name := fmt.Sprintf("bulk%d", t)
		err := b.api.Do(ctx, "POST", "/tenants", map[string]any{"name": name, "quota": map[string]any{"max_apps": perTenant}}, nil)
		var se *rig.StatusError
		if err != nil && !(errors.As(err, &se) && se.Code == http.StatusConflict) {
			return 0, err
		}
	}
	var next atomic.Int64
	next.Store(int64(have))
	var failed atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || failed.Load() != nil {
					return
				}
				path := fmt.Sprintf("/tenants/bulk%d/apps", i/perTenant)
				if err := b.api.Do(ctx, "POST", path, map[string]any{"name": fmt.Sprintf("a%d", i), "replicas": 0}, nil); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return 0, err
	}
	return float64(n-have) / time.Since(start).Seconds(), nil
}

// idleCPU is the platform's CPU over d, in ms per s, after a short settle.
func (b *bench) idleCPU(d time.Duration) float64 {
	time.Sleep(2 * time.Second) // let the last creates' work finish before measuring idle
	before := cpuTicks(b.proc.PID())
	time.Sleep(d) // the measurement window
	after := cpuTicks(b.proc.PID())
	return float64(after-before) * 10 / d.Seconds() // 100 ticks per second: 10 ms each
}

// getEndpoints calls get-endpoint on the hot app calls times, one at a time.
func (b *bench) getEndpoints(ctx context.Context, calls int) (time.Duration, time.Duration, error) {
	lat := make([]time.Duration, 0, calls)
	for range calls {
		start := time.Now()
		var ep rig.Endpoint
		if err := b.api.Do(ctx, "GET", "/apps/hot/endpoint", nil, &ep); err != nil {
			return 0, 0, err
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[len(lat)/2], lat[len(lat)*99/100], nil
}

// cpuTicks is a process's user + system time in clock ticks.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func summary(d []time.Duration) string {
	if len(d) == 0 {
		return "no runs"
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return fmt.Sprintf("median %s  min %s  max %s  (%d runs)", d[len(d)/2].Round(100*time.Microsecond),
		d[0].Round(100*time.Microsecond), d[len(d)-1].Round(100*time.Microsecond), len(d))
}
