package js_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/internal/testkit/platformtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	platformtest.Cleanup()
	os.Exit(code)
}

// The SDK against the real platform: test/real/real.mjs plays the real
// arena through dist/index.js under Node, while this side runs the platform
// (embedded etcd, process runtime) and the network between them.

// network is what lies between a player and the gateway: a TCP proxy the
// test can cut (every connection through it dropped, no close frame: the
// player's network failing) or take down (new connections closed as soon
// as accepted: the player offline), and bring back up.
type network struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	down  bool
	wg    sync.WaitGroup
}

// newNetwork listens on a loopback port; serve starts relaying. Everything
// is closed at cleanup.
func newNetwork(t *testing.T) *network {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	n := &network{ln: ln, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() {
		ln.Close()
		n.setDown(true)
		n.wg.Wait()
	})
	return n
}

func (n *network) addr() string { return n.ln.Addr().String() }

// serve relays each connection to the gateway at addr.
func (n *network) serve(gateway string) {
	n.wg.Go(func() {
		for {
			c, err := n.ln.Accept()
			if err != nil {
				return
			}
			n.wg.Go(func() { n.relay(c, gateway) })
		}
	})
}

func (n *network) relay(c net.Conn, gateway string) {
	defer c.Close()
	if !n.track(c) {
		return
	}
	defer n.untrack(c)
	g, err := net.DialTimeout("tcp", gateway, 5*time.Second)
	if err != nil {
		return
	}
	defer g.Close()
	if !n.track(g) {
		return
	}
	defer n.untrack(g)
	done := make(chan struct{}, 2)
	n.wg.Go(func() { _, _ = io.Copy(g, c); done <- struct{}{} })
	n.wg.Go(func() { _, _ = io.Copy(c, g); done <- struct{}{} })
	<-done
	// Either side ending ends both: this network never half-closes.
	c.Close()
	g.Close()
	<-done
}

// track counts c among the open connections, unless the network is down.
func (n *network) track(c net.Conn) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.down {
		return false
	}
	n.conns[c] = struct{}{}
	return true
}

func (n *network) untrack(c net.Conn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.conns, c)
}

// cut drops every open connection.
func (n *network) cut() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for c := range n.conns {
		c.Close()
	}
}

// setDown takes the network down (cutting what is open) or brings it up.
func (n *network) setDown(down bool) {
	n.mu.Lock()
	n.down = down
	n.mu.Unlock()
	if down {
		n.cut()
	}
}

// control is the network's remote control for the script: POST /cut,
// /down and /up.
func (n *network) control(t *testing.T) string {
	mux := http.NewServeMux()
	for path, do := range map[string]func(){"/cut": n.cut, "/down": func() { n.setDown(true) }, "/up": func() { n.setDown(false) }} {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, _ *http.Request) {
			do()
			w.WriteHeader(http.StatusNoContent)
		})
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// What real.mjs prints.
type (
	sdkEvent struct {
		Type        string
		Attempt     int
		DelayMs     *float64
		Reason      string
		Code        int
		SameReplica bool
		Handoff     bool
		Ticket      string
		ToReplica   string
	}
	welcome struct {
		ID, Revision, Replica string
		Resumed               bool
	}
	playerState struct {
		Name     string
		X, Y, HP int
		Alive    bool
		Score    int
		Deaths   int
	}
	step struct {
		Revision string
		Events   []sdkEvent
		Welcome  welcome
		State    playerState
	}
	findings struct {
		V1      step
		Drop    step
		Backoff struct {
			step
			Options struct {
				InitialMs, MaxMs float64
				Jitter           float64
			}
			Attempts []struct {
				Attempt  int
				Reason   string
				DelayMs  float64
				WaitedMs *float64
			}
		}
		Handoff struct {
			step
			TicketDialled bool
		}
		Gone struct {
			step
			Endpoint struct{ Revision, Replica string }
		}
	}
)

