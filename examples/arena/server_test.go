package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestJoinMoveAndSeeState(t *testing.T) {
	t.Parallel()
	a := startArena(t, nil)
	alice := a.dial(t)

	w := alice.join("alice")

	assert.Equal(t, serverMsg{Type: "welcome", ID: w.ID, Token: w.Token, Revision: "9d00cc18", Replica: "r-0", Respawn: true, Size: 16, MaxHP: 1}, w)
	st := alice.awaitState("alice in the world", func(m serverMsg) bool { _, ok := m.player(alice.id); return ok })
	me, _ := st.player(alice.id)
	assert.Equal(t, playerState{ID: alice.id, Name: "alice", X: me.X, Y: me.Y, HP: 1, Alive: true, Connected: true}, me)

	dir, wantX := "right", me.X+1
	if me.X > 0 {
		dir, wantX = "left", me.X-1
	}
	alice.send(map[string]string{"type": "move", "dir": dir})
	alice.awaitState("alice moved "+dir, func(m serverMsg) bool {
		p, _ := m.player(alice.id)
		return p.X == wantX && p.Y == me.Y
	})

	bob := a.dial(t)
	bob.join("bob")
	st = alice.awaitState("bob appears", func(m serverMsg) bool { _, ok := m.player(bob.id); return ok })
	assert.Equal(t, []string{alice.id, bob.id}, ids(st.Players), "players listed in join order")
	assert.Greater(t, st.Tick, uint64(1))
}

func ids(ps []playerState) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

// On a 2x2 grid every cell is within one cell of every other, so an attack
// always reaches everyone.
func TestAttackKillsNeighbourAndTheDeadCannotAct(t *testing.T) {
	t.Parallel()
	a := startArena(t, map[string]string{"ARENA_SIZE": "2"})
	alice, bob := a.dial(t), a.dial(t)
	alice.join("alice")
	bob.join("bob")
	alice.awaitState("bob joined", func(m serverMsg) bool { _, ok := m.player(bob.id); return ok })

	alice.send(map[string]string{"type": "attack"})

	killed := bob.awaitType("killed")
	assert.Equal(t, alice.id, killed.By)
	st := alice.awaitState("bob dead", func(m serverMsg) bool { p, _ := m.player(bob.id); return !p.Alive })
	a1, _ := st.player(alice.id)
	b1, _ := st.player(bob.id)
	assert.Equal(t, 1, a1.Score)
	assert.Equal(t, 0, a1.Deaths)
	assert.Equal(t, 1, b1.Deaths)
	assert.True(t, a1.Alive)

	bob.send(map[string]string{"type": "move", "dir": "up"})
	bob.awaitError(codeDead)
	bob.send(map[string]string{"type": "attack"})
	bob.awaitError(codeDead)
	bob.ping(1) // still connected
}

func TestKilledPlayerRespawnsAfterDelay(t *testing.T) {
	t.Parallel()
	const delay = 50 * time.Millisecond
	a := startArena(t, map[string]string{"ARENA_SIZE": "2", "RESPAWN_DELAY": delay.String()})
	alice, bob := a.dial(t), a.dial(t)
	alice.join("alice")
	bob.join("bob")
	alice.awaitState("bob joined", func(m serverMsg) bool { _, ok := m.player(bob.id); return ok })

	attacked := time.Now()
	alice.send(map[string]string{"type": "attack"})
	bob.awaitType("killed")
	r := bob.awaitType("respawned")

	assert.GreaterOrEqual(t, time.Since(attacked), delay)
	st := alice.awaitState("bob alive again", func(m serverMsg) bool { p, _ := m.player(bob.id); return p.Alive })
	p, _ := st.player(bob.id)
	assert.Equal(t, [2]int{r.X, r.Y}, [2]int{p.X, p.Y})
	assert.Equal(t, 1, p.Deaths)
	bob.send(map[string]string{"type": "attack"})
	killed := alice.awaitType("killed")
	assert.Equal(t, bob.id, killed.By, "a respawned player can fight back")
}

func TestKilledPlayerStaysDeadWhenRespawnIsOff(t *testing.T) {
	t.Parallel()
	const delay = 10 * time.Millisecond
	a := startArena(t, map[string]string{"ARENA_SIZE": "2", "RESPAWN": "false", "RESPAWN_DELAY": delay.String()})
	alice, bob := a.dial(t), a.dial(t)
	w := alice.join("alice")
	assert.False(t, w.Respawn, "welcome says respawn is off")
	bob.join("bob")
	alice.awaitState("bob joined", func(m serverMsg) bool { _, ok := m.player(bob.id); return ok })

	alice.send(map[string]string{"type": "attack"})
	bob.awaitType("killed")

	// Keep talking to bob for twenty respawn delays: every message must show
	// him dead and none may respawn him.
	tick := time.NewTicker(delay)
	defer tick.Stop()
	for seq := int64(1); seq <= 20; seq++ {
		<-tick.C
		bob.send(map[string]any{"type": "ping", "seq": seq})
		for m := bob.read(); m.Type != "pong"; m = bob.read() {
			require.NotEqual(t, "respawned", m.Type)
			if p, ok := m.player(bob.id); ok {
				require.False(t, p.Alive)
			}
		}
	}
	bob.send(map[string]string{"type": "move", "dir": "left"})
	bob.awaitError(codeDead)
}

