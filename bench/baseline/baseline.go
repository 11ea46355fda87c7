package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/discovery-platform/discovery/bench/internal/rig"
	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
)

// instance is one platform process carrying sessions.
type instance struct {
	proc    *rig.Proc
	api     string // host:port, for /metrics
	gateway string // host:port
}

// Result is what one check measured; Failures lists the margins missed.
type Result struct {
	Processes []Figures
	// Returned is how long after the last close every process was back
	// within its margins (zero if it never was).
	Returned time.Duration
	Failures []string
}

// PerSession is what an idle session cost the gateway processes at the
// peak, summed over them and divided by the sessions they held: KB of RSS
// growth and KB of live heap growth (0, 0 without sessions).
func (r Result) PerSession() (rssKB, liveKB float64) {
	var sessions, rss, live float64
	for _, f := range r.Processes {
		sessions += float64(f.Sessions)
		rss += float64(f.Peak.RSSKB - f.Base.RSSKB)
		live += (f.Peak.Live() - f.Base.Live()) / 1024
	}
	if sessions == 0 {
		return 0, 0
	}
	return rss / sessions, live / sessions
}

// scheme is what the check's sessions are: ws or wss.
func (c Config) scheme() string {
	if c.TLS {
		return "wss"
	}
	return "ws"
}

type check struct {
	cfg       Config
	dir       string
	marker    string
	etcd      *etcdtest.Etcd
	instances []*instance
	api       *rig.API
	tls       *tls.Config // with -tls: trusts the platforms' certificate
}

func (c *check) printf(format string, args ...any) {
	_, _ = io.WriteString(c.cfg.Out, fmt.Sprintf(format, args...)+"\n")
}

// Run performs the check. An error means it could not be set up or a
// session could not be opened; a missed margin is in Result.Failures.
func Run(ctx context.Context, cfg Config) (res Result, err error) {
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	c := &check{cfg: cfg, marker: rig.NewMarker()}
	if c.dir = cfg.Dir; c.dir == "" {
		if c.dir, err = os.MkdirTemp("", "discovery-baseline-"); err != nil {
			return res, err
		}
		defer os.RemoveAll(c.dir)
	}
	defer c.teardown()
	if err := c.setup(ctx); err != nil {
		return res, err
	}
	// Plain HTTP through every gateway for the whole check: a live gateway
	// always has some, and its garbage is what brings the next GC.
	tctx, stopTraffic := context.WithCancel(ctx)
	var traffic sync.WaitGroup
	for _, in := range c.instances {
		traffic.Add(1)
		go func() { defer traffic.Done(); c.traffic(tctx, in.gateway) }()
	}
	defer func() { stopTraffic(); traffic.Wait() }()

	// A first small round warms what is made once (the relay's event
	// loops, pools, the route table's caches); the baseline is taken after it.
	warm := max(cfg.Sessions/20, 100)
	c.printf("warm-up: %d sessions opened and closed", warm)
	conns, err := c.open(ctx, warm)
	if err != nil {
		return res, err
	}
	closeAll(conns)
	base, err := c.baseline(ctx)
	if err != nil {
		return res, err
	}

	t0 := time.Now()
	conns, err = c.open(ctx, cfg.Sessions)
	if err != nil {
		closeAll(conns)
		return res, err
	}
	c.printf("opened %d sessions over %d gateways in %s", len(conns), len(c.instances), time.Since(t0).Round(time.Millisecond))
	peak, err := c.peak(ctx, len(conns), base)
	if err != nil {
		closeAll(conns)
		return res, err
	}
	closeAll(conns)
	closed := time.Now()
	c.printf("closed them all; waiting up to %s for every process to return to its baseline", cfg.Settle)
	after, why := c.settle(ctx, base)
	if why == "" {
		res.Returned = time.Since(closed)
	} else {
		res.Failures = append(res.Failures, why)
	}
	for i := range c.instances {
		f := Figures{Name: c.instances[i].proc.Name, Sessions: int(peak[i].Conns), Base: base[i], Peak: peak[i], After: after[i]}
		res.Processes = append(res.Processes, f)
		// The check can only tell a return to baseline if the sessions
		// moved the figures past the margins in the first place.
		if grown := f.Peak.FDs - f.Base.FDs; grown < 2*f.Sessions*9/10 {
			res.Failures = append(res.Failures, fmt.Sprintf("%s: %d sessions but only %d more fds at the peak: the sessions did not go through it", f.Name, f.Sessions, grown))
		}
		if grown := f.Peak.Live() - f.Base.Live(); grown <= c.allowance(f.Base) {
			res.Failures = append(res.Failures, fmt.Sprintf("%s: the sessions grew the live heap by %.1f MB only, within the %.1f MB allowed: too few sessions to tell a leak (raise -sessions or lower -heap-slack-mb)",
				f.Name, mb(grown), mb(c.allowance(f.Base))))
		}
	}
	c.report(res)
	return res, nil
}

