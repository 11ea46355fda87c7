// Command gateway-bench measures get-endpoint and the gateway over loopback
// and prints the figures:
//
//   - get-endpoint requests/s and p50/p99 latency;
//   - WebSocket echo round trip through the gateway against a direct connection
//     to the same replica, in the same run;
//   - memory (RSS) per idle proxied WebSocket at -conns connections.
//
// It builds and starts the real platform binary (API + reconciler + gateway)
// on an etcd it embeds, plus -gateways-1 extra gateway processes, because one
// process here may hold at most 20000 fds and each session costs a gateway two.
// Everything listens on 127.0.0.1 and is stopped at the end.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/discovery-platform/discovery/bench/internal/rig"
	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
	"github.com/discovery-platform/discovery/internal/testkit/platformtest"
)

func main() {
	conns := flag.Int("conns", 10000, "idle WebSocket sessions to hold for the memory figure")
	gateways := flag.Int("gateways", 2, "gateway processes sharing the sessions (each holds 2 fds per session; the fd limit is 20000)")
	replicas := flag.Int("replicas", 4, "replicas of the echo app")
	epDuration := flag.Duration("ep-duration", 5*time.Second, "how long to drive get-endpoint")
	epWorkers := flag.Int("ep-workers", 16, "concurrent get-endpoint callers")
	rtts := flag.Int("rtts", 5000, "echo round trips per path")
	flag.Parse()
	if err := run(*conns, *gateways, *replicas, *epDuration, *epWorkers, *rtts); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(conns, gateways, replicas int, epDuration time.Duration, epWorkers, rtts int) error {
	dir, err := os.MkdirTemp("", "discovery-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := rig.OpenToReplicas(dir); err != nil {
		return err
	}
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

	api, err := rig.FreeAddr()
	if err != nil {
		return err
	}
	var procs []*rig.Proc
	var addrs []string // procs' gateway addresses
	defer func() {
		for _, p := range procs {
			p.Stop(15 * time.Second)
		}
	}()
	for i := 0; i < gateways; i++ {
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
		if err := p.Start(); err != nil {
			return err
		}
		procs, addrs = append(procs, p), append(addrs, gw)
	}
	if err := waitHTTP("http://"+api+"/readyz", 60*time.Second); err != nil {
		return fmt.Errorf("%w; the platform's log ends:\n%s", err, procs[0].LogTail(3000))
	}
	if token, err = platformtest.ReadToken(filepath.Join(dir, "data0")); err != nil {
		return err
	}
	base := "http://" + api + "/api/v1/tenants/default/apps"
	if err := post(base, map[string]any{"name": "echo", "replicas": replicas, "health_path": "/healthz"}); err != nil {
		return err
	}
	if err := post(base+"/echo/revisions", map[string]any{"command": []string{echo}}); err != nil {
		return err
	}
	epURL := base + "/echo/endpoint"
	if err := waitHTTP(epURL, 60*time.Second); err != nil {
		return fmt.Errorf("app never became reachable: %w", err)
	}
	for _, gw := range addrs[1:] {
		if err := waitHTTP("http://"+gw+"/healthz", 30*time.Second); err != nil {
			return err
		}
	}

	fmt.Printf("\n== get-endpoint: %d workers for %s ==\n", epWorkers, epDuration)
	benchEndpoint(epURL, epWorkers, epDuration)

	fmt.Printf("\n== WebSocket echo round trip, 32 B, %d each, same run ==\n", rtts)
	ep, err := getEndpoint(epURL)
	if err != nil {
		return err
	}
	direct, err := replicaAddress(base+"/echo/revisions", ep.Replica)
	if err != nil {
		return err
	}
	viaGW := ep.Endpoint + "ws"
	gw := rttBench(viaGW, rtts)
	dr := rttBench("ws://"+direct+"/ws", rtts)
	fmt.Printf("direct   p50 %8s  p99 %8s\n", dr.p50, dr.p99)
	fmt.Printf("gateway  p50 %8s  p99 %8s  (added p50 %s)\n", gw.p50, gw.p99, gw.p50-dr.p50)
	if ng, ngAddr, err := startNginx(dir, direct, marker); err != nil {
		fmt.Println("nginx    skipped:", err)
	} else {
		nx := rttBench("ws://"+ngAddr+"/ws", rtts)
		fmt.Printf("nginx    p50 %8s  p99 %8s  (added p50 %s)\n", nx.p50, nx.p99, nx.p50-dr.p50)
		ng.Stop(15 * time.Second)
	}

	fmt.Printf("\n== autoscaler: a burst of 300 sessions on an app with target 50 ==\n")
	if err := benchBurst(base, echo, 300); err != nil {
		return err
	}

	fmt.Printf("\n== memory per idle proxied WebSocket: %d sessions over %d gateway processes ==\n", conns, gateways)
	return benchIdle(epURL, procs, addrs, conns)
}

// token is the bootstrap admin token of the platform under test.
var token string

func post(url string, body any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequest("POST", url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("POST %s: %d %s", url, resp.StatusCode, msg)
	}
	return nil
}

func waitHTTP(url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s", url, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type endpointAnswer struct {
	Endpoint string `json:"endpoint"`
	Replica  string `json:"replica"`
}

var epClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func getEndpoint(url string) (endpointAnswer, error) {
	var ep endpointAnswer
	resp, err := epClient.Get(url)
	if err != nil {
		return ep, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return ep, fmt.Errorf("get-endpoint: %d", resp.StatusCode)
	}
	return ep, json.NewDecoder(resp.Body).Decode(&ep)
}

func replicaAddress(url, replica string) (string, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Revisions []struct {
			Replicas []struct{ ID, Address string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", err
	}
	for _, r := range out.Revisions {
		for _, rep := range r.Replicas {
			if rep.ID == replica {
				return rep.Address, nil
			}
		}
	}
	return "", fmt.Errorf("replica %s not listed", replica)
}

type pct struct{ p50, p99 time.Duration }

func percentiles(d []time.Duration) pct {
	if len(d) == 0 {
		return pct{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return pct{d[len(d)*50/100], d[len(d)*99/100]}
}

func benchEndpoint(url string, workers int, dur time.Duration) {
	var mu sync.Mutex
	var lat []time.Duration
	var fails atomic.Int64
	end := time.Now().Add(dur)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(end) {
				t0 := time.Now()
				if _, err := getEndpoint(url); err != nil {
					fails.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	p := percentiles(lat)
	fmt.Printf("requests %d  failures %d  rate %.0f/s  p50 %s  p99 %s\n", len(lat), fails.Load(),
		float64(len(lat))/dur.Seconds(), p.p50, p.p99)
}

func rttBench(url string, n int) pct {
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		fmt.Println("dial", url, err)
		return pct{}
	}
	defer c.Close()
	msg := []byte(strings.Repeat("x", 32))
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			break
		}
		if _, _, err := c.ReadMessage(); err != nil {
			break
		}
		lat = append(lat, time.Since(t0))
	}
	return percentiles(lat)
}

func threads(pid int) int {
	ents, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	return len(ents)
}

// benchIdle opens conns sessions spread over the gateways (procs, listening
// on addrs), holds them idle and reports the RSS growth of the gateway
// processes per session.
func benchIdle(epURL string, procs []*rig.Proc, addrs []string, conns int) error {
	before := make([]int, len(procs))
	for i, p := range procs {
		before[i] = rig.RSSKB(p.PID())
	}
	dialer := &websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 256, WriteBufferSize: 256}
	held := make([]*websocket.Conn, 0, conns)
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()
	t0 := time.Now()
	var mu sync.Mutex
	var wg sync.WaitGroup
	var failed atomic.Int64
	sem := make(chan struct{}, 64)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			ep, err := getEndpoint(epURL)
			if err != nil {
				failed.Add(1)
				return
			}
			// Spread the sessions over the gateway processes.
			u := ep.Endpoint + "ws"
			if gw := addrs[i%len(addrs)]; gw != "" {
				u = "ws://" + gw + u[strings.Index(u[len("ws://"):], "/")+len("ws://"):]
			}
			c, _, err := dialer.DialContext(context.Background(), u, nil)
			if err != nil {
				failed.Add(1)
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	fmt.Printf("opened %d sessions (%d failed) in %s\n", len(held), failed.Load(), time.Since(t0).Round(time.Millisecond))
	time.Sleep(2 * time.Second) // let the gateways settle before reading RSS
	total := 0
	for i, p := range procs {
		after := rig.RSSKB(p.PID())
		fmt.Printf("gateway %d: RSS %d KB -> %d KB, threads %d\n", i, before[i], after, threads(p.PID()))
		total += after - before[i]
	}
	if len(held) > 0 {
		fmt.Printf("RSS per idle proxied session: %.2f KB (all gateway processes, %d sessions)\n", float64(total)/float64(len(held)), len(held))
	}
	return nil
}

// startNginx runs Debian's nginx (if installed) on loopback, proxying
// WebSocket to the replica at upstream: the same echo load, for comparison.
// It returns nginx's process and address.
func startNginx(dir, upstream, marker string) (*rig.Proc, string, error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		return nil, "", fmt.Errorf("nginx not installed (apt-get install nginx-light)")
	}
	ndir := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(ndir, 0o755); err != nil {
		return nil, "", err
	}
	addr, err := rig.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	conf := fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy; fastcgi_temp_path %[1]s/fcgi;
  uwsgi_temp_path %[1]s/uwsgi; scgi_temp_path %[1]s/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen %[2]s;
    location / {
      proxy_pass http://%[3]s;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 3600s;
    }
  }
}
`, ndir, addr, upstream)
	cf := filepath.Join(ndir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	p := &rig.Proc{Name: "nginx", Path: bin, Args: []string{"-c", cf, "-p", ndir}, Env: append(os.Environ(), marker), Log: filepath.Join(ndir, "stderr.log")}
	if err := p.Start(); err != nil {
		return nil, "", err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return p, addr, nil
		}
		if time.Now().After(deadline) {
			p.Stop(15 * time.Second)
			return nil, "", fmt.Errorf("nginx did not listen on %s: %s", addr, p.LogTail(2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// benchBurst opens n sessions at once on an autoscaled app and reports how
// long until the replicas the autoscaler wants are ready.
func benchBurst(base, echo string, n int) error {
	if err := post(base, map[string]any{"name": "burst", "health_path": "/healthz", "target_sessions": 50, "max_sessions": 60,
		"min_replicas": 1, "max_replicas": 8, "scale_down_delay": "5s"}); err != nil {
		return err
	}
	if err := post(base+"/burst/revisions", map[string]any{"command": []string{echo}}); err != nil {
		return err
	}
	epURL := base + "/burst/endpoint"
	if err := waitHTTP(epURL, 60*time.Second); err != nil {
		return err
	}
	want := (n + 49) / 50
	t0 := time.Now()
	var mu sync.Mutex
	var held []*websocket.Conn
	var failed atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ep, err := getEndpoint(epURL)
			if err != nil {
				failed.Add(1)
				return
			}
			c, _, err := websocket.DefaultDialer.Dial(ep.Endpoint+"ws", nil)
			if err != nil {
				failed.Add(1)
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	connected := time.Since(t0)
	for time.Since(t0) < 60*time.Second {
		if ready, _ := readyReplicas(base + "/burst/revisions"); ready >= want {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	ready, _ := readyReplicas(base + "/burst/revisions")
	fmt.Printf("%d sessions connected in %s (%d failed); %d ready replicas (want %d) %s after the burst began\n",
		len(held), connected.Round(time.Millisecond), failed.Load(), ready, want, time.Since(t0).Round(time.Millisecond))
	for _, c := range held {
		_ = c.Close()
	}
	return nil
}

func readyReplicas(url string) (int, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Revisions []struct {
			State    string
			Replicas []struct{ State string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, err
	}
	n := 0
	for _, r := range out.Revisions {
		if r.State != "active" {
			continue
		}
		for _, rep := range r.Replicas {
			if rep.State == "ready" {
				n++
			}
		}
	}
	return n, nil
}