func TestPingPongKeepsEverySeq(t *testing.T) {
	t.Parallel()
	a := startArena(t, nil)
	c := a.dial(t)
	const n = 500
	// readPongs reads until every pong in [from, to) has arrived, in order.
	readPongs := func(from, to int64) {
		for want := from; want < to; {
			if m := c.read(); m.Type == "pong" {
				require.Equal(t, want, m.Seq, "pongs arrive in order, none lost")
				want++
			}
		}
	}
	for seq := range int64(n) { // before joining: pings need no player
		c.send(map[string]any{"type": "ping", "seq": seq})
	}
	readPongs(0, n)
	c.join("pinger")
	for seq := range int64(n) { // and after joining
		c.send(map[string]any{"type": "ping", "seq": n + seq})
	}
	readPongs(n, 2*n)
}

func TestReconnectResumesThePlayer(t *testing.T) {
	t.Parallel()
	a := startArena(t, map[string]string{"ARENA_SIZE": "2", "RESPAWN": "false"})
	alice, bob := a.dial(t), a.dial(t)
	alice.join("alice")
	bob.join("bob")
	alice.awaitState("bob joined", func(m serverMsg) bool { _, ok := m.player(bob.id); return ok })
	alice.send(map[string]string{"type": "attack"})
	bob.awaitType("killed")
	before := alice.awaitState("bob dead", func(m serverMsg) bool { p, _ := m.player(bob.id); return !p.Alive })
	bobBefore, _ := before.player(bob.id)

	require.NoError(t, bob.conn.Close()) // dropped without a close frame, like a lost network
	alice.awaitState("bob shown disconnected", func(m serverMsg) bool {
		p, ok := m.player(bob.id)
		return ok && !p.Connected
	})

	thief := a.dial(t)
	thief.resume(bob.id, "not-the-token")
	thief.awaitError(codeResumeFailed)
	thief.ping(1) // refused, not disconnected

	again := a.dial(t)
	again.resume(bob.id, bob.token)
	w := again.awaitType("welcome")
	assert.True(t, w.Resumed)
	assert.Equal(t, bob.id, w.ID)
	assert.Equal(t, bob.token, w.Token)
	st := again.awaitType("state")
	bobAfter, ok := st.player(bob.id)
	require.True(t, ok)
	bobBefore.Connected = true
	assert.Equal(t, bobBefore, bobAfter, "same position, score, deaths and still dead")
	again.send(map[string]string{"type": "move", "dir": "up"})
	again.awaitError(codeDead)
}

func TestResumeTakesOverALiveConnection(t *testing.T) {
	t.Parallel()
	a := startArena(t, nil)
	first := a.dial(t)
	first.join("alice")

	second := a.dial(t)
	second.resume(first.id, first.token)
	second.awaitType("welcome")

	assert.Equal(t, closeResumedElsewhere, first.awaitClose())
	st := second.awaitState("alice connected", func(m serverMsg) bool { p, _ := m.player(first.id); return p.Connected })
	assert.Len(t, st.Players, 1)
}

func TestDisconnectedPlayerRemovedAfterReconnectWindow(t *testing.T) {
	t.Parallel()
	a := startArena(t, map[string]string{"RECONNECT_WINDOW": "50ms"})
	alice, bob := a.dial(t), a.dial(t)
	alice.join("alice")
	bob.join("bob")
	bob.awaitState("alice there", func(m serverMsg) bool { _, ok := m.player(alice.id); return ok })

	require.NoError(t, alice.conn.Close())

	bob.awaitState("alice removed", func(m serverMsg) bool { _, ok := m.player(alice.id); return !ok })
	late := a.dial(t)
	late.resume(alice.id, alice.token)
	late.awaitError(codeResumeFailed)
}

func TestLeaveRemovesThePlayerAtOnce(t *testing.T) {
	t.Parallel()
	a := startArena(t, nil)
	alice, bob := a.dial(t), a.dial(t)
	alice.join("alice")
	bob.join("bob")
	bob.awaitState("alice there", func(m serverMsg) bool { _, ok := m.player(alice.id); return ok })

	alice.send(map[string]string{"type": "leave"})

	bob.awaitState("alice gone", func(m serverMsg) bool { _, ok := m.player(alice.id); return !ok })
	alice.send(map[string]string{"type": "move", "dir": "up"})
	alice.awaitError(codeNotJoined)
	alice.join("alice again") // the connection stays usable
	assert.NotEqual(t, "p1", alice.id, "a new player")
}

