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
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/discovery-platform/discovery/api"
	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/deployer"
	"github.com/discovery-platform/discovery/deployer/process"
	"github.com/discovery-platform/discovery/tenants"
)

func main() {
	m := NewMain()
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "platform:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.Run(ctx); err != nil {
		m.Log.Error("start failed", "err", err)
		_ = m.Close()
		os.Exit(1)
	}
	<-ctx.Done()
	m.Log.Info("shutting down; replicas keep running and are re-adopted at next start")
	if err := m.Close(); err != nil {
		m.Log.Error("shutdown", "err", err)
		os.Exit(1)
	}
}

// Config is the platform's configuration, from flags and environment.
type Config struct {
	Addr            string
	DataDir         string
	Etcd            []string
	EtcdPrefix      string
	Runtime         string
	NamespacePrefix string
	ProbeInterval   time.Duration
	Resync          time.Duration
	LogLevel        string
}

// Main is the running platform: ParseFlags, Run, Close (so an end-to-end test
// can drive it the way the binary does).
type Main struct {
	Config Config
	Log    *slog.Logger

	etcd    *embed.Etcd
	client  *clientv3.Client
	runtime *process.Runtime
	server  *api.Server
	ln      net.Listener
	cancel  context.CancelFunc
	wg      sync.WaitGroup
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
	fs.StringVar(&c.Addr, "addr", env("DISCOVERY_ADDR", ":4000"), "API listen address (env DISCOVERY_ADDR)")
	fs.StringVar(&c.DataDir, "data-dir", env("DISCOVERY_DATA_DIR", "./data"), "data directory: embedded etcd, replica state and logs (env DISCOVERY_DATA_DIR)")
	fs.StringVar(&etcd, "etcd", env("DISCOVERY_ETCD", ""), "comma-separated etcd endpoints; empty starts an embedded etcd (env DISCOVERY_ETCD)")
	fs.StringVar(&c.EtcdPrefix, "etcd-prefix", env("DISCOVERY_ETCD_PREFIX", "/discovery"), "key prefix in etcd (env DISCOVERY_ETCD_PREFIX)")
	fs.StringVar(&c.Runtime, "runtime", env("DISCOVERY_RUNTIME", "process"), "where replicas run: process (env DISCOVERY_RUNTIME)")
	fs.StringVar(&c.NamespacePrefix, "namespace-prefix", env("DISCOVERY_NAMESPACE_PREFIX", "discovery-"), "tenant namespace prefix (env DISCOVERY_NAMESPACE_PREFIX)")
	fs.DurationVar(&c.ProbeInterval, "probe-interval", envDuration("DISCOVERY_PROBE_INTERVAL", time.Second), "replica health-check interval (env DISCOVERY_PROBE_INTERVAL)")
	fs.DurationVar(&c.Resync, "resync", envDuration("DISCOVERY_RESYNC", 10*time.Second), "full reconcile interval (env DISCOVERY_RESYNC)")
	fs.StringVar(&c.LogLevel, "log-level", env("DISCOVERY_LOG_LEVEL", "info"), "debug, info, warn or error (env DISCOVERY_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	for _, e := range strings.Split(etcd, ",") {
		if e = strings.TrimSpace(e); e != "" {
			c.Etcd = append(c.Etcd, e)
		}
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

// Run starts etcd (embedded or client), the runtime, the reconciler and the
// API, and returns once the API listens.
func (m *Main) Run(ctx context.Context) error {
	c := m.Config
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return err
	}
	endpoints := c.Etcd
	if len(endpoints) == 0 {
		e, url, err := startEmbeddedEtcd(filepath.Join(c.DataDir, "etcd"))
		if err != nil {
			return fmt.Errorf("embedded etcd: %w", err)
		}
		m.etcd = e
		endpoints = []string{url}
		m.Log.Info("embedded etcd ready", "dir", filepath.Join(c.DataDir, "etcd"), "client_url", url)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	m.client = cli

	ts := tenants.NewStore(cli, c.EtcdPrefix, c.NamespacePrefix)
	ectx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err = ts.Ensure(ectx, tenants.Default)
	cancel()
	if err != nil {
		return err
	}
	store := apps.NewStore(cli, c.EtcdPrefix)

	rt, err := process.New(process.Config{
		StateDir:      filepath.Join(c.DataDir, "replicas"),
		ProbeInterval: c.ProbeInterval,
		Logger:        m.Log.With("part", "runtime"),
	})
	if err != nil {
		return fmt.Errorf("process runtime: %w", err)
	}
	m.runtime = rt

	rec := deployer.NewReconciler(store, rt, nil, deployer.Config{Resync: c.Resync, Tick: min(c.ProbeInterval, time.Second), Logger: m.Log.With("part", "reconciler")})
	rctx, rcancel := context.WithCancel(context.Background())
	m.cancel = rcancel
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := rec.Run(rctx); err != nil {
			m.Log.Error("reconciler stopped", "err", err)
		}
	}()

	m.server = api.New(api.Config{
		Apps:    &apps.Service{Store: store, Tenants: ts},
		Tenants: ts,
		Logs:    rt,
		Ready: func(ctx context.Context) error {
			_, err := cli.Get(ctx, c.EtcdPrefix+"/tenants/"+tenants.Default, clientv3.WithCountOnly())
			return err
		},
		Logger: m.Log.With("part", "api"),
	})
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", c.Addr, err)
	}
	m.ln = ln
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.server.App().Listener(ln); err != nil {
			m.Log.Error("api server stopped", "err", err)
		}
	}()
	m.Log.Info("platform ready", "addr", ln.Addr().String(), "data_dir", c.DataDir, "runtime", c.Runtime)
	return nil
}

// Addr is where the API listens (useful with --addr :0).
func (m *Main) Addr() string {
	if m.ln == nil {
		return ""
	}
	return m.ln.Addr().String()
}

// Close stops the API, the reconciler and etcd. Replicas keep running.
func (m *Main) Close() error {
	var errs []error
	if m.server != nil {
		errs = append(errs, m.server.App().ShutdownWithTimeout(10*time.Second))
	}
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	if m.runtime != nil {
		errs = append(errs, m.runtime.Close())
	}
	if m.client != nil {
		errs = append(errs, m.client.Close())
	}
	if m.etcd != nil {
		m.etcd.Close()
		<-m.etcd.Server.StopNotify()
	}
	return errors.Join(errs...)
}
