// Package etcdtest starts a real embedded etcd for tests: a single member on
// loopback ports with fast election timing, in a temp dir, stopped by t.Cleanup.
package etcdtest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Etcd is a running embedded member and a client connected to it.
type Etcd struct {
	Server   *embed.Etcd
	Client   *clientv3.Client
	Endpoint string

	dir          string
	client, peer url.URL
	opts         Options
}

// Options change the member's configuration.
type Options struct {
	// QuotaBackendBytes is the space quota (0: etcd's 2 GiB); a small one lets
	// a test fill the store until etcd raises its NOSPACE alarm.
	QuotaBackendBytes int64
}

// Start starts a member in t.TempDir() and returns it with a client.
func Start(t testing.TB) *Etcd {
	t.Helper()
	e, err := StartAt(t.TempDir())
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(e.Stop)
	return e
}

// StartWith starts a member in t.TempDir() with options.
func StartWith(t testing.TB, o Options) *Etcd {
	t.Helper()
	e, err := startFresh(t.TempDir(), o)
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(e.Stop)
	return e
}

// StartAt starts a member with its data in dir.
func StartAt(dir string) (*Etcd, error) { return startFresh(dir, Options{}) }

// startFresh starts a member on ports found free. One can be taken before
// etcd binds it (by a parallel test's listener or an outgoing connection):
// then it tries fresh ones, a few times.
func startFresh(dir string, o Options) (*Etcd, error) {
	for attempt := 1; ; attempt++ {
		client, peer, err := freeURLs()
		if err != nil {
			return nil, err
		}
		e, err := start(dir, client, peer, o)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || attempt == 5 {
			return e, err
		}
	}
}

// Pause stops the member (the client stays, failing) to simulate an outage;
// Resume starts it again on the same data and ports.
func (e *Etcd) Pause() {
	e.Server.Close()
	<-e.Server.Server.StopNotify()
}

// Resume restarts a paused member on the same data dir and URLs.
func (e *Etcd) Resume() error {
	n, err := start(e.dir, e.client, e.peer, e.opts)
	if err != nil {
		return err
	}
	_ = n.Client.Close()
	e.Server = n.Server
	return nil
}

func start(dir string, client, peer url.URL, o Options) (*Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.Name = "test"
	cfg.TickMs, cfg.ElectionMs = 10, 100
	cfg.QuotaBackendBytes = o.QuotaBackendBytes
	cfg.LogLevel = "error"
	// A stopping member reports its closed listeners as errors: noise in tests.
	cfg.LogOutputs = []string{"/dev/null"}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	srv, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-srv.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		srv.Close()
		return nil, fmt.Errorf("etcd not ready within 30s")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client.String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		srv.Close()
		return nil, err
	}
	return &Etcd{Server: srv, Client: cli, Endpoint: client.String(), dir: dir, client: client, peer: peer, opts: o}, nil
}

// Stop closes the client and the member and waits for it to stop.
func (e *Etcd) Stop() {
	_ = e.Client.Close()
	e.Server.Close()
	<-e.Server.Server.StopNotify()
}

func freeURLs() (client, peer url.URL, err error) {
	var ports [2]int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return url.URL{}, url.URL{}, err
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[0])},
		url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[1])}, nil
}
