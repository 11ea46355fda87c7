package e2e

import (
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	arenaOnce sync.Once
	arenaBin  string
	arenaErr  error
)

// arenaBinary builds examples/arena once per test run.
func arenaBinary(t *testing.T) string {
	arenaOnce.Do(func() {
		dir := filepath.Dir(platformBinary(t))
		arenaBin = filepath.Join(dir, "arena")
		if b, err := exec.Command("go", "build", "-o", arenaBin, "github.com/discovery-platform/discovery/examples/arena").CombinedOutput(); err != nil {
			arenaErr = &buildError{err, b}
		}
	})
	require.NoError(t, arenaErr)
	return arenaBin
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + string(e.out) }

// msg is one arena message.
type msg struct {
	Type     string `json:"type"`
	ID       string `json:"id"`
	Token    string `json:"token"`
	Revision string `json:"revision"`
	Respawn  bool   `json:"respawn"`
	Resumed  bool   `json:"resumed"`
	By       string `json:"by"`
	Seq      int    `json:"seq"`
	Players  []struct {
		ID     string `json:"id"`
		X, Y   int
		Alive  bool `json:"alive"`
		Score  int  `json:"score"`
		Deaths int  `json:"deaths"`
	} `json:"players"`
}

// player is one game client, as the original demo's browser tab was.
type player struct {
	t        *testing.T
	name     string
	endpoint string
	c        *websocket.Conn
	in       chan msg
	welcome  msg
	state    msg // the newest state seen
	seq      int
}

// join gets an endpoint from the platform, connects and joins the game.
func (f *Framework) join(app, name string) *player {
	ep, code := f.GetEndpoint(app)
	require.Equal(f.t, 200, code)
	p := &player{t: f.t, name: name, endpoint: ep.Endpoint + "ws"}
	p.connect(map[string]any{"type": "join", "name": name})
	return p
}

func (p *player) connect(join map[string]any) {
	c, _, err := websocket.DefaultDialer.Dial(p.endpoint, nil)
	require.NoError(p.t, err)
	p.c, p.in = c, make(chan msg, 1024)
	go func(c *websocket.Conn, in chan msg) {
		defer close(in)
		for {
			var m msg
			if err := c.ReadJSON(&m); err != nil {
				return
			}
			in <- m
		}
	}(c, p.in)
	p.t.Cleanup(func() { _ = c.Close() })
	p.send(join)
	p.welcome = p.await("welcome", func(m msg) bool { return m.Type == "welcome" })
}

func (p *player) send(v any) {
	require.NoError(p.t, p.c.WriteJSON(v))
}

// await reads messages until one matches, remembering the newest state.
func (p *player) await(what string, match func(msg) bool) msg {
	p.t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case m, ok := <-p.in:
			if !ok {
				p.t.Fatalf("%s: connection closed while waiting for %s", p.name, what)
			}
			if m.Type == "state" {
				p.state = m
			}
			if match(m) {
				return m
			}
		case <-timeout:
			p.t.Fatalf("%s: no %s within 15s", p.name, what)
		}
	}
}

// sync pings and waits for the pong: every message sent before it has arrived.
func (p *player) sync() []msg {
	p.seq++
	p.send(map[string]any{"type": "ping", "seq": p.seq})
	var seen []msg
	p.await("pong", func(m msg) bool { seen = append(seen, m); return m.Type == "pong" && m.Seq == p.seq })
	return seen
}

func (p *player) me(s msg, id string) (x, y int, alive bool, score int) {
	for _, pl := range s.Players {
		if pl.ID == id {
			return pl.X, pl.Y, pl.Alive, pl.Score
		}
	}
	p.t.Fatalf("player %s not in state", id)
	return
}

func has(s msg, id string) bool {
	for _, pl := range s.Players {
		if pl.ID == id {
			return true
		}
	}
	return false
}

// seeing waits until p's newest state shows every one of ids (states are
// broadcast at most every 100 ms, so a join shows up a moment later).
func (p *player) seeing(ids ...string) {
	all := func(m msg) bool {
		for _, id := range ids {
			if !has(m, id) {
				return false
			}
		}
		return true
	}
	if !all(p.state) {
		p.await("a state showing everyone", func(m msg) bool { return m.Type == "state" && all(m) })
	}
}

