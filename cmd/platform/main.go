// Command platform is Discovery's server: the REST API, the reconciler that
// runs replicas, and (with no --etcd endpoints) an embedded etcd under its data
// dir. Replicas outlive it: a restarted platform re-adopts them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/discovery-platform/discovery/api"
	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/authz"
	"github.com/discovery-platform/discovery/bridge"
	"github.com/discovery-platform/discovery/deployer"
	"github.com/discovery-platform/discovery/deployer/process"
	"github.com/discovery-platform/discovery/endpoint"
	"github.com/discovery-platform/discovery/endpoint/relay"
	"github.com/discovery-platform/discovery/internal/etcdhealth"
	"github.com/discovery-platform/discovery/internal/etcdmirror"
	"github.com/discovery-platform/discovery/tenants"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "backup" || os.Args[1] == "restore") {
		run := backup
		if os.Args[1] == "restore" {
			run = restore
		}
		if err := run(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "platform:", err)
			os.Exit(1)
		}
		return
	}
	m := NewMain()
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "platform:", err)
		os.Exit(2)
	}
	// tableflip hands the listening sockets to a new process on SIGHUP.
	upg, err := tableflip.New(tableflip.Options{UpgradeTimeout: 2 * time.Minute})
	if err != nil {
		m.Log.Warn("in-place upgrades unavailable", "err", err)
	} else {
		m.Upg = upg
		defer upg.Stop()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.Run(ctx); err != nil {
		m.Log.Error("start failed", "err", err)
		_ = m.Close()
		os.Exit(1)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	var exit <-chan struct{}
	if m.Upg != nil {
		exit = m.Upg.Exit()
	}
	for {
		select {
		case <-hup:
			if m.Upg == nil {
				m.Log.Warn("SIGHUP ignored: in-place upgrades unavailable")
				continue
			}
			m.Log.Info("SIGHUP: starting the new binary; this process keeps its open sessions")
			go func() {
				if err := m.Upg.Upgrade(); err != nil {
					m.Log.Error("upgrade failed; this process keeps serving", "err", err)
				}
			}()
			continue
		case <-exit:
			m.Log.Info("the new process is ready: handing over, then draining open sessions", "drain_timeout", m.Config.DrainTimeout)
			m.Handoff()
		case <-ctx.Done():
			m.Log.Info("stopping: no new connections; draining open sessions, replicas keep running", "drain_timeout", m.Config.DrainTimeout)
			m.StopAccepting()
			m.Drain(m.Config.DrainTimeout)
		}
		break
	}
	if err := m.Close(); err != nil {
		m.Log.Error("shutdown", "err", err)
		os.Exit(1)
	}
}

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// Config is the platform's configuration, from flags and environment.
type Config struct {
	// Role is all (API, reconciler, gateway), api (API and reconciler) or
	// gateway (only the gateway; needs --etcd).
	Role            string
	Addr            string
	GatewayAddr     string
	PublicURL       string
	APIURL          string
	Instance        string
	DataDir         string
	ReplicaDir      string
	Etcd            []string
	EtcdPrefix      string
	Runtime         string
	NamespacePrefix string
	JWTSecretFile   string
	EndpointRate    float64
	EndpointBurst   int
	StaleWindow     time.Duration
	DrainTimeout    time.Duration
	ProbeInterval   time.Duration
	Resync          time.Duration
	LogLevel        string
}

// Main is the running platform: ParseFlags, Run, Close (so an end-to-end test
// can drive it the way the binary does).
type Main struct {
	Config Config
	Log    *slog.Logger
	// Upg hands listeners to a new process on SIGHUP (nil: not supported).
	Upg *tableflip.Upgrader

	etcd      *embed.Etcd
	client    *clientv3.Client
	server    *api.Server
	ln        net.Listener
	gateway   *http.Server
	gatewayLn net.Listener
	relay     *relay.Relay
	cancel    context.CancelFunc // everything but the session counter
	wg        sync.WaitGroup
	keep      context.CancelFunc // the session counter: it runs until the last session ends
	keepWG    sync.WaitGroup
	stopOnce  sync.Once
}

// NewMain returns a platform with default configuration.
func NewMain() *Main {
	return &Main{Log: slog.Default()}
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if v, ok := os.LookupEnv(name); ok {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(name); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

// ParseFlags reads flags; each has an environment variable as its default.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("platform", flag.ContinueOnError)
	c := &m.Config
	var etcd string
	fs.StringVar(&c.Role, "role", env("DISCOVERY_ROLE", "all"), "all, api (API + reconciler) or gateway (env DISCOVERY_ROLE)")
	fs.StringVar(&c.Addr, "addr", env("DISCOVERY_ADDR", ":4000"), "API listen address (env DISCOVERY_ADDR)")
	fs.StringVar(&c.GatewayAddr, "gateway-addr", env("DISCOVERY_GATEWAY_ADDR", ":4001"), "gateway listen address (env DISCOVERY_GATEWAY_ADDR)")
	fs.StringVar(&c.PublicURL, "public-url", env("DISCOVERY_PUBLIC_URL", ""), "gateway base URL given to clients by get-endpoint; default http://127.0.0.1:<gateway port> (env DISCOVERY_PUBLIC_URL)")
	fs.StringVar(&c.APIURL, "api-url", env("DISCOVERY_API_URL", ""), "API base URL given to replicas in $DISCOVERY_API for app-held leases; default http://127.0.0.1:<api port> (env DISCOVERY_API_URL)")
	fs.StringVar(&c.Instance, "instance", env("DISCOVERY_INSTANCE", ""), "this instance's name in session counts; default host-pid (env DISCOVERY_INSTANCE)")
	fs.StringVar(&c.DataDir, "data-dir", env("DISCOVERY_DATA_DIR", "./data"), "data directory: embedded etcd, replica state and logs (env DISCOVERY_DATA_DIR)")
	fs.StringVar(&c.ReplicaDir, "replica-dir", env("DISCOVERY_REPLICA_DIR", ""), "process runtime state (replica processes and logs); default <data-dir>/replicas. Instances on one machine that share an etcd share it too, so a new leader adopts the old one's replicas (env DISCOVERY_REPLICA_DIR)")
	fs.StringVar(&etcd, "etcd", env("DISCOVERY_ETCD", ""), "comma-separated etcd endpoints; empty starts an embedded etcd (env DISCOVERY_ETCD)")
	fs.StringVar(&c.EtcdPrefix, "etcd-prefix", env("DISCOVERY_ETCD_PREFIX", "/discovery"), "key prefix in etcd (env DISCOVERY_ETCD_PREFIX)")
	fs.StringVar(&c.Runtime, "runtime", env("DISCOVERY_RUNTIME", "process"), "where replicas run: process (env DISCOVERY_RUNTIME)")
	fs.StringVar(&c.NamespacePrefix, "namespace-prefix", env("DISCOVERY_NAMESPACE_PREFIX", "discovery-"), "tenant namespace prefix (env DISCOVERY_NAMESPACE_PREFIX)")
	fs.StringVar(&c.JWTSecretFile, "jwt-secret-file", env("DISCOVERY_JWT_SECRET_FILE", ""), "sign tokens with HS256 and this shared secret (32+ bytes) instead of the platform's Ed25519 key (env DISCOVERY_JWT_SECRET_FILE)")
	fs.Float64Var(&c.EndpointRate, "endpoint-rate", envFloat("DISCOVERY_ENDPOINT_RATE", 20), "get-endpoint calls per second per client address; 0 = unlimited (env DISCOVERY_ENDPOINT_RATE)")
	fs.IntVar(&c.EndpointBurst, "endpoint-burst", int(envFloat("DISCOVERY_ENDPOINT_BURST", 40)), "get-endpoint burst per client address (env DISCOVERY_ENDPOINT_BURST)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", envDuration("DISCOVERY_DRAIN_TIMEOUT", 10*time.Minute), "on SIGTERM or after a SIGHUP upgrade, how long open proxied sessions may run on before this process exits (env DISCOVERY_DRAIN_TIMEOUT)")
	fs.DurationVar(&c.StaleWindow, "stale-window", envDuration("DISCOVERY_STALE_WINDOW", 5*time.Minute), "while etcd is unreachable, how long get-endpoint keeps answering from memory (env DISCOVERY_STALE_WINDOW)")
	fs.DurationVar(&c.ProbeInterval, "probe-interval", envDuration("DISCOVERY_PROBE_INTERVAL", time.Second), "replica health-check interval (env DISCOVERY_PROBE_INTERVAL)")
	fs.DurationVar(&c.Resync, "resync", envDuration("DISCOVERY_RESYNC", 10*time.Second), "full reconcile interval (env DISCOVERY_RESYNC)")
	fs.StringVar(&c.LogLevel, "log-level", env("DISCOVERY_LOG_LEVEL", "info"), "debug, info, warn or error (env DISCOVERY_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	c.Etcd = splitList(etcd)
	switch c.Role {
	case "all", "api":
	case "gateway":
		if len(c.Etcd) == 0 {
			return fmt.Errorf("--role gateway needs --etcd: a gateway serves a control plane's etcd, it has none of its own")
		}
	default:
		return fmt.Errorf("--role %q: want all, api or gateway", c.Role)
	}
	if c.ReplicaDir == "" {
		c.ReplicaDir = filepath.Join(c.DataDir, "replicas")
	}
	if c.Instance == "" {
		host, _ := os.Hostname()
		c.Instance = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.Runtime != "process" {
		return fmt.Errorf("--runtime %q: only \"process\" is available in this build", c.Runtime)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	m.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	return nil
}

// Run starts etcd (embedded or client) and the parts of the instance's role,
// and returns once they listen.
func (m *Main) Run(ctx context.Context) error {
	c := m.Config
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return err
	}
	// Listeners first: after an upgrade they are inherited from the old
	// process, which keeps its open sessions but must let go of etcd.
	var err error
	if c.Role == "all" || c.Role == "gateway" {
		if m.gatewayLn, err = m.listen(c.GatewayAddr); err != nil {
			return fmt.Errorf("listen %s: %w", c.GatewayAddr, err)
		}
	}
	if c.Role == "all" || c.Role == "api" {
		if m.ln, err = m.listen(c.Addr); err != nil {
			return fmt.Errorf("listen %s: %w", c.Addr, err)
		}
	}
	upgrading := m.Upg != nil && m.Upg.HasParent()
	if upgrading {
		// Connections wait in the sockets' backlog until we serve.
		if err := m.Upg.Ready(); err != nil {
			return err
		}
		m.Log.Info("in-place upgrade: sockets inherited; waiting for the old process to release etcd")
	}
	endpoints := c.Etcd
	if len(endpoints) == 0 {
		wait := time.Duration(0)
		if upgrading {
			wait = 60 * time.Second
		}
		e, url, err := startEmbeddedEtcd(filepath.Join(c.DataDir, "etcd"), wait)
		if err != nil {
			return fmt.Errorf("embedded etcd: %w", err)
		}
		m.etcd = e
		endpoints = []string{url}
		m.Log.Info("embedded etcd ready", "dir", filepath.Join(c.DataDir, "etcd"), "client_url", url)
	}
	// The client's own zap log repeats every retry; the platform logs what matters.
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	m.client = cli
	bg, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	keep, keepCancel := context.WithCancel(context.Background())
	m.keep = keepCancel

	// Every role reads routes and counts sessions.
	routes := endpoint.NewRoutes(cli, c.EtcdPrefix, m.Log.With("part", "routes"))
	counter := endpoint.NewCounter(cli, endpoint.CounterConfig{Prefix: c.EtcdPrefix, Instance: c.Instance, Logger: m.Log.With("part", "counter")})
	sessions := endpoint.NewSessions(cli, c.EtcdPrefix, counter, m.Log.With("part", "sessions"))
	m.goRun(func() { routes.Run(bg) })
	m.keepWG.Add(1)
	go func() { defer m.keepWG.Done(); counter.Run(keep) }()
	m.goRun(func() { sessions.Run(bg) })

	if c.Role == "all" || c.Role == "gateway" {
		if err := m.startGateway(routes, counter); err != nil {
			return err
		}
	}
	if c.Role == "all" || c.Role == "api" {
		if err := m.startControl(ctx, bg, cli, routes, sessions, counter); err != nil {
			return err
		}
	}
	if m.Upg != nil && !upgrading {
		if err := m.Upg.Ready(); err != nil {
			return err
		}
	}
	m.Log.Info("platform ready", "version", version, "role", c.Role, "api", m.Addr(), "gateway", m.GatewayAddr(), "data_dir", c.DataDir, "instance", c.Instance)
	return nil
}

func (m *Main) goRun(f func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
}

// startGateway serves endpoint URLs on --gateway-addr.
func (m *Main) startGateway(routes *endpoint.Routes, counter *endpoint.Counter) error {
	// A peer that half-closes and then goes silent is cut after 10s, so it
	// cannot hold a session (and its count) forever.
	rl, err := relay.New(relay.Config{HalfCloseTimeout: 10 * time.Second})
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	m.relay = rl
	gw := endpoint.NewGateway(routes, counter, rl, m.Log.With("part", "gateway"))
	mux := http.NewServeMux()
	mux.Handle(endpoint.PathPrefix, gw)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.Handle("/", gw) // anything else: the gateway's JSON 404
	m.gateway = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	ln := m.gatewayLn
	m.goRun(func() {
		// Serve only with a loaded route table: a reconnect must never get a
		// 404 because the table was still empty (after an upgrade, say).
		for i := 0; i < 1500 && routes.Synced().IsZero(); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		if err := m.gateway.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Log.Error("gateway stopped", "err", err)
		}
	})
	return nil
}

// startControl runs the process runtime, the reconciler and the API.
func (m *Main) startControl(ctx, bg context.Context, cli *clientv3.Client, routes *endpoint.Routes, sessions *endpoint.Sessions, counter *endpoint.Counter) error {
	c := m.Config
	ts := tenants.NewStore(cli, c.EtcdPrefix, c.NamespacePrefix)
	ectx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err := ts.Ensure(ectx, tenants.Default)
	cancel()
	if err != nil {
		return err
	}
	store := apps.NewStore(cli, c.EtcdPrefix)
	svc := &apps.Service{Store: store, Tenants: ts}

	tokens, err := m.tokens(ctx, cli)
	if err != nil {
		return err
	}
	az, err := authz.NewAuthorizer(cli, c.EtcdPrefix, tokens, m.Log.With("part", "authz"))
	if err != nil {
		return err
	}
	m.goRun(func() { az.Run(bg) })
	bctx, bcancel := context.WithTimeout(ctx, 15*time.Second)
	file, err := authz.Bootstrap(bctx, cli, c.EtcdPrefix, az, c.DataDir)
	bcancel()
	if err != nil {
		return err
	}
	if file != "" {
		m.Log.Info("first start: wrote the admin token; use it as 'Authorization: Bearer <token>'", "file", file, "subject", authz.BootstrapSubject)
	}
	tenantOps := &apps.TenantService{Apps: svc, Tenants: ts, OnGone: az.DropTenant}
	health := etcdhealth.New(cli, c.EtcdPrefix+"/tenants/"+tenants.Default, time.Second, m.Log.With("part", "etcd"))
	m.goRun(func() { health.Run(bg) })

	ln := m.ln
	apiURL := c.APIURL
	if apiURL == "" {
		apiURL = "http://" + loopback(ln.Addr())
	}
	// The reconciler (with its runtime) and the tenant janitor run on the
	// elected leader only; every instance serves the API.
	var current atomic.Pointer[deployer.Reconciler]
	sessions.Notify = func(ref apps.Ref) {
		if r := current.Load(); r != nil {
			r.Enqueue(ref)
		}
	}
	m.goRun(func() {
		m.lead(bg, cli, func(lctx context.Context) {
			rt, err := process.New(process.Config{
				StateDir:      c.ReplicaDir,
				ProbeInterval: c.ProbeInterval,
				Env:           append(os.Environ(), "DISCOVERY_API="+apiURL),
				Logger:        m.Log.With("part", "runtime"),
			})
			if err != nil {
				m.Log.Error("process runtime", "err", err)
				return
			}
			defer rt.Close()
			rec := deployer.NewReconciler(store, rt, sessions, deployer.Config{
				Resync: c.Resync, Tick: min(c.ProbeInterval, time.Second), Logger: m.Log.With("part", "reconciler"),
				Quotas: ts,
				ReplicaEnv: func(id deployer.ReplicaID) map[string]string {
					return map[string]string{"DISCOVERY_LEASE_TOKEN": tokens.LeaseToken(id.Tenant, id.App, id.Revision)}
				},
			})
			current.Store(rec)
			defer current.Store(nil)
			go func() {
				for etcdmirror.Sleep(lctx, 2*time.Second) {
					if err := tenantOps.FinishDeletions(lctx); err != nil && lctx.Err() == nil {
						m.Log.Warn("finishing tenant deletions", "err", err)
					}
				}
			}()
			if err := rec.Run(lctx); err != nil {
				m.Log.Error("reconciler stopped", "err", err)
			}
		})
	})

	public := c.PublicURL
	if public == "" {
		public = "http://" + loopbackPort(c.GatewayAddr, m.gatewayLn)
	}
	alloc, err := endpoint.NewAllocator(routes, sessions, counter, public, 30*time.Second)
	if err != nil {
		return err
	}
	m.server = api.New(api.Config{
		Bridge:      bridge.Handler(),
		Sessions:    sessions,
		Apps:        svc,
		Tenants:     ts,
		Tokens:      tokens,
		Auth:        az,
		Authz:       az,
		TenantOps:   tenantOps,
		Limiter:     api.NewLimiter(c.EndpointRate, c.EndpointBurst),
		Health:      health,
		Version:     version,
		StaleWindow: c.StaleWindow,
		Logs:        process.LogReader{StateDir: c.ReplicaDir},
		Endpoints:   alloc,
		Holds:       endpoint.NewHolds(cli, c.EtcdPrefix),
		Ready: func(ctx context.Context) error {
			_, err := cli.Get(ctx, c.EtcdPrefix+"/tenants/"+tenants.Default, clientv3.WithCountOnly())
			return err
		},
		Logger: m.Log.With("part", "api"),
	})
	m.goRun(func() {
		if err := m.server.App().Listener(ln); err != nil {
			m.Log.Error("api server stopped", "err", err)
		}
	})
	return nil
}

var leaderChanges = promauto.NewCounter(prometheus.CounterOpts{
	Name: "discovery_leader_changes_total", Help: "Times this instance became the reconciler's leader.",
})

// lead campaigns for leadership (an etcd election with a 5 s session) and runs
// work while this instance leads; when the session is lost (this instance was
// cut off from etcd for longer than its TTL) work is cancelled and it campaigns
// again. Another instance takes over within about the TTL after a leader dies.
func (m *Main) lead(ctx context.Context, cli *clientv3.Client, work func(context.Context)) {
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(cli, concurrency.WithTTL(5), concurrency.WithContext(ctx))
		if err != nil {
			if ctx.Err() == nil {
				m.Log.Warn("leader election: no session; retrying", "err", err)
				etcdmirror.Sleep(ctx, time.Second)
			}
			continue
		}
		el := concurrency.NewElection(sess, m.Config.EtcdPrefix+"/leader")
		if err := el.Campaign(ctx, m.Config.Instance); err != nil {
			_ = sess.Close()
			continue
		}
		leaderChanges.Inc()
		m.Log.Info("became the reconciler's leader", "instance", m.Config.Instance)
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-sess.Done():
				m.Log.Warn("lost leadership (etcd session ended)", "instance", m.Config.Instance)
			case <-lctx.Done():
			}
			cancel()
		}()
		work(lctx)
		cancel()
		rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = el.Resign(rctx)
		rcancel()
		_ = sess.Close()
	}
}