func (c *check) setup(ctx context.Context) error {
	if c.cfg.Platform == "" || c.cfg.Testapp == "" {
		c.printf("building the platform and the echo app...")
	}
	if err := rig.OpenToReplicas(c.dir); err != nil {
		return err
	}
	platform, testapp, err := rig.Binaries(c.dir, c.cfg.Platform, c.cfg.Testapp)
	if err != nil {
		return err
	}
	if c.etcd, err = etcdtest.StartAt(filepath.Join(c.dir, "etcd")); err != nil {
		return err
	}
	env := append(os.Environ(), c.marker)
	var tlsArgs []string
	if c.cfg.TLS {
		certFile, keyFile, client, err := rig.WriteTLSCert(c.dir)
		if err != nil {
			return err
		}
		c.tls, tlsArgs = client, []string{"--tls-cert", certFile, "--tls-key", keyFile}
	}
	for i := 0; i < max(c.cfg.Gateways, 1); i++ {
		in := &instance{}
		if in.api, err = rig.FreeAddr(); err != nil {
			return err
		}
		if in.gateway, err = rig.FreeAddr(); err != nil {
			return err
		}
		name := "instance" + strconv.Itoa(i)
		in.proc = &rig.Proc{Name: name, Path: platform, Env: env, Log: filepath.Join(c.dir, name+".log"),
			Args: []string{"--etcd", c.etcd.Endpoint, "--addr", in.api, "--gateway-addr", in.gateway,
				"--data-dir", filepath.Join(c.dir, name), "--replica-dir", filepath.Join(c.dir, "replicas"),
				"--probe-interval", "500ms", "--log-level", "warn", "--endpoint-rate", "0", "--reservations-per-addr", "0",
				"--max-sessions-per-addr", "0", "--max-sessions-per-tenant", "0", "--replica-env", c.marker}}
		in.proc.Args = append(in.proc.Args, tlsArgs...)
		if err := in.proc.Start(); err != nil {
			return err
		}
		c.instances = append(c.instances, in)
		// The first instance bootstraps the admin; the others find it done.
		api := rig.NewAPI(in.api)
		if c.tls != nil {
			api.UseTLS(c.tls)
		}
		if !rig.Poll(ctx, 60*time.Second, 100*time.Millisecond, func() bool { return api.Ready(ctx) }) {
			return fmt.Errorf("%s not ready within 60s; its log ends:\n%s", name, in.proc.LogTail(3000))
		}
		if i == 0 {
			c.api = api
			if err := api.LoadToken(filepath.Join(c.dir, name)); err != nil {
				return err
			}
		}
	}
	if err := c.api.Do(ctx, "POST", "/apps", map[string]any{"name": "echo", "replicas": c.cfg.Replicas, "health_path": "/healthz", "strategy": "spread"}, nil); err != nil {
		return err
	}
	if _, err := c.api.Deploy(ctx, "echo", []string{testapp}, nil); err != nil {
		return err
	}
	if !rig.Poll(ctx, 60*time.Second, 100*time.Millisecond, func() bool {
		_, code, _, _ := c.api.GetEndpoint(ctx, "echo")
		return code == 200
	}) {
		return fmt.Errorf("the echo app never served")
	}
	return nil
}

func (c *check) teardown() {
	for _, in := range c.instances {
		in.proc.Kill(0)
	}
	rig.KillAll(c.marker)
	if c.etcd != nil {
		c.etcd.Stop()
	}
}

// open opens n sessions, spread over the gateways and over source addresses
// 127.0.0.2-9, 64 handshakes at a time. Any failure is an error: the figures
// of a half-open run would mean nothing.
func (c *check) open(ctx context.Context, n int) ([]*websocket.Conn, error) {
	dialers := make([]*websocket.Dialer, 8)
	for i := range dialers {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}, Timeout: 10 * time.Second}
		dialers[i] = &websocket.Dialer{NetDialContext: nd.DialContext, HandshakeTimeout: 30 * time.Second, ReadBufferSize: 256, WriteBufferSize: 256,
			TLSClientConfig: c.tls}
	}
	conns := make([]*websocket.Conn, n)
	var failed atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ep, _, _, err := c.api.GetEndpoint(ctx, "echo")
			if err == nil {
				u := rig.Via(ep.Endpoint, c.instances[i%len(c.instances)].gateway) + "ws"
				conns[i], _, err = dialers[i%len(dialers)].DialContext(ctx, u, nil)
			}
			if err != nil {
				failed.Add(1)
				first.CompareAndSwap(nil, err.Error())
			}
		}()
	}
	wg.Wait()
	// The get-endpoint calls leave kept-alive connections to the API, each
	// an fd (and goroutines) in the first process: close them so that every
	// phase is measured with the same few connections (metrics, traffic).
	c.api.HTTP.CloseIdleConnections()
	out := conns[:0]
	for _, cn := range conns {
		if cn != nil {
			out = append(out, cn)
		}
	}
	if f := failed.Load(); f > 0 {
		return out, fmt.Errorf("%d of %d sessions failed to open; first: %v", f, n, first.Load())
	}
	return out, nil
}

func closeAll(conns []*websocket.Conn) {
	for _, cn := range conns {
		_ = cn.Close()
	}
}

// traffic sends plain HTTP requests through a gateway to the echo app until
// ctx ends, over a couple of kept-alive connections, about 200 a second.
func (c *check) traffic(ctx context.Context, gateway string) {
	ep, _, _, err := c.api.GetEndpoint(ctx, "echo")
	if err != nil {
		return
	}
	u := rig.Via(ep.URL, gateway) + "echo?msg=x"
	for rig.Sleep(ctx, 5*time.Millisecond) {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = rig.Get(rctx, c.api.HTTP, u)
		cancel()
	}
}