// approach moves p until it stands within one cell of target.
func (p *player) approach(target *player) {
	for i := 0; i < 64; i++ {
		p.sync()
		p.seeing(p.welcome.ID, target.welcome.ID)
		x, y, _, _ := p.me(p.state, p.welcome.ID)
		tx, ty, _, _ := p.me(p.state, target.welcome.ID)
		dx, dy := tx-x, ty-y
		if abs(dx) <= 1 && abs(dy) <= 1 {
			return
		}
		dir := "right"
		switch {
		case dx < -1:
			dir = "left"
		case dx > 1:
			dir = "right"
		case dy < -1:
			dir = "up"
		default:
			dir = "down"
		}
		p.send(map[string]any{"type": "move", "dir": dir})
		p.await("my move", func(m msg) bool {
			if m.Type != "state" {
				return false
			}
			nx, ny, _, _ := p.me(m, p.welcome.ID)
			return nx != x || ny != y
		})
	}
	p.t.Fatalf("%s never reached %s", p.name, target.name)
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// TestOriginalDemoReplay replays the original demo on the process runtime
// (TestOriginalDemoReplayOnKubernetes on pods):
// players on v1 keep their game (with respawn) while v2 (no respawn) takes the
// new players, and v1 is retired once its players have left.
func TestOriginalDemoReplay(t *testing.T) {
	f := New(t)
	f.Start()
	arena := arenaBinary(t)
	replayOriginalDemo(t, f, map[string]any{"command": []string{arena}}, func(rev string) int { return len(f.Running(rev)) })
}

// replayOriginalDemo is the demo's story on any runtime: runs is what the
// deploy call names to run (a command, or an image), running counts the
// replicas of a revision really running (processes, or pods).
func replayOriginalDemo(t *testing.T, f *Framework, runs map[string]any, running func(rev string) int) {
	require.Equal(t, 201, f.Call("POST", "/apps", map[string]any{"name": "arena", "replicas": 1, "health_path": "/healthz",
		"reconnect_grace": "2s", "shutdown_grace": "3s"}, nil))
	deploy := func(env map[string]string) string {
		var rev Revision
		body := map[string]any{"env": env}
		for k, v := range runs {
			body[k] = v
		}
		require.Equal(t, 202, f.Call("POST", "/apps/arena/revisions", body, &rev))
		return rev.ID
	}
	env := map[string]string{"ARENA_SIZE": "8", "RESPAWN_DELAY": "1s"}
	v1 := deploy(env)
	f.WaitState("arena", v1, "active", 60*time.Second)

	// A and B join v1 and play.
	a, b := f.join("arena", "A"), f.join("arena", "B")
	for _, p := range []*player{a, b} {
		assert.Equal(t, v1, p.welcome.Revision)
		assert.True(t, p.welcome.Respawn)
	}

	// Deploy v2: respawn disabled. v1 keeps running for A and B.
	env2 := map[string]string{"ARENA_SIZE": "8", "RESPAWN_DELAY": "1s", "RESPAWN": "false"}
	v2 := deploy(env2)
	f.WaitState("arena", v2, "active", 60*time.Second)
	f.WaitState("arena", v1, "draining", 10*time.Second)

	// C and D get v2.
	c, d := f.join("arena", "C"), f.join("arena", "D")
	for _, p := range []*player{c, d} {
		assert.Equal(t, v2, p.welcome.Revision)
		assert.False(t, p.welcome.Respawn)
	}

	// On v2, C kills D.
	c.approach(d)
	c.send(map[string]any{"type": "attack"})
	d.await("killed by C", func(m msg) bool { return m.Type == "killed" && m.By == c.welcome.ID })

	// On v1, A kills B, and B respawns: v1 still plays by v1's rules.
	a.approach(b)
	a.send(map[string]any{"type": "attack"})
	b.await("killed by A", func(m msg) bool { return m.Type == "killed" && m.By == a.welcome.ID })
	b.await("respawn on v1", func(m msg) bool { return m.Type == "respawned" })

	// D died before B with the same delay: had v2 respawned, it would have by now.
	for _, m := range d.sync() {
		assert.NotEqual(t, "respawned", m.Type, "D respawned on v2")
	}
	d.seeing(d.welcome.ID)
	_, _, alive, _ := d.me(d.state, d.welcome.ID)
	assert.False(t, alive, "D stays dead on v2")

	// A drops and reconnects with its endpoint URL: still on v1, with its state.
	a.sync()
	a.seeing(a.welcome.ID)
	ax, ay, _, score := a.me(a.state, a.welcome.ID)
	require.Equal(t, 1, score)
	require.NoError(t, a.c.Close())
	a.connect(map[string]any{"type": "join", "id": a.welcome.ID, "token": a.welcome.Token})
	assert.True(t, a.welcome.Resumed)
	assert.Equal(t, v1, a.welcome.Revision, "the endpoint URL pins v1's replica")
	a.state = msg{}
	a.sync()
	a.seeing(a.welcome.ID)
	nx, ny, _, nscore := a.me(a.state, a.welcome.ID)
	assert.Equal(t, []int{ax, ay, score}, []int{nx, ny, nscore}, "position and score survive the reconnect")
	assert.Equal(t, 1, running(v1), "v1's replica runs on while A and B play")

	// A and B leave; v1 is retired once empty for reconnect_grace.
	left := time.Now()
	for _, p := range []*player{a, b} {
		p.send(map[string]any{"type": "leave"})
		p.sync()
		_ = p.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		_ = p.c.Close()
	}
	got := f.WaitState("arena", v1, "retired", 2*time.Second+15*time.Second)
	t.Logf("v1 retired %s after its last player left: %s", time.Since(left).Round(100*time.Millisecond), got.Reason)
	assert.Contains(t, got.Reason, "empty for reconnect_grace")

	// From now on get-endpoint hands out v2 only.
	for i := 0; i < 5; i++ {
		ep, code := f.GetEndpoint("arena")
		require.Equal(t, 200, code)
		assert.Equal(t, v2, ep.Revision)
	}
	f.Eventually("v1's replica is gone", 30*time.Second, func() bool { return running(v1) == 0 })
	assert.Equal(t, 1, running(v2), "v2 plays on")
}
