package main

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
)

// A gateway alone has no API to serve /metrics: --metrics-addr gives it a
// listener of its own, with the gateway's and etcd's gauges, through a drain
// until Close.
func TestGatewayRoleServesMetricsOnMetricsAddr(t *testing.T) {
	etcd := etcdtest.Start(t)
	m := NewMain()
	require.NoError(t, m.ParseFlags([]string{"--role", "gateway", "--etcd", etcd.Endpoint, "--data-dir", t.TempDir(),
		"--gateway-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--log-level", "error"}))
	require.NoError(t, m.Run(context.Background()))
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = m.Close()
		}
	})
	require.NotEmpty(t, m.MetricsAddr())
	assert.Empty(t, m.Addr(), "a gateway serves no API")

	url := "http://" + m.MetricsAddr() + "/metrics"
	resp, err := http.Get(url)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "discovery_gateway_connections 0")
	assert.Contains(t, string(body), "discovery_etcd_up 1")

	// A stopping gateway drains its sessions with metrics still served.
	m.StopAccepting()
	resp, err = http.Get(url)
	require.NoError(t, err, "metrics are served while the gateway drains")
	resp.Body.Close()
	_, err = http.Get("http://" + m.GatewayAddr() + "/healthz")
	assert.Error(t, err, "the gateway itself no longer accepts")

	require.NoError(t, m.Close())
	closed = true
	c := http.Client{Timeout: 2 * time.Second}
	_, err = c.Get(url)
	assert.Error(t, err, "nothing serves /metrics after Close")
}

// Without the flag nothing more listens.
func TestNoMetricsAddrByDefault(t *testing.T) {
	m := NewMain()
	require.NoError(t, m.ParseFlags([]string{"--data-dir", t.TempDir()}))
	assert.Empty(t, m.Config.MetricsAddr)
	assert.Empty(t, m.MetricsAddr())
}