// has reports whether events holds one that matches.
func has(events []sdkEvent, match func(sdkEvent) bool) bool {
	for _, e := range events {
		if match(e) {
			return true
		}
	}
	return false
}

// TestSDKKeepsAnArenaPlayerOnTheRealPlatform: a player of the real arena,
// on the SDK under Node, through the real platform: its TCP connection
// cut, it is back on the same replica, resumed; its network down for five
// attempts, the SDK waits as its backoff says, then is back on the same
// replica; v2 deployed in handoff mode, it follows v1's ticket to v2 with
// its state; its replica's revision retired while it was offline, the
// replica answers 410 and the SDK finds v3 through get-endpoint.
func TestSDKKeepsAnArenaPlayerOnTheRealPlatform(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found: the JavaScript SDK is NOT tested against the real platform; install Node >= 20")
	}
	var flags []string
	// Node 20 keeps its global WebSocket behind a flag, as scripts/test.mjs knows.
	if exec.Command(node, "-e", "process.exit(typeof WebSocket === 'undefined' ? 1 : 0)").Run() != nil {
		flags = append(flags, "--experimental-websocket")
	}
	arena := filepath.Join(filepath.Dir(platformtest.Binary(t)), "arena")
	require.NoError(t, platformtest.GoBuild(arena, "github.com/discovery-platform/discovery/examples/arena"))

	n := newNetwork(t)
	p := platformtest.New(t)
	p.Args = append(p.Args, "--public-url", "http://"+n.addr()) // players reach the gateway through n
	p.Start()
	n.serve(p.Gateway)
	app, err := json.Marshal(map[string]any{"name": "arena", "health_path": "/healthz", "client_path": "/ws",
		"drain_hook": "/discovery/drain", "handoff_path": "/discovery/handoff",
		"reconnect_grace": "30s", "shutdown_grace": "3s", "reservation_ttl": "5s"})
	require.NoError(t, err)
	req, err := http.NewRequest("POST", p.APIURL()+"/api/v1/tenants/default/apps", bytes.NewReader(app))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+p.Token)
	resp, err := p.HTTP().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 201, resp.StatusCode)

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append(flags, filepath.Join("test", "real", "real.mjs"))...)
	cmd.Env = append(os.Environ(), "DISCOVERY_API="+p.APIURL(), "DISCOVERY_TENANT=default", "DISCOVERY_APP=arena",
		"DISCOVERY_TOKEN="+p.Token, "ARENA_COMMAND="+arena, "NET_CONTROL="+n.control(t))
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	t.Logf("real.mjs ran %s:\n%s", time.Since(start).Round(time.Millisecond), stderr.String())
	require.NoError(t, err, "real.mjs failed")
	var f findings
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &f), stdout.String())

	me := f.V1.Welcome.ID
	assert.Equal(t, f.V1.Revision, f.V1.Welcome.Revision)
	assert.False(t, f.V1.Welcome.Resumed)
	assert.Equal(t, playerState{Name: "node", X: f.V1.State.X, Y: f.V1.State.Y, HP: 3, Alive: true}, f.V1.State)

	// 1. Cut: the same socket at once, the same replica resumes the player.
	assert.True(t, has(f.Drop.Events, func(e sdkEvent) bool {
		return e.Type == "reconnecting" && e.Reason == "dropped" && e.Attempt == 1 && e.DelayMs != nil && *e.DelayMs == 0
	}), "%+v", f.Drop.Events)
	assert.True(t, has(f.Drop.Events, func(e sdkEvent) bool { return e.Type == "reconnected" && e.SameReplica && !e.Handoff }), "%+v", f.Drop.Events)
	assert.Equal(t, welcome{ID: me, Revision: f.V1.Revision, Replica: f.V1.Welcome.Replica, Resumed: true}, f.Drop.Welcome)
	assert.Equal(t, f.V1.State, f.Drop.State)

	// 2. Down: each attempt waited as announced, each announcement within
	// the backoff's bounds; back up, the same replica.
	o := f.Backoff.Options
	require.GreaterOrEqual(t, len(f.Backoff.Attempts), 5)
	for _, a := range f.Backoff.Attempts {
		lo, hi := 0.0, 0.0 // the first at once
		if a.Attempt > 1 {
			base := min(o.MaxMs, o.InitialMs*float64(int(1)<<(a.Attempt-2)))
			lo, hi = base*(1-o.Jitter), base*(1+o.Jitter)
			assert.Equal(t, "dial_failed", a.Reason, "attempt %d", a.Attempt)
		} else {
			assert.Equal(t, "dropped", a.Reason, "attempt %d", a.Attempt)
		}
		assert.True(t, a.DelayMs >= lo-0.5 && a.DelayMs <= hi+0.5, "attempt %d announced %.0f ms, want %.0f-%.0f", a.Attempt, a.DelayMs, lo, hi)
		if assert.NotNil(t, a.WaitedMs, "attempt %d never dialled", a.Attempt) {
			// Timers fire no earlier than asked; a busy machine may be late.
			assert.True(t, *a.WaitedMs >= a.DelayMs-2 && *a.WaitedMs <= a.DelayMs+1000, "attempt %d waited %.0f ms for %.0f", a.Attempt, *a.WaitedMs, a.DelayMs)
			t.Logf("attempt %d (%s): announced %.0f ms (%.0f-%.0f), dialled after %.0f ms", a.Attempt, a.Reason, a.DelayMs, lo, hi, *a.WaitedMs)
		}
	}
	assert.True(t, has(f.Backoff.Events, func(e sdkEvent) bool { return e.Type == "reconnected" && e.SameReplica }), "%+v", f.Backoff.Events)
	assert.Equal(t, welcome{ID: me, Revision: f.V1.Revision, Replica: f.V1.Welcome.Replica, Resumed: true}, f.Backoff.Welcome)
	assert.Equal(t, f.V1.State, f.Backoff.State)

	// 3. Handoff: v1 closed with 4901 and a ticket, the SDK dialled v2's
	// replica with it, and v2 resumed the player with everything it had.
	assert.True(t, has(f.Handoff.Events, func(e sdkEvent) bool { return e.Type == "reconnecting" && e.Reason == "moved" && e.Code == 4901 }), "%+v", f.Handoff.Events)
	assert.True(t, has(f.Handoff.Events, func(e sdkEvent) bool {
		return e.Type == "moved" && e.Ticket != "" && e.ToReplica == f.Handoff.Welcome.Replica
	}), "%+v", f.Handoff.Events)
	assert.True(t, has(f.Handoff.Events, func(e sdkEvent) bool { return e.Type == "reconnected" && e.Handoff && !e.SameReplica }), "%+v", f.Handoff.Events)
	assert.True(t, f.Handoff.TicketDialled, "the socket was dialled with the ticket")
	assert.Equal(t, welcome{ID: me, Revision: f.Handoff.Revision, Replica: f.Handoff.Welcome.Replica, Resumed: true}, f.Handoff.Welcome)
	assert.NotEqual(t, f.V1.Revision, f.Handoff.Revision)
	assert.Equal(t, f.V1.State, f.Handoff.State)

	// 4. 410: the retired replica's socket refused, its URL answered 410,
	// get-endpoint named v3, and the player joined there afresh.
	assert.True(t, has(f.Gone.Events, func(e sdkEvent) bool { return e.Type == "reconnecting" && e.Reason == "gone" }), "%+v", f.Gone.Events)
	assert.Equal(t, f.Gone.Revision, f.Gone.Endpoint.Revision, "through get-endpoint")
	assert.Equal(t, f.Gone.Revision, f.Gone.Welcome.Revision)
	assert.Equal(t, f.Gone.Endpoint.Replica, f.Gone.Welcome.Replica)
	assert.False(t, f.Gone.Welcome.Resumed, "the state stayed with the retired replica")
	assert.Equal(t, "node", f.Gone.State.Name)
}
