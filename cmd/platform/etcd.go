package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
)

// The embedded etcd accepts no connection a replica could make: its clients
// reach it over a unix socket in <data-dir>/run/ (mode 0700, owned by the
// platform's user), and it opens no peer listener (a single member needs
// none). Loopback TCP would be open to every process on the machine, replicas
// included, and etcd holds the signing key.

// etcdURLs are the embedded member's addresses, kept beside its data
// (<data-dir>/etcd.urls): `platform backup` finds the running member there.
type etcdURLs struct {
	Client string `json:"client"`
}

func urlsFile(dir string) string { return dir + ".urls" }

func readURLs(dir string) (etcdURLs, error) {
	var u etcdURLs
	b, err := os.ReadFile(urlsFile(dir))
	if err != nil {
		return u, err
	}
	return u, json.Unmarshal(b, &u)
}

// noPeerURL is the member's advertised peer URL, where nothing listens.
const noPeerURL = "unix://discovery-no-peer"

// maxSocketPath is the longest path a unix socket address takes on Linux
// (sun_path is 108 bytes with its NUL).
const maxSocketPath = 107

// etcdSocket is the embedded member's client socket under dataDir: a
// symbolic link to the socket of the process that runs the member now
// (etcd-<pid>.sock). An in-place upgrade hands the member over: the new
// process listens on a socket of its own and swings the link, so the old
// process, whose etcd removes its socket file when it closes (sometimes
// twice), can never remove the new one's; clients dial the link throughout.
func etcdSocket(dataDir string) string { return filepath.Join(dataDir, "run", "etcd.sock") }

// startEmbeddedEtcd starts a single etcd member with its data in
// <dataDir>/etcd, serving clients on its unix socket only, and returns it with
// its client URL. It compacts its history every 10 minutes so what tenants
// write does not pile up in history (the platform defragments on a schedule:
// etcdmaint). quota is its space quota in bytes (0: etcd's 2 GiB). waitFree
// bounds how long it waits for a previous process (an in-place upgrade) to
// close the member first.
func startEmbeddedEtcd(dataDir string, waitFree time.Duration, quota int64) (*embed.Etcd, string, error) {
	dir := filepath.Join(dataDir, "etcd")
	sock := etcdSocket(dataDir)
	if len(sock) > maxSocketPath {
		return nil, "", fmt.Errorf("the etcd socket path %s is longer than %d bytes: choose a shorter --data-dir", sock, maxSocketPath)
	}
	if err := os.MkdirAll(filepath.Dir(sock), 0o700); err != nil {
		return nil, "", err
	}
	// An older directory may have been made with a looser mode.
	if err := os.Chmod(filepath.Dir(sock), 0o700); err != nil {
		return nil, "", err
	}
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.Name = "discovery"
	// etcd's own log goes to a file beside its data: on shutdown it reports
	// closed listeners as errors, which would only alarm an operator.
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{filepath.Join(filepath.Dir(sock), "etcd.log")}
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "10m"
	cfg.TickMs, cfg.ElectionMs = 50, 500
	cfg.QuotaBackendBytes = quota
	client := url.URL{Scheme: "unix", Path: sock}
	own := filepath.Join(filepath.Dir(sock), fmt.Sprintf("etcd-%d.sock", os.Getpid()))
	listen := url.URL{Scheme: "unix", Path: own}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{listen}, []url.URL{client}
	// No peer listener. The advertised peer URL only names the member in
	// its own cluster configuration; nothing listens there.
	peer, _ := url.Parse(noPeerURL)
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = nil, []url.URL{*peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// During an upgrade the old process still serves on the socket (and
	// holds the data dir's lock) for a moment: wait until it has let go, so
	// its clients reconnect to this member.
	for deadline := time.Now().Add(waitFree); time.Now().Before(deadline) && serving(sock); {
		time.Sleep(50 * time.Millisecond)
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, "", err
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, "", fmt.Errorf("not ready within 60s")
	}
	if err := os.Chmod(own, 0o600); err != nil {
		e.Close()
		return nil, "", err
	}
	if err := swingLink(own, sock); err != nil {
		e.Close()
		return nil, "", err
	}
	b, _ := json.Marshal(etcdURLs{Client: client.String()})
	if err := os.WriteFile(urlsFile(dir), b, 0o600); err != nil {
		e.Close()
		return nil, "", err
	}
	return e, client.String(), nil
}

// swingLink points the link at sock to own, atomically, and removes the
// sockets of earlier processes nothing serves on any more (a process killed
// with SIGKILL leaves its file behind).
func swingLink(own, link string) error {
	tmp := link + ".new"
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(own), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(filepath.Dir(link), "etcd-*.sock"))
	for _, o := range old {
		if o != own && !serving(o) {
			_ = os.Remove(o)
		}
	}
	return nil
}

// serving reports whether something accepts connections on the socket.
func serving(sock string) bool {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// etcdTLS is the client TLS of an external etcd (--etcd-cert, --etcd-key,
// --etcd-ca); nil when none is given.
func etcdTLS(c Config) (*tls.Config, error) {
	if c.EtcdCert == "" && c.EtcdKey == "" && c.EtcdCA == "" {
		return nil, nil
	}
	if (c.EtcdCert == "") != (c.EtcdKey == "") {
		return nil, fmt.Errorf("--etcd-cert and --etcd-key go together")
	}
	info := transport.TLSInfo{CertFile: c.EtcdCert, KeyFile: c.EtcdKey, TrustedCAFile: c.EtcdCA}
	cfg, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd client TLS: %w", err)
	}
	return cfg, nil
}