func TestBadInputGetsAnErrorAndTheConnectionSurvives(t *testing.T) {
	t.Parallel()
	a := startArena(t, nil)
	tests := []struct {
		name     string
		joined   bool
		typ      int
		payload  string
		wantCode string
	}{
		{"invalid JSON", false, websocket.TextMessage, `{"type":`, codeBadJSON},
		{"not an object", false, websocket.TextMessage, `[1,2]`, codeBadJSON},
		{"wrong field type", false, websocket.TextMessage, `{"type":"ping","seq":"one"}`, codeBadJSON},
		{"binary message", false, websocket.BinaryMessage, `{"type":"ping"}`, codeBinary},
		{"unknown type", false, websocket.TextMessage, `{"type":"dance"}`, codeUnknownType},
		{"missing type", false, websocket.TextMessage, `{}`, codeUnknownType},
		{"move before join", false, websocket.TextMessage, `{"type":"move","dir":"up"}`, codeNotJoined},
		{"attack before join", false, websocket.TextMessage, `{"type":"attack"}`, codeNotJoined},
		{"leave before join", false, websocket.TextMessage, `{"type":"leave"}`, codeNotJoined},
		{"unknown player", false, websocket.TextMessage, `{"type":"join","id":"p404","token":"x"}`, codeResumeFailed},
		{"bad direction", true, websocket.TextMessage, `{"type":"move","dir":"diagonal"}`, codeBadDirection},
		{"join twice", true, websocket.TextMessage, `{"type":"join","name":"again"}`, codeAlreadyJoined},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := a.dial(t)
			if tt.joined {
				c.join("tester")
			}
			c.sendRaw(tt.typ, []byte(tt.payload))
			m := c.awaitError(tt.wantCode)
			assert.NotEmpty(t, m.Message)
			c.ping(7)
		})
	}
}

func TestMessageSizeLimit(t *testing.T) {
	t.Parallel()
	a := startArena(t, nil)
	c := a.dial(t)
	// Exactly 4 KiB is accepted.
	msg := `{"type":"ping","seq":1,"pad":""}`
	msg = strings.Replace(msg, `""`, `"`+strings.Repeat("x", maxMessageBytes-len(msg))+`"`, 1)
	require.Len(t, msg, maxMessageBytes)
	c.sendRaw(websocket.TextMessage, []byte(msg))
	c.await("pong", func(m serverMsg) bool { return m.Type == "pong" && m.Seq == 1 })

	// One byte more closes the connection with 1009.
	c.sendRaw(websocket.TextMessage, []byte(msg+" "))
	assert.Equal(t, websocket.CloseMessageTooBig, c.awaitClose())
}

func TestShutdownClosesClientsWithGoingAway(t *testing.T) {
	t.Parallel()
	a := startArena(t, nil)
	player, lurker := a.dial(t), a.dial(t)
	player.join("alice")
	lurker.ping(1) // connected, never joined

	start := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- a.shutdown() }()

	assert.Equal(t, websocket.CloseGoingAway, player.awaitClose())
	assert.Equal(t, websocket.CloseGoingAway, lurker.awaitClose())
	require.NoError(t, <-stopped)
	assert.Less(t, time.Since(start), 5*time.Second)
	_, _, err := websocket.DefaultDialer.Dial(a.ws, nil)
	assert.Error(t, err, "no longer accepting")
}

func TestHTTPEndpoints(t *testing.T) {
	t.Parallel()
	a := startArena(t, map[string]string{"RESPAWN": "false"})

	body, resp := get(t, a.base+"healthz")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ok", body)

	body, resp = get(t, a.base)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Contains(t, body, "<canvas")
	assert.Contains(t, body, "new URL('ws', base)", "the socket URL is relative to the page")
	assert.Contains(t, body, "sessionStorage")
	// Behind the gateway the app lives under a prefix: no root-relative links.
	assert.NotRegexp(t, `(?:src|href|action)=["']/`, body)
	assert.NotRegexp(t, `(?:fetch|URL|WebSocket)\(\s*['"\x60]/`, body)

	_, resp = get(t, a.base+"nothing-here")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	alice, bob := a.dial(t), a.dial(t)
	alice.join("alice")
	bob.join("bob")
	require.NoError(t, bob.conn.Close())
	alice.awaitState("bob disconnected", func(m serverMsg) bool { p, ok := m.player(bob.id); return ok && !p.Connected })

	body, resp = get(t, a.base+"info")
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.JSONEq(t, `{"revision":"9d00cc18","replica":"r-0","respawn":false,"size":16,"players":2,"connected":1}`, body)
}

func get(t *testing.T, url string) (string, *http.Response) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b), resp
}

