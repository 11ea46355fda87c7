package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// etcdURLs are the embedded member's addresses, kept beside its data
// (<data-dir>/etcd.urls) so a restart reuses them when free: `platform
// backup` finds the running member there, and clients of a previous process
// (an old process draining its sessions during an upgrade) reconnect.
type etcdURLs struct {
	Client string `json:"client"`
	Peer   string `json:"peer"`
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

// startEmbeddedEtcd starts a single etcd member with its data in dir, on
// loopback ports (the previous ones if still free), and returns it with its
// client URL. It compacts its history hourly so a long-running install does
// not grow without bound (the platform defragments it on a schedule:
// etcdmaint). quota is its space quota in bytes (0: etcd's 2 GiB).
func startEmbeddedEtcd(dir string, waitPorts time.Duration, quota int64) (*embed.Etcd, string, error) {
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.Name = "discovery"
	// etcd's own log goes to a file beside its data: on shutdown it reports
	// closed listeners as errors, which would only alarm an operator.
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{dir + ".log"}
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"
	cfg.TickMs, cfg.ElectionMs = 50, 500
	cfg.QuotaBackendBytes = quota
	prev, err := readURLs(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, "", err
	}
	// During an upgrade the old process still holds the ports (and the data
	// dir's lock) for a moment: wait for them, so clients of the old process
	// reconnect to the same address.
	for deadline := time.Now().Add(waitPorts); time.Now().Before(deadline) && !free(prev.Client); {
		time.Sleep(50 * time.Millisecond)
	}
	// A port found free may be taken before etcd binds it (by another
	// listener or an outgoing connection's ephemeral port): then fresh
	// ports are picked, a few times, instead of failing the start.
	var (
		e            *embed.Etcd
		client, peer url.URL
	)
	for attempt := 1; ; attempt++ {
		if client, err = reuseOrFree(prev.Client); err != nil {
			return nil, "", err
		}
		if peer, err = reuseOrFree(prev.Peer); err != nil {
			return nil, "", err
		}
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
		e, err = embed.StartEtcd(cfg)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == bindAttempts {
			return nil, "", err
		}
		prev = etcdURLs{}
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
	b, _ := json.Marshal(etcdURLs{Client: client.String(), Peer: peer.String()})
	if err := os.WriteFile(urlsFile(dir), b, 0o600); err != nil {
		e.Close()
		return nil, "", err
	}
	return e, client.String(), nil
}

// free reports whether the URL's port can be bound now ("" counts as free).
func free(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return true
	}
	l, err := net.Listen("tcp", u.Host)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// bindAttempts bounds how often the embedded member tries fresh ports.
const bindAttempts = 5

// pickPort returns a loopback port the kernel reports free; a variable so a
// test can hand out a taken one.
var pickPort = func() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// reuseOrFree returns prev if its port can be bound now, else a free port.
func reuseOrFree(prev string) (url.URL, error) {
	if u, err := url.Parse(prev); err == nil && u.Host != "" {
		if l, err := net.Listen("tcp", u.Host); err == nil {
			l.Close()
			return *u, nil
		}
	}
	addr, err := pickPort()
	if err != nil {
		return url.URL{}, err
	}
	return url.URL{Scheme: "http", Host: addr}, nil
}
