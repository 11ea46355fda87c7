package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// listeningTCP returns the inodes of this process's listening TCP sockets.
func listeningTCP(t *testing.T) map[string]bool {
	t.Helper()
	mine := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	for _, fd := range fds {
		if l, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(l, "socket:[") {
			mine[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	out := map[string]bool{}
	for _, f := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		file, err := os.Open(f)
		require.NoError(t, err)
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 9 && fields[3] == "0A" && mine[fields[9]] { // 0A: LISTEN
				out[fields[9]] = true
			}
		}
		file.Close()
	}
	return out
}

// TestEmbeddedEtcdServesOnlyItsPrivateSocket: the embedded member opens no
// TCP listener (client or peer) a replica could reach; its clients use a
// unix socket only the platform's user may open, in a 0700 directory.
func TestEmbeddedEtcdServesOnlyItsPrivateSocket(t *testing.T) {
	dataDir := t.TempDir()
	before := listeningTCP(t)
	e, client, err := startEmbeddedEtcd(dataDir, 0, 0)
	require.NoError(t, err)
	after := listeningTCP(t)
	for inode := range after {
		assert.True(t, before[inode], "the embedded etcd opened a TCP listener (socket inode %s)", inode)
	}
	u, err := url.Parse(client)
	require.NoError(t, err)
	assert.Equal(t, "unix", u.Scheme)
	assert.Equal(t, etcdSocket(dataDir), u.Path)
	st, err := os.Stat(u.Path) // the link's target: this process's socket
	require.NoError(t, err)
	assert.Equal(t, os.ModeSocket, st.Mode().Type())
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "only the platform's user may connect")
	st, err = os.Stat(filepath.Dir(u.Path))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	_, err = os.Stat(filepath.Join(filepath.Dir(u.Path), "etcd.log"))
	require.NoError(t, err, "etcd's log sits in the private directory")

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = cli.Put(ctx, "k", "v")
	require.NoError(t, err)
	e.Close()
	<-e.Server.StopNotify()

	// The same data dir starts again with its data, on the same socket.
	e, client2, err := startEmbeddedEtcd(dataDir, 5*time.Second, 0)
	require.NoError(t, err)
	defer e.Close()
	assert.Equal(t, client, client2)
	saved, err := readURLs(filepath.Join(dataDir, "etcd"))
	require.NoError(t, err)
	assert.Equal(t, client, saved.Client, "backup finds the member through etcd.urls")
	resp, err := cli.Get(ctx, "k")
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1, "the client reconnects to the restarted member")
}

// TestEmbeddedEtcdOfAnOlderVersionMovesToTheSocket: a data dir made when the
// member listened on loopback TCP (client and peer) starts with its data on
// the socket, and no TCP listener.
func TestEmbeddedEtcdOfAnOlderVersionMovesToTheSocket(t *testing.T) {
	dataDir := t.TempDir()
	cfg := embed.NewConfig()
	cfg.Dir, cfg.Name, cfg.LogLevel = filepath.Join(dataDir, "etcd"), "discovery", "error"
	cfg.LogOutputs = []string{filepath.Join(dataDir, "old.log")}
	var urls []url.URL
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		urls = append(urls, url.URL{Scheme: "http", Host: l.Addr().String()})
		l.Close()
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = urls[:1], urls[:1]
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = urls[1:], urls[1:]
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	old, err := embed.StartEtcd(cfg)
	require.NoError(t, err)
	<-old.Server.ReadyNotify()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{urls[0].String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = cli.Put(ctx, "kept", "yes")
	require.NoError(t, err)
	cli.Close()
	old.Close()
	<-old.Server.StopNotify()

	before := listeningTCP(t)
	e, client, err := startEmbeddedEtcd(dataDir, 0, 0)
	require.NoError(t, err, "an older data dir starts on the socket")
	defer e.Close()
	for inode := range listeningTCP(t) {
		assert.True(t, before[inode], "no TCP listener after the move (socket inode %s)", inode)
	}
	cli, err = clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer cli.Close()
	resp, err := cli.Get(ctx, "kept")
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1, fmt.Sprintf("the data came along: %v", resp.Kvs))
}