func TestSlowClientIsDroppedNotWaitedFor(t *testing.T) {
	s := newSession(nil) // no writer: nothing ever drains the outbox
	for range sendQueueLen {
		s.enqueue([]byte("{}"))
	}
	s.offerState([]byte(`{"type":"state"}`)) // states never count against the limit
	select {
	case <-s.closing:
		t.Fatal("closed before the queue was full")
	default:
	}

	s.enqueue([]byte("{}")) // must not block

	select {
	case <-s.closing:
	default:
		t.Fatal("a full queue must drop the client")
	}
	assert.Equal(t, websocket.ClosePolicyViolation, s.closeCode)
}

func TestNewerStateReplacesUnwrittenStateInOrder(t *testing.T) {
	s := newSession(nil) // no writer
	s.enqueue([]byte("welcome"))
	s.offerState([]byte("state 1"))
	s.enqueue([]byte("killed"))
	s.offerState([]byte("state 2"))
	s.enqueue([]byte("pong"))

	got := s.take(nil)

	assert.Equal(t, []string{"welcome", "killed", "state 2", "pong"}, strs(got),
		"replies keep their order; only the newest state is written, after every reply that preceded it")
	assert.Empty(t, s.take(got), "taken once")
	assert.Zero(t, s.backlog())
}

func strs(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

// TestSIGTERMExitsCleanly runs the real main in a child process, as the
// platform's process runtime does, and stops it the way the platform does.
func TestSIGTERMExitsCleanly(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-respawn=false")
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "PORT=0", "DISCOVERY_REVISION=9d00cc18", "DISCOVERY_REPLICA=r-7",
		// A -race binary otherwise sleeps 1 s on exit.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	// The reader goroutine logs, so it must end before the test does.
	var waitErr error
	exited := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // a no-op unless the test failed before the exit
		<-exited
	})
	addrs := make(chan string, 1)
	go func() {
		defer close(exited)
		listening := regexp.MustCompile(`msg="arena listening".* addr=(\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Log("arena:", sc.Text())
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addrs <- m[1]
			}
		}
		waitErr = cmd.Wait() // only after stderr is drained, as Wait requires
	}()
	var addr string
	select {
	case addr = <-addrs:
	case <-exited:
		t.Fatalf("arena exited before listening: %v", waitErr)
	case <-time.After(10 * time.Second):
		t.Fatal("arena did not report its address")
	}

	a := &arena{base: "http://" + addr + "/", ws: "ws://" + addr + "/ws"}
	c := a.dial(t)
	w := c.join("alice")
	assert.Equal(t, "r-7", w.Replica)
	assert.False(t, w.Respawn, "-respawn=false is the demo's v2")

	start := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, websocket.CloseGoingAway, c.awaitClose())
	select {
	case <-exited:
		assert.NoError(t, waitErr, "exit status 0")
		assert.Less(t, time.Since(start), 5*time.Second)
	case <-time.After(5 * time.Second):
		t.Fatal("arena still running 5s after SIGTERM")
	}
}

// TestManyPlayersLoseNothing is a small load test: players move and ping
// concurrently; each must get every pong, in order, and keep its connection.
func TestManyPlayersLoseNothing(t *testing.T) {
	t.Parallel()
	const players, rounds = 50, 100
	a := startArena(t, map[string]string{"ARENA_SIZE": "32"})
	var wg sync.WaitGroup
	errs := make(chan error, players)
	for i := range players {
		wg.Go(func() {
			errs <- playRounds(a, "bot"+strconv.Itoa(i), rounds)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
}

// playRounds joins, sends rounds moves and pings without waiting, and reads
// until every pong has arrived. It reports instead of failing: it runs on its
// own goroutine.
func playRounds(a *arena, name string, rounds int) error {
	conn, resp, err := websocket.DefaultDialer.Dial(a.ws, nil)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	sent := make(chan error, 1)
	go func() {
		dirs := []string{"up", "left", "down", "right"}
		err := conn.WriteJSON(map[string]string{"type": "join", "name": name})
		for k := 0; k < rounds && err == nil; k++ {
			if err = conn.WriteJSON(map[string]string{"type": "move", "dir": dirs[k%4]}); err == nil {
				err = conn.WriteJSON(map[string]any{"type": "ping", "seq": k})
			}
		}
		sent <- err
	}()
	for want := int64(0); want < int64(rounds); {
		var m serverMsg
		if err := conn.ReadJSON(&m); err != nil {
			return fmt.Errorf("%s after %d pongs: %w", name, want, err)
		}
		switch m.Type {
		case "pong":
			if m.Seq != want {
				return fmt.Errorf("%s: pong %d, want %d", name, m.Seq, want)
			}
			want++
		case "error":
			return fmt.Errorf("%s: error %s", name, m.Message)
		}
	}
	return <-sent
}
