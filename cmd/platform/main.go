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
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"k8s.io/client-go/kubernetes"

	"github.com/discovery-platform/discovery/api"
	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/endpoint"
	"github.com/discovery-platform/discovery/endpoint/relay"
	"github.com/discovery-platform/discovery/internal/certfile"
	"github.com/discovery-platform/discovery/internal/etcdhealth"
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
	// tableflip hands the listening sockets to a new process on SIGHUP. A
	// gateway worker has none of its own: its parent upgrades.
	if m.Config.GatewayFD == 0 {
		upg, err := tableflip.New(tableflip.Options{UpgradeTimeout: 2 * time.Minute})
		if err != nil {
			m.Log.Warn("in-place upgrades unavailable", "err", err)
		} else {
			m.Upg = upg
			defer upg.Stop()
		}
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
	Role        string
	Addr        string
	GatewayAddr string
	// MetricsAddr, when set, serves /metrics on a listener of its own, in
	// any role (the API also serves it on Addr; a gateway has no other).
	MetricsAddr string
	// Pprof also serves Go's profiles (/debug/pprof/) on MetricsAddr.
	Pprof     bool
	PublicURL string
	APIURL    string
	// PublicAPIURL is the API as game clients reach it: the get-endpoint
	// hint of the gateway's 410 answers, and $DISCOVERY_PUBLIC_API_URL of
	// replicas (a game page's SDK calls get-endpoint there).
	PublicAPIURL string
	Instance     string
	DataDir      string
	ReplicaDir   string
	Etcd         []string
	EtcdPrefix   string
	// EtcdCert, EtcdKey and EtcdCA are the client TLS of an external etcd.
	EtcdCert, EtcdKey, EtcdCA string
	Runtime                   string
	Kubeconfig                string
	NamespacePrefix           string
	JWTSecretFile             string
	EndpointRate              float64
	EndpointBurst             int
	StaleWindow               time.Duration
	DrainTimeout              time.Duration
	HeaderTimeout             time.Duration
	PerAddress                int
	PerTenant                 int
	ReservationsPer           int
	// TenantWriteRate and TenantWriteBurst bound each tenant's management
	// writes, in bytes per second (body + 1 KiB per write); 0 = unbounded.
	TenantWriteRate  float64
	TenantWriteBurst int
	ProbeInterval    time.Duration
	// HistoryStep is how often the session history samples the counts.
	HistoryStep time.Duration
	// ReplicaUIDs is the uid range tenants' replicas run in on the process
	// runtime (tenant number n runs as First+n, its gid the same); zero
	// means replicas run as the platform's own user.
	ReplicaUIDs uidRange
	// ReplicaEnv is added to every replica's environment (an operator's
	// base, e.g. TZ); never the platform's own environment.
	ReplicaEnv []string
	// Supervisor is the discovery-supervisor binary the process runtime
	// starts beside each replica ("" = beside this binary, else in $PATH).
	Supervisor string
	Resync     time.Duration
	LogLevel   string
	// TLSCert and TLSKey (PEM files, reloaded on change) serve the API and
	// the gateway over HTTPS/WSS; both empty serves plain HTTP.
	TLSCert string
	TLSKey  string
	// EtcdQuotaBytes is the embedded etcd's space quota (0: etcd's 2 GiB).
	EtcdQuotaBytes int64
	// GatewayProcs is how many processes serve the gateway port (this one
	// and GatewayProcs-1 workers sharing its socket; see gateways.go).
	GatewayProcs int
	// GatewayFD, in a worker, is the fd of the socket its parent shares.
	GatewayFD int
	// RelayWait is how the gateway's relay loops wait for sockets: parked
	// (in Go's netpoller), blocking (a thread each in epoll_wait) or auto
	// (blocking in a --role gateway process, parked beside the API).
	RelayWait string
	// EtcdDefrag is how often etcd is defragmented (0: never); it applies to
	// an external cluster only with EtcdDefragExternal.
	EtcdDefrag         time.Duration
	EtcdDefragExternal bool
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
	metrics   *http.Server
	metricsLn net.Listener
	workers   *workers // gateway worker processes (--gateway-procs)
	relay     *relay.Relay
	kube      kubernetes.Interface // with --runtime kubernetes
	certs     *certfile.Reloader   // nil: plain HTTP
	cancel    context.CancelFunc   // everything but the session counter
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

func envBool(name string, def bool) bool {
	if v, ok := os.LookupEnv(name); ok {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return def
}

// etcdTLSFlags are the client TLS flags of an external etcd.
func etcdTLSFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.EtcdCert, "etcd-cert", env("DISCOVERY_ETCD_CERT", ""), "client certificate (PEM) for an external --etcd that requires client-certificate TLS (env DISCOVERY_ETCD_CERT)")
	fs.StringVar(&c.EtcdKey, "etcd-key", env("DISCOVERY_ETCD_KEY", ""), "private key (PEM) of --etcd-cert (env DISCOVERY_ETCD_KEY)")
	fs.StringVar(&c.EtcdCA, "etcd-ca", env("DISCOVERY_ETCD_CA", ""), "CA (PEM) that signed the external etcd's server certificate (env DISCOVERY_ETCD_CA)")
}

