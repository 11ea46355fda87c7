package main

// The platform side of the bench: driving the REST API, get-endpoint's rate
// and cost, and the autoscaler's answer to a burst.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

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

// pct is a sample's median and 99th percentile.
type pct struct{ p50, p99 time.Duration }

// percentiles sorts d in place and returns its p50 and p99.
func percentiles(d []time.Duration) pct {
	if len(d) == 0 {
		return pct{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return pct{d[len(d)*50/100], d[len(d)*99/100]}
}

// benchEndpoint drives get-endpoint with workers callers for dur and prints
// the rate, the latency and the CPU the platform process (pid) spent per
// call: its utime+stime over the whole drive divided by the calls answered.
func benchEndpoint(url string, workers int, dur time.Duration, pid int) {
	var mu sync.Mutex
	var lat []time.Duration
	var fails atomic.Int64
	cpu0 := cpuTicks(pid)
	t0 := time.Now()
	end := t0.Add(dur)
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
	elapsed := time.Since(t0)
	cpu := cpuTicks(pid) - cpu0
	p := percentiles(lat)
	fmt.Printf("requests %d  failures %d  rate %.0f/s  p50 %s  p99 %s\n", len(lat), fails.Load(),
		float64(len(lat))/elapsed.Seconds(), p.p50, p.p99)
	if n := len(lat) + int(fails.Load()); n > 0 {
		fmt.Printf("platform process CPU (utime+stime, API + reconciler + its gateway, this client beside it on the same cores): %s over %s = %s per call, %.2f cores busy\n",
			ticksDur(cpu).Round(time.Millisecond), elapsed.Round(time.Millisecond), perOp(cpu, n), ticksDur(cpu).Seconds()/elapsed.Seconds())
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
