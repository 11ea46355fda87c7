package e2e

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/internal/testkit/testca"
)

// servedSerial does a fresh TLS handshake with addr and returns the serial
// of the certificate it presents (0 if the handshake fails).
func servedSerial(ca *testca.CA, addr string) int64 {
	c, err := tls.Dial("tcp", addr, ca.ClientConfig())
	if err != nil {
		return 0
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func echo(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte(msg)))
	_, got, err := c.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, msg, string(got))
}

// TestGameClientsGetWSSEndpointsFromOneCertificate: with --tls-cert and
// --tls-key the API speaks https only, get-endpoint hands out wss:// endpoints
// and https:// urls, a WebSocket through wss:// reaches its replica (which
// the gateway dials in plain TCP), a replaced certificate is served to the
// next handshake without a restart, and a SIGHUP upgrade keeps TLS and the
// open wss session.
func TestGameClientsGetWSSEndpointsFromOneCertificate(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.Write(t, certFile, keyFile, "discovery-first", 101)
	f := New(t)
	f.TLS = ca.ClientConfig()
	f.Args = []string{"--tls-cert", certFile, "--tls-key", keyFile}
	f.Start()
	require.Equal(t, 201, f.Call("POST", "/apps", map[string]any{"name": "secure", "replicas": 1, "health_path": "/healthz"}, nil))
	rev := f.Deploy("secure", nil)
	f.WaitState("secure", rev, "active", 60*time.Second)

	ep, code := f.GetEndpoint("secure")
	require.Equal(t, 200, code)
	assert.True(t, strings.HasPrefix(ep.Endpoint, "wss://"+f.Gateway+"/s/default/secure/"+rev+"/"), ep.Endpoint)
	assert.True(t, strings.HasPrefix(ep.URL, "https://"+f.Gateway+"/s/default/secure/"+rev+"/"), ep.URL)

	wss := websocket.Dialer{TLSClientConfig: ca.ClientConfig(), HandshakeTimeout: 10 * time.Second}
	held, _, err := wss.Dial(ep.Endpoint+"ws", nil)
	require.NoError(t, err, "a WebSocket through wss:// reaches the replica")
	defer held.Close()
	echo(t, held, "over tls")
	resp, err := f.HTTP().Get(ep.URL + "healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode, "plain requests through https:// reach the replica too")

	// Plain HTTP is refused on both ports, and a client that does not trust
	// the test CA refuses the certificate.
	if resp, err := http.Get("http://" + f.Addr + "/readyz"); err == nil {
		resp.Body.Close()
		assert.NotEqual(t, 200, resp.StatusCode, "the API must not answer plain http")
	}
	resp, err = http.Get("http://" + f.Gateway + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 400, resp.StatusCode, "the gateway answers plain http with 400")
	_, err = http.Get("https://" + f.Addr + "/readyz")
	require.Error(t, err, "the system roots do not trust the test CA")
	assert.Contains(t, err.Error(), "certificate")

	// Renewal: new files, no restart; the next handshake sees them.
	assert.Equal(t, int64(101), servedSerial(ca, f.Addr))
	ca.Write(t, certFile, keyFile, "discovery-second", 102)
	f.Eventually("the API serves the replaced certificate", 15*time.Second, func() bool { return servedSerial(ca, f.Addr) == 102 })
	f.Eventually("the gateway serves the replaced certificate", 15*time.Second, func() bool { return servedSerial(ca, f.Gateway) == 102 })
	c, _, err := wss.Dial(ep.Endpoint+"ws", nil)
	require.NoError(t, err)
	assert.Equal(t, "discovery-second", c.UnderlyingConn().(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName)
	echo(t, c, "renewed")
	_ = c.Close()
	echo(t, held, "the session opened before the renewal lives on")

	// SIGHUP: the new process wraps the inherited sockets in TLS itself.
	pid := func() int {
		resp, err := f.HTTP().Get(f.APIURL() + "/version")
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		var v struct{ PID int }
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return v.PID
	}
	oldPID := pid()
	require.NotZero(t, oldPID)
	old := f.Process()
	require.NoError(t, old.Signal(syscall.SIGHUP))
	f.Eventually("the upgraded process answers over https", 90*time.Second, func() bool { p := pid(); return p != 0 && p != oldPID })
	ep, code = f.GetEndpoint("secure")
	require.Equal(t, 200, code)
	require.True(t, strings.HasPrefix(ep.Endpoint, "wss://"), ep.Endpoint)
	c, _, err = wss.Dial(ep.Endpoint+"ws", nil)
	require.NoError(t, err, "new wss sessions go through the new process")
	echo(t, c, "after the upgrade")
	_ = c.Close()
	echo(t, held, "the wss session held by the old process lives through the upgrade")
	require.NoError(t, held.Close())
	select {
	case <-old.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the old process did not exit once its last session ended")
	}
	// The new process is stopped by the framework's cleanup (by its marker).
	assert.Equal(t, int64(102), servedSerial(ca, f.Addr), "the new process loaded the current files")
}