// ParseFlags reads flags; each has an environment variable as its default.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("platform", flag.ContinueOnError)
	c := &m.Config
	var etcd string
	fs.StringVar(&c.Role, "role", env("DISCOVERY_ROLE", "all"), "all, api (API + reconciler) or gateway (env DISCOVERY_ROLE)")
	fs.StringVar(&c.Addr, "addr", env("DISCOVERY_ADDR", ":4000"), "API listen address (env DISCOVERY_ADDR)")
	fs.StringVar(&c.GatewayAddr, "gateway-addr", env("DISCOVERY_GATEWAY_ADDR", ":4001"), "gateway listen address (env DISCOVERY_GATEWAY_ADDR)")
	fs.BoolVar(&c.Pprof, "pprof", envBool("DISCOVERY_PPROF", false), "also serve Go's profiles (/debug/pprof/) on --metrics-addr, unauthenticated like /metrics: for an operator's loopback address, off by default (env DISCOVERY_PPROF)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", env("DISCOVERY_METRICS_ADDR", ""), "also serve Prometheus /metrics (plain HTTP) on this address, in any role; the only way to scrape a --role gateway instance; empty = off (env DISCOVERY_METRICS_ADDR)")
	fs.StringVar(&c.PublicURL, "public-url", env("DISCOVERY_PUBLIC_URL", ""), "gateway base URL given to clients by get-endpoint; default http://127.0.0.1:<gateway port>, https:// with --tls-cert (env DISCOVERY_PUBLIC_URL)")
	fs.StringVar(&c.PublicAPIURL, "public-api-url", env("DISCOVERY_PUBLIC_API_URL", ""), "the API's base URL as game clients reach it: the get-endpoint hint in the gateway's 410 answers and replicas' $DISCOVERY_PUBLIC_API_URL; default --api-url, else http://127.0.0.1:<api port> (env DISCOVERY_PUBLIC_API_URL)")
	fs.StringVar(&c.APIURL, "api-url", env("DISCOVERY_API_URL", ""), "API base URL given to replicas in $DISCOVERY_API for app-held leases; default http://127.0.0.1:<api port>, https:// with --tls-cert (env DISCOVERY_API_URL)")
	fs.StringVar(&c.Instance, "instance", env("DISCOVERY_INSTANCE", ""), "this instance's name in session counts; default host-pid (env DISCOVERY_INSTANCE)")
	fs.StringVar(&c.DataDir, "data-dir", env("DISCOVERY_DATA_DIR", "./data"), "data directory: embedded etcd, replica state and logs (env DISCOVERY_DATA_DIR)")
	fs.StringVar(&c.ReplicaDir, "replica-dir", env("DISCOVERY_REPLICA_DIR", ""), "process runtime state (replica processes and logs); default <data-dir>/replicas. Instances on one machine that share an etcd share it too, so a new leader adopts the old one's replicas (env DISCOVERY_REPLICA_DIR)")
	fs.StringVar(&etcd, "etcd", env("DISCOVERY_ETCD", ""), "comma-separated etcd endpoints; empty starts an embedded etcd (env DISCOVERY_ETCD)")
	etcdTLSFlags(fs, c)
	fs.StringVar(&c.EtcdPrefix, "etcd-prefix", env("DISCOVERY_ETCD_PREFIX", "/discovery"), "key prefix in etcd (env DISCOVERY_ETCD_PREFIX)")
	fs.StringVar(&c.Runtime, "runtime", env("DISCOVERY_RUNTIME", "process"), "where replicas run: process (local processes) or kubernetes (pods) (env DISCOVERY_RUNTIME)")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", env("DISCOVERY_KUBECONFIG", env("KUBECONFIG", "")), "with --runtime kubernetes: the cluster's kubeconfig; empty means in-cluster, with the pod's ServiceAccount (env DISCOVERY_KUBECONFIG, KUBECONFIG)")
	fs.StringVar(&c.NamespacePrefix, "namespace-prefix", env("DISCOVERY_NAMESPACE_PREFIX", "discovery-"), "tenant namespace prefix (env DISCOVERY_NAMESPACE_PREFIX)")
	fs.StringVar(&c.JWTSecretFile, "jwt-secret-file", env("DISCOVERY_JWT_SECRET_FILE", ""), "sign tokens with HS256 and this shared secret (32+ bytes) instead of the platform's Ed25519 key (env DISCOVERY_JWT_SECRET_FILE)")
	fs.Float64Var(&c.EndpointRate, "endpoint-rate", envFloat("DISCOVERY_ENDPOINT_RATE", 20), "get-endpoint calls per second per client address; 0 = unlimited (env DISCOVERY_ENDPOINT_RATE)")
	fs.IntVar(&c.EndpointBurst, "endpoint-burst", int(envFloat("DISCOVERY_ENDPOINT_BURST", 40)), "get-endpoint burst per client address (env DISCOVERY_ENDPOINT_BURST)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", envDuration("DISCOVERY_DRAIN_TIMEOUT", 10*time.Minute), "on SIGTERM or after a SIGHUP upgrade, how long open proxied sessions may run on before this process exits (env DISCOVERY_DRAIN_TIMEOUT)")
	fs.DurationVar(&c.HeaderTimeout, "read-header-timeout", envDuration("DISCOVERY_READ_HEADER_TIMEOUT", 10*time.Second), "a client must send its request headers within this (slowloris guard), on the API and the gateway (env DISCOVERY_READ_HEADER_TIMEOUT)")
	fs.IntVar(&c.PerAddress, "max-sessions-per-addr", int(envFloat("DISCOVERY_MAX_SESSIONS_PER_ADDR", 1000)), "open sessions one client address may hold on a gateway; 0 = no bound (env DISCOVERY_MAX_SESSIONS_PER_ADDR)")
	fs.IntVar(&c.PerTenant, "max-sessions-per-tenant", int(envFloat("DISCOVERY_MAX_SESSIONS_PER_TENANT", 8000)), "open sessions one tenant may hold on a gateway; 0 = no bound (env DISCOVERY_MAX_SESSIONS_PER_TENANT)")
	fs.IntVar(&c.ReservationsPer, "reservations-per-addr", int(envFloat("DISCOVERY_RESERVATIONS_PER_ADDR", 100)), "get-endpoint reservations one client address may hold at once; 0 = no bound (env DISCOVERY_RESERVATIONS_PER_ADDR)")
	fs.Float64Var(&c.TenantWriteRate, "tenant-write-rate", envFloat("DISCOVERY_TENANT_WRITE_RATE", 32<<10), "bytes per second of management writes one tenant may make on this instance (each write costs its body + 1 KiB): what a tenant writes stays in etcd's history until compaction; 0 = unbounded (env DISCOVERY_TENANT_WRITE_RATE)")
	fs.IntVar(&c.TenantWriteBurst, "tenant-write-burst", int(envFloat("DISCOVERY_TENANT_WRITE_BURST", 1<<20)), "burst of --tenant-write-rate, in bytes (env DISCOVERY_TENANT_WRITE_BURST)")
	fs.DurationVar(&c.StaleWindow, "stale-window", envDuration("DISCOVERY_STALE_WINDOW", 5*time.Minute), "while etcd is unreachable, how long get-endpoint keeps answering from memory (env DISCOVERY_STALE_WINDOW)")
	fs.DurationVar(&c.HistoryStep, "history-step", envDuration("DISCOVERY_HISTORY_STEP", 10*time.Second), "how often the session history (Bridge's chart, GET .../sessions/history) samples each revision's sessions; it keeps 24 h (env DISCOVERY_HISTORY_STEP)")
	fs.DurationVar(&c.ProbeInterval, "probe-interval", envDuration("DISCOVERY_PROBE_INTERVAL", time.Second), "replica health-check interval (env DISCOVERY_PROBE_INTERVAL)")
	uids := fs.String("replica-uids", env("DISCOVERY_REPLICA_UIDS", "auto"), "on the process runtime, run each tenant's replicas as its own unprivileged uid/gid from this range, FIRST-LAST (tenant number n gets FIRST+n); auto = 600000-699999 when the platform runs as root, off otherwise; off = as the platform's user (env DISCOVERY_REPLICA_UIDS)")
	replicaEnv := fs.String("replica-env", env("DISCOVERY_REPLICA_ENV", ""), "comma-separated KEY=VALUE added to every replica's environment (replicas never inherit the platform's own) (env DISCOVERY_REPLICA_ENV)")
	fs.IntVar(&c.GatewayProcs, "gateway-procs", int(envFloat("DISCOVERY_GATEWAY_PROCS", 1)), "processes serving the gateway port: this one and N-1 workers sharing its socket (each process holds ~10k sessions under the fd limit); they hand over together on SIGHUP (env DISCOVERY_GATEWAY_PROCS)")
	fs.IntVar(&c.GatewayFD, "gateway-fd", 0, "internal: a gateway worker's inherited listener fd")
	fs.StringVar(&c.RelayWait, "relay-wait", env("DISCOVERY_RELAY_WAIT", "auto"), "how relay loops wait for sessions' sockets: blocking (one thread each in epoll_wait: less CPU per frame where the process only relays), parked (in Go's netpoller: does not delay the API's goroutines) or auto (blocking in --role gateway processes and gateway workers, parked otherwise) (env DISCOVERY_RELAY_WAIT)")
	fs.StringVar(&c.Supervisor, "supervisor", env("DISCOVERY_SUPERVISOR", ""), "process runtime: the discovery-supervisor binary that holds each replica's output and identity; default: beside this binary, else in $PATH (env DISCOVERY_SUPERVISOR)")
	fs.DurationVar(&c.Resync, "resync", envDuration("DISCOVERY_RESYNC", 10*time.Second), "full reconcile interval (env DISCOVERY_RESYNC)")
	fs.StringVar(&c.LogLevel, "log-level", env("DISCOVERY_LOG_LEVEL", "info"), "debug, info, warn or error (env DISCOVERY_LOG_LEVEL)")
	fs.StringVar(&c.TLSCert, "tls-cert", env("DISCOVERY_TLS_CERT", ""), "PEM certificate (chain) serving the API and the gateway over HTTPS/WSS; reloaded when the file changes; needs --tls-key (env DISCOVERY_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", env("DISCOVERY_TLS_KEY", ""), "PEM private key of --tls-cert; reloaded when the file changes (env DISCOVERY_TLS_KEY)")
	fs.Int64Var(&c.EtcdQuotaBytes, "etcd-quota-bytes", int64(envFloat("DISCOVERY_ETCD_QUOTA_BYTES", 0)), "embedded etcd's space quota in bytes; past it etcd raises NOSPACE and refuses writes; 0 = etcd's 2 GiB (env DISCOVERY_ETCD_QUOTA_BYTES)")
	fs.DurationVar(&c.EtcdDefrag, "etcd-defrag-interval", envDuration("DISCOVERY_ETCD_DEFRAG_INTERVAL", 24*time.Hour), "how often the embedded etcd is defragmented (returns the space compaction freed); 0 = never (env DISCOVERY_ETCD_DEFRAG_INTERVAL)")
	fs.BoolVar(&c.EtcdDefragExternal, "etcd-defrag-external", envBool("DISCOVERY_ETCD_DEFRAG_EXTERNAL", false), "also defragment an external --etcd cluster, one member at a time, every --etcd-defrag-interval (env DISCOVERY_ETCD_DEFRAG_EXTERNAL)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if err := c.settle(etcd, *uids, *replicaEnv); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	m.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	return nil
}

