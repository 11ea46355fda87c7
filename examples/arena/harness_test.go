package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The harness: a real arena on a loopback port and real WebSocket clients.

// readTimeout bounds every wait for a server message; tests wait on messages,
// never on the clock.
const readTimeout = 5 * time.Second

// runMainEnv makes the test binary run the real main, so one test can send it
// a real SIGTERM.
const runMainEnv = "ARENA_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// arena is a real server on a loopback port, configured like production:
// through the environment variables the platform sets.
type arena struct {
	base    string // http://127.0.0.1:port/
	ws      string // ws://127.0.0.1:port/ws
	cancel  context.CancelFunc
	served  chan error
	stopErr error
	once    sync.Once
}

func startArena(t *testing.T, env map[string]string) *arena {
	t.Helper()
	env = merge(map[string]string{"DISCOVERY_REVISION": "9d00cc18", "DISCOVERY_REPLICA": "r-0"}, env)
	cfg, err := parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	a := &arena{
		base:   "http://" + ln.Addr().String() + "/",
		ws:     "ws://" + ln.Addr().String() + "/ws",
		cancel: cancel,
		served: make(chan error, 1),
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { a.served <- newServer(cfg, log).serve(ctx, ln) }()
	t.Cleanup(func() { assert.NoError(t, a.shutdown()) })
	return a
}

// shutdown is what SIGTERM does in main: cancel serve's context and wait.
func (a *arena) shutdown() error {
	a.once.Do(func() {
		a.cancel()
		select {
		case a.stopErr = <-a.served:
		case <-time.After(5 * time.Second):
			a.stopErr = errors.New("serve did not return within 5s of shutdown")
		}
	})
	return a.stopErr
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// serverMsg decodes any server message.
type serverMsg struct {
	Type     string        `json:"type"`
	ID       string        `json:"id"`
	Token    string        `json:"token"`
	Revision string        `json:"revision"`
	Replica  string        `json:"replica"`
	Respawn  bool          `json:"respawn"`
	Size     int           `json:"size"`
	MaxHP    int           `json:"max_hp"`
	Resumed  bool          `json:"resumed"`
	Players  []playerState `json:"players"`
	Tick     uint64        `json:"tick"`
	By       string        `json:"by"`
	X        int           `json:"x"`
	Y        int           `json:"y"`
	Seq      int64         `json:"seq"`
	Code     string        `json:"code"`
	Message  string        `json:"message"`
	// notice
	State          string `json:"state"`
	ActiveRevision string `json:"active_revision"`
	Reason         string `json:"reason"`
}

func (m serverMsg) player(id string) (playerState, bool) {
	for _, p := range m.Players {
		if p.ID == id {
			return p, true
		}
	}
	return playerState{}, false
}

// client is a real gorilla/websocket client playing one player.
type client struct {
	t         *testing.T
	conn      *websocket.Conn
	id, token string
}

func (a *arena) dial(t *testing.T) *client {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(a.ws, nil)
	require.NoError(t, err)
	_ = resp.Body.Close()
	t.Cleanup(func() { _ = conn.Close() })
	return &client{t: t, conn: conn}
}

func (c *client) send(v any) {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetWriteDeadline(time.Now().Add(readTimeout)))
	require.NoError(c.t, c.conn.WriteJSON(v))
}

func (c *client) sendRaw(messageType int, data []byte) {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetWriteDeadline(time.Now().Add(readTimeout)))
	require.NoError(c.t, c.conn.WriteMessage(messageType, data))
}

func (c *client) read() serverMsg {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetReadDeadline(time.Now().Add(readTimeout)))
	_, data, err := c.conn.ReadMessage()
	require.NoError(c.t, err)
	var m serverMsg
	require.NoError(c.t, json.Unmarshal(data, &m), "server sent %s", data)
	return m
}

// await reads until a message satisfies ok, skipping the others.
func (c *client) await(what string, ok func(serverMsg) bool) serverMsg {
	c.t.Helper()
	deadline := time.Now().Add(readTimeout)
	for time.Now().Before(deadline) {
		if m := c.read(); ok(m) {
			return m
		}
	}
	c.t.Fatalf("%s: no such message within %s", what, readTimeout)
	return serverMsg{}
}

func (c *client) awaitType(typ string) serverMsg {
	c.t.Helper()
	return c.await(typ, func(m serverMsg) bool { return m.Type == typ })
}

// awaitState waits for a state broadcast satisfying ok.
func (c *client) awaitState(what string, ok func(serverMsg) bool) serverMsg {
	c.t.Helper()
	return c.await(what, func(m serverMsg) bool { return m.Type == "state" && ok(m) })
}

func (c *client) awaitError(code string) serverMsg {
	c.t.Helper()
	m := c.awaitType("error")
	assert.Equal(c.t, code, m.Code, "error message %q", m.Message)
	return m
}

// awaitClose reads until the server closes the connection and returns its code.
func (c *client) awaitClose() int {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetReadDeadline(time.Now().Add(readTimeout)))
	for {
		_, _, err := c.conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		require.ErrorAs(c.t, err, &ce, "want a close frame")
		return ce.Code
	}
}

func (c *client) join(name string) serverMsg {
	c.t.Helper()
	c.send(map[string]string{"type": "join", "name": name})
	w := c.awaitType("welcome")
	require.NotEmpty(c.t, w.ID)
	require.NotEmpty(c.t, w.Token)
	c.id, c.token = w.ID, w.Token
	return w
}

func (c *client) resume(id, token string) {
	c.t.Helper()
	c.send(map[string]string{"type": "join", "id": id, "token": token})
}

// ping round-trips one ping: proof the connection is alive and every
// earlier reply has been read.
func (c *client) ping(seq int64) {
	c.t.Helper()
	c.send(map[string]any{"type": "ping", "seq": seq})
	c.await("pong", func(m serverMsg) bool { return m.Type == "pong" && m.Seq == seq })
}