// tokens signs with the HS256 secret when one is configured, else with the
// platform's Ed25519 key kept in etcd.
func (m *Main) tokens(ctx context.Context, cli *clientv3.Client) (*authz.Tokens, error) {
	if f := m.Config.JWTSecretFile; f != "" {
		secret, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--jwt-secret-file: %w", err)
		}
		return authz.NewHS256Tokens([]byte(strings.TrimSpace(string(secret))))
	}
	kctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	key, err := authz.LoadOrCreateKey(kctx, cli, m.Config.EtcdPrefix)
	if err != nil {
		return nil, err
	}
	return authz.NewEdDSATokens(key), nil
}

// loopback turns a listen address into one a local client can dial.
func loopback(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok && (t.IP == nil || t.IP.IsUnspecified()) {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(t.Port))
	}
	return a.String()
}

// loopbackPort is the gateway's local address: from its listener when this
// instance runs one, else from the configured address.
func loopbackPort(addr string, ln net.Listener) string {
	if ln != nil {
		return loopback(ln.Addr())
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// Addr is where the API listens ("" without the API role).
func (m *Main) Addr() string {
	if m.ln == nil {
		return ""
	}
	return m.ln.Addr().String()
}

// GatewayAddr is where the gateway listens ("" without the gateway role).
func (m *Main) GatewayAddr() string {
	if m.gatewayLn == nil {
		return ""
	}
	return m.gatewayLn.Addr().String()
}

// listen opens a listening socket, inherited from the previous process
// after an in-place upgrade.
func (m *Main) listen(addr string) (net.Listener, error) {
	if m.Upg != nil {
		return m.Upg.Listen("tcp", addr)
	}
	return net.Listen("tcp", addr)
}

// StopAccepting closes the API and the gateway to new connections; sessions
// already upgraded stay with the relay.
func (m *Main) StopAccepting() {
	m.stopOnce.Do(func() {
		if m.server != nil {
			// Idle keep-alive clients would hold the shutdown to its bound;
			// past it they are simply closed, which is fine.
			_ = m.server.App().ShutdownWithTimeout(5 * time.Second)
		}
		if m.gateway != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = m.gateway.Shutdown(sctx)
			cancel()
		}
	})
}

// Drain waits until the relay holds no session, or the bound passes.
func (m *Main) Drain(bound time.Duration) {
	if m.relay == nil {
		return
	}
	deadline := time.Now().Add(bound)
	for m.relay.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := m.relay.Len(); n > 0 {
		m.Log.Warn("drain bound reached: closing the sessions still open", "sessions", n)
	}
}

// Handoff runs in the old process once the new one is ready: stop serving,
// let go of etcd (the new process opens the same data dir and ports), keep
// relaying and counting the sessions already open until they end.
func (m *Main) Handoff() {
	m.StopAccepting()
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	if m.etcd != nil {
		m.etcd.Close()
		<-m.etcd.Server.StopNotify()
		m.etcd = nil
	}
	m.Drain(m.Config.DrainTimeout)
}

// Close stops everything: the API, the gateway (closing any session still
// open), the reconciler, the session counter and etcd. Replicas keep running.
func (m *Main) Close() error {
	m.StopAccepting()
	var errs []error
	if m.relay != nil {
		errs = append(errs, m.relay.Close())
	}
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	if m.keep != nil {
		m.keep()
	}
	m.keepWG.Wait()
	if m.client != nil {
		errs = append(errs, m.client.Close())
	}
	if m.etcd != nil {
		m.etcd.Close()
		<-m.etcd.Server.StopNotify()
	}
	return errors.Join(errs...)
}