// settle checks the flags' values together and fills what they leave to
// defaults: the etcd endpoints, the replica uid range and environment.
func (c *Config) settle(etcd, uids, replicaEnv string) error {
	c.Etcd = splitList(etcd)
	var err error
	if c.ReplicaUIDs, err = parseUIDRange(uids, os.Geteuid() == 0); err != nil {
		return err
	}
	for _, kv := range splitList(replicaEnv) {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("--replica-env %q: want KEY=VALUE", kv)
		}
		c.ReplicaEnv = append(c.ReplicaEnv, kv)
	}
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
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together: give both, or neither for plain HTTP")
	}
	if c.EtcdQuotaBytes < 0 || c.EtcdDefrag < 0 {
		return fmt.Errorf("--etcd-quota-bytes and --etcd-defrag-interval must not be negative")
	}
	if c.GatewayProcs < 1 || c.GatewayProcs > 64 {
		return fmt.Errorf("--gateway-procs %d: want 1-64", c.GatewayProcs)
	}
	switch c.RelayWait {
	case "auto", "blocking", "parked":
	default:
		return fmt.Errorf("--relay-wait %q: want auto, blocking or parked", c.RelayWait)
	}
	if c.GatewayFD != 0 && (c.GatewayFD != gatewayWorkerFD || c.Role != "gateway") {
		return fmt.Errorf("--gateway-fd is set by the platform for its gateway workers only")
	}
	if c.Runtime != "process" && c.Runtime != "kubernetes" {
		return fmt.Errorf("--runtime %q: want process or kubernetes", c.Runtime)
	}
	if c.HistoryStep < 100*time.Millisecond {
		return fmt.Errorf("--history-step %s: want at least 100ms", c.HistoryStep)
	}
	return nil
}

