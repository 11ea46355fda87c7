package e2e

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
)

// TestSessionsSurviveAnEtcdOutage: with etcd down, open sessions keep
// flowing, reconnects reach their replica, get-endpoint answers from memory
// and says so, writes are refused at once with 503 and change nothing; when
// etcd returns, writes work again and the app's activity log tells of the
// outage.
func TestSessionsSurviveAnEtcdOutage(t *testing.T) {
	etcd := etcdtest.Start(t)
	f := New(t)
	f.Args = []string{"--etcd", etcd.Endpoint}
	f.Start()
	require.Equal(t, 201, f.Call("POST", "/apps", map[string]any{"name": "steady", "replicas": 1, "health_path": "/healthz"}, nil))
	rev := f.Deploy("steady", nil)
	f.WaitState("steady", rev, "active", 60*time.Second)
	ep, code := f.GetEndpoint("steady")
	require.Equal(t, 200, code)
	s, err := open(t, f, "steady")
	require.NoError(t, err)

	etcd.Pause()
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			_ = etcd.Resume()
		}
	})
	f.Eventually("readyz reports the degraded state", 15*time.Second, func() bool {
		resp, err := http.Get("http://" + f.Addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 503
	})

	// A reconnect with the endpoint URL reaches the same replica.
	c, _, err := websocket.DefaultDialer.Dial(ep.Endpoint+"ws", nil)
	require.NoError(t, err, "reconnects are routed from memory")
	require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte("still there?")))
	_, got, err := c.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, "still there?", string(got))
	_ = c.Close()

	// get-endpoint answers from memory and says the data may be stale.
	resp, err := http.Get("http://" + f.Addr + "/api/v1/tenants/default/apps/steady/endpoint")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("X-Discovery-Stale"))

	// A write is refused at once: 503, Retry-After.
	req, _ := http.NewRequest("POST", "http://"+f.Addr+"/api/v1/tenants/default/apps/steady/revisions", bytes.NewReader([]byte(`{"command":["x"]}`)))
	req.Header.Set("Authorization", "Bearer "+f.Token)
	t0 := time.Now()
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 503, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	assert.Less(t, time.Since(t0), 3*time.Second, "refused without waiting for a timeout")

	// The open session never noticed.
	select {
	case err := <-s.done:
		t.Fatalf("the open session was cut during the outage: %v", err)
	default:
	}

	require.NoError(t, etcd.Resume())
	resumed = true
	f.Eventually("writes work again", 30*time.Second, func() bool {
		return f.Call("POST", "/apps/steady/revisions", map[string]any{"command": []string{f.App}}, nil) == 202
	})
	assert.Len(t, f.Running(rev), 1, "the replica was never stopped")
	f.Eventually("the outage is in the app's activity log", 30*time.Second, func() bool { return len(f.events("steady", "etcd_outage")) > 0 })
	outages := f.events("steady", "etcd_outage")
	require.Len(t, outages, 1, "one outage, one event")
	assert.Contains(t, outages[0], "unreachable from")
	require.NoError(t, s.close(), "the session lived through the outage")
}
