package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/discovery-platform/discovery/api"
	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/authz"
	"github.com/discovery-platform/discovery/bridge"
	"github.com/discovery-platform/discovery/deployer"
	"github.com/discovery-platform/discovery/endpoint"
	"github.com/discovery-platform/discovery/endpoint/relay"
	"github.com/discovery-platform/discovery/images"
	"github.com/discovery-platform/discovery/internal/etcdhealth"
	"github.com/discovery-platform/discovery/tenants"
)

// startGateway serves endpoint URLs on --gateway-addr.
func (m *Main) startGateway(routes *endpoint.Routes, counter *endpoint.Counter, store *apps.Store) error {
	// A peer that half-closes and then goes silent is cut after 10s, so it
	// cannot hold a session (and its count) forever.
	blocking := m.Config.RelayWait == "blocking" || m.Config.RelayWait == "auto" && m.Config.Role == "gateway"
	rl, err := relay.New(relay.Config{HalfCloseTimeout: 10 * time.Second, BlockingWait: blocking})
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	m.relay = rl
	gw := endpoint.NewGateway(routes, counter, rl, m.Log.With("part", "gateway"))
	gw.APIBase = m.publicAPIURL()
	gw.Tickets = store
	gw.SetLimits(endpoint.SessionLimits{PerAddress: m.Config.PerAddress, PerTenant: m.Config.PerTenant})
	mux := http.NewServeMux()
	mux.Handle(endpoint.PathPrefix, gw)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.Handle("/", gw) // anything else: the gateway's JSON 404
	m.gateway = &http.Server{Handler: mux, ReadHeaderTimeout: m.Config.HeaderTimeout, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	guarded := newFDGuard(m.gatewayLn, rl.Len)
	if g, ok := guarded.(*fdGuard); ok {
		m.gateway.ConnState = g.track
	}
	ln := m.secure(guarded)
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

// control is what a control-plane instance wires together: the stores and
// domain services every instance serves the API with, and what the elected
// leader runs (the runtime, the reconciler, the tenant janitor).
type control struct {
	cli       *clientv3.Client
	store     *apps.Store
	tenants   *tenants.Store
	quotas    *tenants.Cache
	svc       *apps.Service
	tenantOps *apps.TenantService
	tokens    *authz.Tokens
	sessions  *endpoint.Sessions
	apiURL    string
	// leader is the reconciler of this instance's current leader term (nil
	// while it does not lead).
	leader atomic.Pointer[deployer.Reconciler]
}

// startControl runs the API on every instance, and the runtime, reconciler
// and tenant janitor on the elected leader.
func (m *Main) startControl(ctx, bg context.Context, cli *clientv3.Client, store *apps.Store, routes *endpoint.Routes, sessions *endpoint.Sessions, counter *endpoint.Counter) error {
	c := m.Config
	ts := tenants.NewStore(cli, c.EtcdPrefix, c.NamespacePrefix)
	if err := withTimeout(ctx, 15*time.Second, func(ctx context.Context) error { return ts.Ensure(ctx, tenants.Default) }); err != nil {
		return err
	}
	tokens, err := m.tokens(ctx, cli)
	if err != nil {
		return err
	}
	az, err := authz.NewAuthorizer(cli, c.EtcdPrefix, tokens, m.Log.With("part", "authz"))
	if err != nil {
		return err
	}
	az.Trust = ts
	m.goRun(func() { az.Run(bg) })
	if err := m.bootstrap(ctx, cli, az); err != nil {
		return err
	}
	catalog := images.NewStore(cli, c.EtcdPrefix)
	quotas := ts.NewCache(cli, m.Log.With("part", "tenants"))
	m.goRun(func() { quotas.Run(bg) })
	// Quota checks read tenants from memory; the usage they guard is compared
	// in the write's own transaction.
	svc := &apps.Service{Store: store, Tenants: quotas, Sessions: sessions, RequireImage: c.Runtime == "kubernetes"}
	if c.Runtime == "process" {
		// On the process runtime a command runs on this machine: tenants
		// deploy catalog images; raw commands need the right (authz).
		svc.Images, svc.Commands = catalog, az
	}
	if svc.Logs, err = m.logReader(); err != nil {
		return err
	}
	ctl := &control{cli: cli, store: store, tenants: ts, quotas: quotas, svc: svc,
		tenantOps: &apps.TenantService{Apps: svc, Tenants: ts, OnGone: az.DropTenant}, tokens: tokens, sessions: sessions}
	health := etcdhealth.New(cli, c.EtcdPrefix+"/tenants/"+tenants.Default, time.Second, m.Log.With("part", "etcd"))
	health.OnRecovered = m.recordOutage(store)
	m.goRun(func() { health.Run(bg) })

	ln := m.secure(m.ln)
	if ctl.apiURL = c.APIURL; ctl.apiURL == "" {
		ctl.apiURL = m.scheme() + "://" + loopback(ln.Addr())
	}
	sessions.Notify = func(ref apps.Ref) {
		if r := ctl.leader.Load(); r != nil {
			r.Enqueue(ref)
		}
	}
	m.startMaintenance(bg, cli, store, func() bool { return ctl.leader.Load() != nil })
	m.goRun(func() { m.lead(bg, cli, func(lctx context.Context) { m.leaderTerm(lctx, ctl) }) })

	if m.server, err = m.newAPI(bg, ctl, az, catalog, health, routes, counter); err != nil {
		return err
	}
	m.goRun(func() {
		if err := m.server.App().Listener(ln); err != nil {
			m.Log.Error("api server stopped", "err", err)
		}
	})
	return nil
}

// newAPI builds the API server of a control-plane instance: its domain
// services, get-endpoint's allocator and the handoffs over them.
func (m *Main) newAPI(bg context.Context, ctl *control, az *authz.Authorizer, catalog *images.Store, health *etcdhealth.Health,
	routes *endpoint.Routes, counter *endpoint.Counter) (*api.Server, error) {
	c := m.Config
	public := c.PublicURL
	if public == "" {
		public = m.scheme() + "://" + loopbackPort(c.GatewayAddr, m.gatewayLn)
	}
	alloc, err := endpoint.NewAllocator(routes, ctl.sessions, counter, public, apps.DefaultReservationTTL)
	if err != nil {
		return nil, err
	}
	alloc.PerClient = c.ReservationsPer
	alloc.Notify = ctl.sessions.Notify
	alloc.Tickets = ctl.store
	handoffs := &endpoint.Handoffs{Alloc: alloc, Tickets: ctl.store, Events: ctl.store}
	m.goRun(func() { handoffs.Run(bg, 2*time.Second) })
	history := endpoint.NewHistory(routes, ctl.sessions)
	if c.HistoryStep > 0 {
		history.Step, history.MaxPoints = c.HistoryStep, int(history.Keep/c.HistoryStep)
	}
	m.goRun(func() { history.Run(bg) })
	return api.New(api.Config{
		Bridge:        bridge.Handler(),
		Sessions:      ctl.sessions,
		Apps:          ctl.svc,
		Tenants:       ctl.tenants,
		Authz:         az,
		Images:        catalog,
		TenantWrites:  api.NewLimiter(c.TenantWriteRate, c.TenantWriteBurst),
		TenantOps:     ctl.tenantOps,
		Limiter:       api.NewLimiter(c.EndpointRate, c.EndpointBurst),
		Health:        health,
		HeaderTimeout: c.HeaderTimeout,
		Version:       version,
		StaleWindow:   c.StaleWindow,
		Endpoints:     alloc,
		Handoffs:      handoffs,
		Notices:       routes,
		Deploys:       routes,
		History:       history,
		Usage:         m.usageReader(),
		Ready: func(ctx context.Context) error {
			_, err := ctl.tenants.Exists(ctx, tenants.Default)
			return err
		},
		Logger: m.Log.With("part", "api"),
	}), nil
}

// bootstrap makes the first platform admin on the very first start.
func (m *Main) bootstrap(ctx context.Context, cli *clientv3.Client, az *authz.Authorizer) error {
	var file string
	err := withTimeout(ctx, 15*time.Second, func(ctx context.Context) (err error) {
		file, err = authz.Bootstrap(ctx, cli, m.Config.EtcdPrefix, az, m.Config.DataDir)
		return err
	})
	if file != "" {
		m.Log.Info("first start: wrote the admin token; use it as 'Authorization: Bearer <token>'", "file", file, "subject", authz.BootstrapSubject)
	}
	return err
}

// leaderTerm is what the elected leader runs until lctx ends: the runtime
// (opened again until it opens), the reconciler on it, and the janitor that
// finishes tenant deletions.
func (m *Main) leaderTerm(lctx context.Context, ctl *control) {
	c := m.Config
	var rt runtime
	err := wait.PollUntilContextCancel(lctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		if rt, err = m.openRuntime(ctx, ctl.apiURL, ctl.quotas, ctl.tenants); err != nil {
			m.Log.Error("cannot open the runtime; the reconciler waits", "runtime", c.Runtime, "err", err)
		}
		return err == nil, nil
	})
	if err != nil {
		return
	}
	defer rt.Close()
	janitor := m.syncTenants(lctx, rt, ctl.tenants, ctl.tenantOps)
	rec := deployer.NewReconciler(ctl.store, rt, ctl.sessions, deployer.Config{
		Resync: c.Resync, Tick: min(c.ProbeInterval, time.Second), Logger: m.Log.With("part", "reconciler"),
		Quotas: ctl.quotas,
		ReplicaEnv: func(id apps.ReplicaID) map[string]string {
			return map[string]string{"DISCOVERY_LEASE_TOKEN": ctl.tokens.LeaseToken(id.Tenant, id.App, id.Revision),
				"DISCOVERY_PUBLIC_API_URL": m.publicAPIURL()}
		},
	})
	ctl.leader.Store(rec)
	defer ctl.leader.Store(nil)
	go wait.UntilWithContext(lctx, func(ctx context.Context) {
		if err := janitor.FinishDeletions(ctx); err != nil && ctx.Err() == nil {
			m.Log.Warn("finishing tenant deletions", "err", err)
		}
	}, 2*time.Second)
	if err := rec.Run(lctx); err != nil {
		m.Log.Error("reconciler stopped", "err", err)
	}
}

// publicAPIURL is the API as game clients reach it: --public-api-url, else
// --api-url, else this instance's own API listener ("" for a gateway without
// either: its 410 hints are then paths only).
func (m *Main) publicAPIURL() string {
	switch {
	case m.Config.PublicAPIURL != "":
		return strings.TrimSuffix(m.Config.PublicAPIURL, "/")
	case m.Config.APIURL != "":
		return strings.TrimSuffix(m.Config.APIURL, "/")
	case m.ln != nil:
		return m.scheme() + "://" + loopback(m.ln.Addr())
	}
	return ""
}

// withTimeout runs f with ctx bounded by d.
func withTimeout(ctx context.Context, d time.Duration, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return f(ctx)
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