// Run starts etcd (embedded or client) and the parts of the instance's role,
// and returns once they listen.
func (m *Main) Run(ctx context.Context) error {
	c := m.Config
	if err := privateDataDir(c); err != nil {
		return err
	}
	// Listeners first: after an upgrade they are inherited from the old
	// process, which keeps its open sessions but must let go of etcd.
	if err := m.listenAll(); err != nil {
		return err
	}
	upgrading := m.Upg != nil && m.Upg.HasParent()
	if upgrading {
		// Connections wait in the sockets' backlog until we serve.
		if err := m.Upg.Ready(); err != nil {
			return err
		}
		m.Log.Info("in-place upgrade: sockets inherited; waiting for the old process to release etcd")
	}
	endpoints, err := m.connectEtcd(upgrading)
	if err != nil {
		return err
	}
	cli := m.client
	bg, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	keep, keepCancel := context.WithCancel(context.Background())
	m.keep = keepCancel

	// Every role reads routes and counts sessions.
	store := apps.NewStore(cli, c.EtcdPrefix)
	routes := endpoint.NewRoutes(store, m.Log.With("part", "routes"))
	counter := endpoint.NewCounter(cli, endpoint.CounterConfig{Prefix: c.EtcdPrefix, Instance: c.Instance, Logger: m.Log.With("part", "counter")})
	sessions := endpoint.NewSessions(cli, c.EtcdPrefix, store, counter, m.Log.With("part", "sessions"))
	m.goRun(func() { routes.Run(bg) })
	m.keepWG.Add(1)
	go func() { defer m.keepWG.Done(); counter.Run(keep) }()
	m.goRun(func() { sessions.Run(bg) })

	if c.Role == "all" || c.Role == "gateway" {
		if err := m.startGateway(routes, counter, store); err != nil {
			return err
		}
		if err := m.startGatewayWorkers(endpoints); err != nil {
			return err
		}
	}
	if c.Role == "gateway" {
		// The API role's prober serves /readyz; a gateway alone still
		// reports discovery_etcd_up and logs the outage.
		health := etcdhealth.New(cli, c.EtcdPrefix+"/routes", time.Second, m.Log.With("part", "etcd"))
		m.goRun(func() { health.Run(bg) })
	}
	m.startMetrics()
	if c.Role == "all" || c.Role == "api" {
		if err := m.startControl(ctx, bg, cli, store, routes, sessions, counter); err != nil {
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

// listenAll loads the TLS certificate and opens (or, in a gateway worker,
// inherits) the listeners of this instance's role.
func (m *Main) listenAll() error {
	c := m.Config
	var err error
	if c.TLSCert != "" {
		// Before the listeners: a new binary with a bad certificate fails
		// its upgrade and the old process serves on.
		m.certs, err = certfile.New(certfile.Config{CertFile: c.TLSCert, KeyFile: c.TLSKey, Logger: m.Log.With("part", "tls")})
		if err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
	}
	if c.Role == "all" || c.Role == "gateway" {
		if c.GatewayFD != 0 {
			m.gatewayLn, err = gatewayListener()
		} else {
			m.gatewayLn, err = m.listenGateway(c.GatewayAddr)
		}
		if err != nil {
			return fmt.Errorf("listen %s: %w", c.GatewayAddr, err)
		}
	}
	if c.Role == "all" || c.Role == "api" {
		if m.ln, err = m.listen(c.Addr); err != nil {
			return fmt.Errorf("listen %s: %w", c.Addr, err)
		}
	}
	if c.MetricsAddr != "" {
		if m.metricsLn, err = m.listen(c.MetricsAddr); err != nil {
			return fmt.Errorf("listen %s: %w", c.MetricsAddr, err)
		}
	}
	return nil
}

// connectEtcd starts the embedded etcd unless --etcd names a cluster (after
// an upgrade, waiting for the old process to let go of it) and connects
// m.client; it returns the endpoints.
func (m *Main) connectEtcd(upgrading bool) ([]string, error) {
	c := m.Config
	endpoints := c.Etcd
	if len(endpoints) == 0 {
		wait := time.Duration(0)
		if upgrading {
			wait = 60 * time.Second
		}
		e, url, err := startEmbeddedEtcd(c.DataDir, wait, c.EtcdQuotaBytes)
		if err != nil {
			return nil, fmt.Errorf("embedded etcd: %w", err)
		}
		m.etcd = e
		endpoints = []string{url}
		m.Log.Info("embedded etcd ready", "dir", filepath.Join(c.DataDir, "etcd"), "client_url", url)
	}
	tlsCfg, err := etcdTLS(c)
	if err != nil {
		return nil, err
	}
	// The client's own zap log repeats every retry; the platform logs what
	// matters. gRPC's reconnect backoff grows to 120 s by default: after a
	// few seconds of etcd outage the watches that feed the route table
	// would come back seconds after etcd did, and a gateway would answer
	// from a table behind the API's. Reconnect within a second instead.
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, TLS: tlsCfg, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{MinConnectTimeout: 5 * time.Second,
			Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second}})}})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	m.client = cli
	return endpoints, nil
}

func (m *Main) goRun(f func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
}

// Addr is where the API listens ("" without the API role).
func (m *Main) Addr() string {
	if m.ln == nil {
		return ""
	}
	return m.ln.Addr().String()
}

// MetricsAddr is where /metrics is served on its own ("" without
// --metrics-addr).
func (m *Main) MetricsAddr() string {
	if m.metricsLn == nil {
		return ""
	}
	return m.metricsLn.Addr().String()
}

// GatewayAddr is where the gateway listens ("" without the gateway role).
func (m *Main) GatewayAddr() string {
	if m.gatewayLn == nil {
		return ""
	}
	return m.gatewayLn.Addr().String()
}
