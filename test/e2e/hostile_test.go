package e2e

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSlowClientIsCutWhileOthersPlayOn: a client that trickles its request
// headers (slowloris) is cut by the read-header timeout on the gateway and
// the API; a player's session next to it is unaffected.
func TestSlowClientIsCutWhileOthersPlayOn(t *testing.T) {
	f := New(t)
	f.Args = []string{"--read-header-timeout", "1s"}
	f.Start()
	require.Equal(t, 201, f.Call("POST", "/apps", map[string]any{"name": "calm", "replicas": 1, "health_path": "/healthz"}, nil))
	rev := f.Deploy("calm", nil)
	f.WaitState("calm", rev, "active", 60*time.Second)
	player, err := open(t, f, "calm")
	require.NoError(t, err)

	for _, addr := range []string{f.Gateway, f.Addr} {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		_, err = c.Write([]byte("GET /s/default/calm/ HTTP/1.1\r\nHost: x\r\nX-Slow: "))
		require.NoError(t, err)
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, _ = io.ReadAll(c) // returns when the server closes the connection
		took := time.Since(start)
		_ = c.Close()
		assert.Less(t, took, 10*time.Second, "%s cut the slow client by its 1 s header timeout (took %s)", addr, took)
	}
	select {
	case err := <-player.done:
		t.Fatalf("the player's session was hurt: %v", err)
	default:
	}
	require.NoError(t, player.close())
}
