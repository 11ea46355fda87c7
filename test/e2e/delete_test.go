package e2e

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDeletingAnAppWithPlayersNeedsForceOrDrain: a delete refuses an app
// whose players are connected (409 naming them, nothing changed); with
// drain=true no new player comes, the connected one keeps playing, and the
// app goes once it has left; force and drain together, or a bad value, are
// a 400.
func TestDeletingAnAppWithPlayersNeedsForceOrDrain(t *testing.T) {
	f := New(t)
	f.Start()
	require.Equal(t, 201, f.Call("POST", "/apps", map[string]any{"name": "doomed", "replicas": 1, "client_path": "/ws", "reconnect_grace": "1s"}, nil))
	v1 := f.Deploy("doomed", nil)
	f.WaitState("doomed", v1, "active", 60*time.Second)
	ep, code := f.GetEndpoint("doomed")
	require.Equal(t, 200, code)
	c, _, err := websocket.DefaultDialer.Dial(ep.Socket, nil)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte("hi")))
	_, _, err = c.ReadMessage()
	require.NoError(t, err)
	f.Eventually("the connection counted", 10*time.Second, func() bool {
		var s struct {
			RevisionKinds map[string]struct{ Connections int } `json:"revision_kinds"`
		}
		return f.Call("GET", "/apps/doomed/sessions", nil, &s) == 200 && s.RevisionKinds[v1].Connections == 1
	})

	for _, q := range []string{"?force=true&drain=true", "?force=maybe", "?drain=yes"} {
		code, body := api(t, f, f.Token, "DELETE", "/tenants/default/apps/doomed"+q, "")
		assert.Equal(t, 400, code, "%s: %s", q, body)
	}
	code, body := api(t, f, f.Token, "DELETE", "/tenants/default/apps/doomed", "")
	assert.Equal(t, 409, code, body)
	assert.Contains(t, body, "1 live sessions (revision "+v1+": 1)")
	assert.Contains(t, body, "force=true")
	var app struct {
		Deleting bool `json:"deleting"`
	}
	require.Equal(t, 200, f.Call("GET", "/apps/doomed", nil, &app))
	assert.False(t, app.Deleting, "a refused delete changes nothing")

	var gone struct {
		Deleting   bool `json:"deleting"`
		DrainFirst bool `json:"drain_first"`
	}
	require.Equal(t, 202, f.Call("DELETE", "/apps/doomed?drain=true", nil, &gone))
	assert.True(t, gone.Deleting && gone.DrainFirst)
	f.WaitState("doomed", v1, "draining", 15*time.Second)
	_, code = f.GetEndpoint("doomed")
	assert.NotEqual(t, 200, code, "no new player for an app being deleted")
	// The player still plays, past the reconnect grace.
	for i := 0; i < 3; i++ {
		require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte("still here")))
		_, msg, err := c.ReadMessage()
		require.NoError(t, err)
		assert.Equal(t, "still here", string(msg))
	}
	assert.Equal(t, 200, f.Call("GET", "/apps/doomed", nil, nil), "the app stays while its player plays")
	assert.Len(t, f.Running(v1), 1)

	// Once it leaves, the revision retires after its grace and the app goes.
	require.NoError(t, c.Close())
	f.Eventually("app gone once empty", 30*time.Second, func() bool { return f.Call("GET", "/apps/doomed", nil, nil) == 404 })
	assert.Empty(t, f.Running(v1))
}
