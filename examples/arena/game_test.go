package main

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testWorld is a world on a hand-driven clock, a fixed random seed and
// predictable tokens.
type testWorld struct {
	*world
	clock time.Time
}

func newTestWorld(t *testing.T, r rules) *testWorld {
	t.Helper()
	if r.size == 0 {
		r.size = 16
	}
	if r.hp == 0 {
		r.hp = 1 // one hit kills, unless a test says otherwise
	}
	tw := &testWorld{clock: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)}
	tokens := 0
	tw.world = newWorld(r, func() time.Time { return tw.clock },
		rand.New(rand.NewPCG(1, 2)),
		func() string { tokens++; return "token-" + strconv.Itoa(tokens) })
	return tw
}

func (tw *testWorld) advance(d time.Duration) { tw.clock = tw.clock.Add(d) }

// joinAt adds a player and puts it on a chosen cell.
func (tw *testWorld) joinAt(name string, x, y int) string {
	p := tw.join(name)
	tw.players[p.id].x, tw.players[p.id].y = x, y
	return p.id
}

func (tw *testWorld) get(t *testing.T, id string) player {
	t.Helper()
	p, ok := tw.players[id]
	require.True(t, ok, "player %s not in the world", id)
	return *p
}

func TestAttackRadius(t *testing.T) {
	tests := []struct {
		name   string
		dx, dy int
		killed bool
	}{
		{"same cell", 0, 0, true},
		{"left", -1, 0, true},
		{"right", 1, 0, true},
		{"above", 0, -1, true},
		{"below", 0, 1, true},
		{"diagonal up-left", -1, -1, true},
		{"diagonal up-right", 1, -1, true},
		{"diagonal down-left", -1, 1, true},
		{"diagonal down-right", 1, 1, true},
		{"two right", 2, 0, false},
		{"two below", 0, 2, false},
		{"knight's move", 2, 1, false},
		{"two diagonal", -2, -2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newTestWorld(t, rules{respawn: true, respawnDelay: time.Second})
			a := w.joinAt("attacker", 5, 5)
			v := w.joinAt("victim", 5+tt.dx, 5+tt.dy)

			victims, err := w.attack(a)
			require.NoError(t, err)

			if tt.killed {
				assert.Equal(t, []string{v}, victims)
				assert.False(t, w.get(t, v).alive)
				assert.Equal(t, 1, w.get(t, v).deaths)
				assert.Equal(t, 1, w.get(t, a).score)
			} else {
				assert.Empty(t, victims)
				assert.True(t, w.get(t, v).alive)
				assert.Zero(t, w.get(t, a).score)
			}
			assert.True(t, w.get(t, a).alive, "the attacker never kills itself")
		})
	}
}

func TestAttackKillsEveryLivingNeighbourOnce(t *testing.T) {
	w := newTestWorld(t, rules{respawn: true, respawnDelay: time.Second})
	a := w.joinAt("attacker", 3, 3)
	n1 := w.joinAt("n1", 2, 2)
	n2 := w.joinAt("n2", 3, 3)
	far := w.joinAt("far", 9, 9)
	corpse := w.joinAt("corpse", 4, 4)
	w.players[corpse].alive = false
	w.players[corpse].deaths = 1

	victims, err := w.attack(a)
	require.NoError(t, err)
	assert.Equal(t, []string{n1, n2}, victims, "join order, living neighbours only")
	assert.Equal(t, 2, w.get(t, a).score)
	assert.Equal(t, 1, w.get(t, corpse).deaths, "the dead do not die twice")
	assert.True(t, w.get(t, far).alive)
}

func TestDeadCannotAct(t *testing.T) {
	tests := []struct {
		name string
		act  func(w *testWorld, id string) error
	}{
		{"move", func(w *testWorld, id string) error { return w.move(id, dirLeft) }},
		{"attack", func(w *testWorld, id string) error { _, err := w.attack(id); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newTestWorld(t, rules{respawn: true, respawnDelay: time.Second})
			killer := w.joinAt("killer", 4, 4)
			dead := w.joinAt("dead", 5, 5)
			bystander := w.joinAt("bystander", 6, 6)
			_, err := w.attack(killer)
			require.NoError(t, err)
			require.False(t, w.get(t, dead).alive)

			err = tt.act(w, dead)

			assert.ErrorIs(t, err, errDead)
			assert.Equal(t, [2]int{5, 5}, [2]int{w.get(t, dead).x, w.get(t, dead).y})
			assert.True(t, w.get(t, bystander).alive)
			assert.Zero(t, w.get(t, dead).score)
		})
	}
}

func TestMoveClampsToTheGrid(t *testing.T) {
	tests := []struct {
		from   [2]int
		dir    direction
		want   [2]int
		errIs  error
		reason string
	}{
		{[2]int{5, 5}, dirUp, [2]int{5, 4}, nil, "up is y-1"},
		{[2]int{5, 5}, dirDown, [2]int{5, 6}, nil, "down is y+1"},
		{[2]int{5, 5}, dirLeft, [2]int{4, 5}, nil, "left is x-1"},
		{[2]int{5, 5}, dirRight, [2]int{6, 5}, nil, "right is x+1"},
		{[2]int{0, 0}, dirUp, [2]int{0, 0}, nil, "top edge"},
		{[2]int{0, 0}, dirLeft, [2]int{0, 0}, nil, "left edge"},
		{[2]int{15, 15}, dirDown, [2]int{15, 15}, nil, "bottom edge"},
		{[2]int{15, 15}, dirRight, [2]int{15, 15}, nil, "right edge"},
		{[2]int{15, 0}, dirLeft, [2]int{14, 0}, nil, "along the top edge"},
		{[2]int{5, 5}, "north", [2]int{5, 5}, errBadDirection, "unknown direction"},
		{[2]int{5, 5}, "", [2]int{5, 5}, errBadDirection, "missing direction"},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			w := newTestWorld(t, rules{size: 16})
			id := w.joinAt("mover", tt.from[0], tt.from[1])

			err := w.move(id, tt.dir)

			if tt.errIs != nil {
				assert.ErrorIs(t, err, tt.errIs)
			} else {
				assert.NoError(t, err)
			}
			p := w.get(t, id)
			assert.Equal(t, tt.want, [2]int{p.x, p.y})
		})
	}
}

func TestUnknownPlayerCannotAct(t *testing.T) {
	w := newTestWorld(t, rules{})
	assert.ErrorIs(t, w.move("p99", dirUp), errUnknownPlayer)
	_, err := w.attack("p99")
	assert.ErrorIs(t, err, errUnknownPlayer)
}

func TestRespawnAfterDelay(t *testing.T) {
	w := newTestWorld(t, rules{size: 16, respawn: true, respawnDelay: 5 * time.Second, reconnectWindow: time.Minute})
	killer := w.joinAt("killer", 0, 0)
	victim := w.joinAt("victim", 1, 1)
	_, err := w.attack(killer)
	require.NoError(t, err)

	next, ok := w.nextDeadline()
	require.True(t, ok)
	assert.Equal(t, w.clock.Add(5*time.Second), next)

	w.advance(5*time.Second - time.Nanosecond)
	res := w.runTimers()
	assert.Empty(t, res.respawned, "not before the delay")
	assert.False(t, w.get(t, victim).alive)

	w.advance(time.Nanosecond)
	res = w.runTimers()
	require.Len(t, res.respawned, 1)
	p := w.get(t, victim)
	assert.Equal(t, victim, res.respawned[0].id)
	assert.True(t, p.alive)
	assert.Equal(t, [2]int{p.x, p.y}, [2]int{res.respawned[0].x, res.respawned[0].y})
	assert.NotEqual(t, [2]int{0, 0}, [2]int{p.x, p.y}, "respawns on a free cell, not on the living killer")
	assert.Equal(t, 1, p.deaths, "deaths are kept across respawns")
	_, ok = w.nextDeadline()
	assert.False(t, ok, "nothing left to do")

	require.NoError(t, w.move(victim, dirUp), "a respawned player can act")
}

func TestRespawnFindsTheOnlyFreeCell(t *testing.T) {
	w := newTestWorld(t, rules{size: 2, respawn: true, respawnDelay: time.Second})
	killer := w.joinAt("killer", 0, 0)
	b := w.joinAt("b", 1, 0)
	c := w.joinAt("c", 0, 1)
	victim := w.joinAt("victim", 1, 1)
	_, err := w.attack(killer) // everyone on a 2x2 grid is a neighbour
	require.NoError(t, err)
	for _, id := range []string{b, c} { // two of them come back at once, by hand
		w.players[id].alive = true
		w.players[id].respawnAt = time.Time{}
	}

	w.advance(time.Second)
	res := w.runTimers()

	require.Len(t, res.respawned, 1)
	p := w.get(t, victim)
	assert.Equal(t, [2]int{1, 1}, [2]int{p.x, p.y}, "the one cell without a living player")
}

func TestNoRespawnWhenDisabled(t *testing.T) {
	w := newTestWorld(t, rules{respawn: false, respawnDelay: 5 * time.Second, reconnectWindow: time.Minute})
	killer := w.joinAt("killer", 0, 0)
	victim := w.joinAt("victim", 1, 0)
	_, err := w.attack(killer)
	require.NoError(t, err)

	_, ok := w.nextDeadline()
	assert.False(t, ok, "no respawn is ever scheduled")
	w.advance(24 * time.Hour)
	res := w.runTimers()

	assert.Empty(t, res.respawned)
	assert.False(t, w.get(t, victim).alive)
	assert.ErrorIs(t, w.move(victim, dirRight), errDead)
}

func TestResume(t *testing.T) {
	tests := []struct {
		name    string
		id      func(real string) string
		token   func(real string) string
		wantErr error
	}{
		{"id and token", func(id string) string { return id }, func(tok string) string { return tok }, nil},
		{"wrong token", func(id string) string { return id }, func(string) string { return "token-999" }, errBadToken},
		{"empty token", func(id string) string { return id }, func(string) string { return "" }, errBadToken},
		{"token prefix", func(id string) string { return id }, func(tok string) string { return tok[:3] }, errBadToken},
		{"unknown id", func(string) string { return "p42" }, func(tok string) string { return tok }, errUnknownPlayer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newTestWorld(t, rules{respawn: false, reconnectWindow: time.Minute})
			killer := w.joinAt("killer", 7, 7)
			alice := w.join("alice")
			w.players[alice.id].x, w.players[alice.id].y = 3, 4
			w.players[killer].x, w.players[killer].y = 3, 3
			_, err := w.attack(killer)
			require.NoError(t, err)
			w.disconnect(alice.id)

			p, err := w.resume(tt.id(alice.id), tt.token(alice.token))

			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
				assert.False(t, w.get(t, alice.id).connected, "a refused resume changes nothing")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, alice.id, p.id)
			assert.Equal(t, "alice", p.name)
			assert.Equal(t, [2]int{3, 4}, [2]int{p.x, p.y})
			assert.False(t, p.alive, "resumes dead, as it left")
			assert.Equal(t, 1, p.deaths)
			assert.True(t, p.connected)
			_, pending := w.nextDeadline()
			assert.False(t, pending, "resuming cancels the removal")
		})
	}
}

func TestDisconnectedPlayerRemovedAfterWindow(t *testing.T) {
	w := newTestWorld(t, rules{reconnectWindow: time.Minute})
	alice := w.join("alice")
	w.advance(time.Second)
	w.disconnect(alice.id)

	next, ok := w.nextDeadline()
	require.True(t, ok)
	assert.Equal(t, w.clock.Add(time.Minute), next)

	w.advance(time.Minute - time.Nanosecond)
	assert.Empty(t, w.runTimers().removed)
	assert.False(t, w.get(t, alice.id).connected, "still in the world, shown disconnected")

	w.advance(time.Nanosecond)
	assert.Equal(t, []string{alice.id}, w.runTimers().removed)
	_, err := w.resume(alice.id, alice.token)
	assert.ErrorIs(t, err, errUnknownPlayer)
}

func TestLeaveRemovesAtOnce(t *testing.T) {
	w := newTestWorld(t, rules{reconnectWindow: time.Minute})
	alice := w.join("alice")
	bob := w.join("bob")

	w.leave(alice.id)

	snap := w.snapshot()
	require.Len(t, snap, 1)
	assert.Equal(t, bob.id, snap[0].id)
	_, err := w.resume(alice.id, alice.token)
	assert.ErrorIs(t, err, errUnknownPlayer)
}

func TestJoinPlacesPlayersOnFreeCells(t *testing.T) {
	w := newTestWorld(t, rules{size: 2})
	seen := map[[2]int]bool{}
	for i := range 4 {
		p := w.join("p")
		assert.Equal(t, "p"+strconv.Itoa(i+1)+"-"+w.tag, p.id)
		assert.Equal(t, "token-"+strconv.Itoa(i+1), p.token)
		assert.True(t, p.alive)
		assert.True(t, p.connected)
		seen[[2]int{p.x, p.y}] = true
	}
	assert.Len(t, seen, 4, "four players fill a 2x2 grid without sharing a cell")

	p := w.join("crowd")
	assert.True(t, p.x >= 0 && p.x < 2 && p.y >= 0 && p.y < 2, "a full grid still takes players")
}

func TestCleanName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"alice", "alice"},
		{"  bob  ", "bob"},
		{"", "player 7"},
		{" \t\n", "player 7"},
		{"e\x00v\x1bil", "evil"},
		{strings.Repeat("x", 50), strings.Repeat("x", maxNameRunes)},
		{strings.Repeat("é", 30), strings.Repeat("é", maxNameRunes)},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, cleanName(tt.in, 7), "cleanName(%q)", tt.in)
	}
}

func TestHitPoints(t *testing.T) {
	w := newTestWorld(t, rules{hp: 3, respawn: true, respawnDelay: time.Second})
	a := w.joinAt("attacker", 5, 5)
	v := w.joinAt("victim", 5, 6)
	assert.Equal(t, 3, w.get(t, v).hp, "joins with the rules' hit points")

	for want := 2; want >= 1; want-- {
		victims, err := w.attack(a)
		require.NoError(t, err)
		assert.Empty(t, victims, "hurt, not killed")
		assert.Equal(t, want, w.get(t, v).hp)
		assert.True(t, w.get(t, v).alive)
	}
	victims, err := w.attack(a)
	require.NoError(t, err)
	assert.Equal(t, []string{v}, victims, "the third hit kills")
	assert.Zero(t, w.get(t, v).hp)
	assert.Equal(t, 1, w.get(t, a).score)
	assert.Equal(t, 1, w.get(t, v).deaths)

	w.advance(time.Second)
	w.runTimers()
	assert.Equal(t, 3, w.get(t, v).hp, "respawns whole")
}

func TestJoinSkipsIdsTakenByMovedPlayers(t *testing.T) {
	w := newTestWorld(t, rules{})
	moved := w.restore(movedPlayer{V: 1, ID: "p1-" + w.tag, Name: "from a twin world", Alive: true, HP: 1})
	p := w.join("local")
	assert.Equal(t, "p1-"+w.tag, moved.id)
	assert.NotEqual(t, moved.id, p.id)
	assert.Len(t, w.snapshot(), 2)
}

func TestMovingPlayerIsFrozen(t *testing.T) {
	w := newTestWorld(t, rules{size: 16, hp: 2, respawn: true, respawnDelay: time.Second, reconnectWindow: time.Minute})
	a := w.joinAt("attacker", 5, 5)
	m := w.joinAt("mover", 5, 5)
	dead := w.joinAt("dead mover", 6, 6)
	w.players[dead].alive, w.players[dead].hp, w.players[dead].respawnAt = false, 0, w.clock.Add(time.Second)

	_, ok := w.export(m)
	require.True(t, ok)
	_, ok = w.export(m)
	assert.False(t, ok, "moved once at a time")
	_, ok = w.export(dead)
	require.True(t, ok)

	assert.ErrorIs(t, w.move(m, dirUp), errMoving)
	_, err := w.attack(m)
	assert.ErrorIs(t, err, errMoving)
	_, err = w.attack(a)
	require.NoError(t, err)
	assert.Equal(t, 2, w.get(t, m).hp, "out of reach while moving")
	_, pending := w.nextDeadline()
	assert.False(t, pending, "no respawn while moving")
	w.advance(time.Hour)
	w.runTimers()
	assert.False(t, w.get(t, dead).alive)

	assert.True(t, w.thaw(m))
	assert.True(t, w.thaw(dead))
	assert.NoError(t, w.move(m, dirUp), "a move that did not happen: plays on")
	w.runTimers()
	assert.True(t, w.get(t, dead).alive, "its overdue respawn comes")
	assert.False(t, w.thaw("p99"))
}

func TestExportThenRestoreIsTheSamePlayer(t *testing.T) {
	tests := []struct {
		name  string
		setup func(p *player, now time.Time)
		to    rules
		check func(t *testing.T, got player, now time.Time)
	}{
		{"alive and hurt", func(p *player, _ time.Time) { p.hp, p.score, p.deaths = 2, 5, 3 }, rules{hp: 3},
			func(t *testing.T, got player, _ time.Time) {
				assert.Equal(t, [5]int{3, 4, 2, 5, 3}, [5]int{got.x, got.y, got.hp, got.score, got.deaths})
				assert.True(t, got.alive)
			}},
		{"dead, respawn due in 1.5 s", func(p *player, now time.Time) {
			p.alive, p.hp, p.deaths, p.respawnAt = false, 0, 1, now.Add(1500*time.Millisecond)
		}, rules{hp: 3, respawn: true, respawnDelay: 5 * time.Second},
			func(t *testing.T, got player, now time.Time) {
				assert.False(t, got.alive)
				assert.Zero(t, got.hp)
				assert.Equal(t, now.Add(1500*time.Millisecond), got.respawnAt, "when it was due, not the new delay")
			}},
		{"dead for good, into a world that respawns", func(p *player, _ time.Time) { p.alive, p.hp = false, 0 },
			rules{hp: 3, respawn: true, respawnDelay: 5 * time.Second},
			func(t *testing.T, got player, now time.Time) {
				assert.Equal(t, now.Add(5*time.Second), got.respawnAt, "the new world's delay")
			}},
		{"into a world that does not respawn", func(p *player, now time.Time) {
			p.alive, p.hp, p.respawnAt = false, 0, now.Add(time.Second)
		}, rules{hp: 3, respawn: false},
			func(t *testing.T, got player, _ time.Time) {
				assert.False(t, got.alive)
				assert.True(t, got.respawnAt.IsZero())
			}},
		{"onto a smaller grid with fewer hit points", func(p *player, _ time.Time) { p.x, p.y, p.hp = 12, 9, 5 }, rules{size: 8, hp: 3},
			func(t *testing.T, got player, _ time.Time) {
				assert.Equal(t, [3]int{7, 7, 3}, [3]int{got.x, got.y, got.hp})
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from := newTestWorld(t, rules{size: 16, hp: 5, respawn: true, respawnDelay: 5 * time.Second})
			id := from.joinAt("alice", 3, 4)
			tt.setup(from.players[id], from.clock)
			m, ok := from.export(id)
			require.True(t, ok)

			b := m.encode()
			got, err := decodeMoved(b)
			require.NoError(t, err)
			to := newTestWorld(t, tt.to)
			to.advance(time.Hour) // another clock: only durations travel
			p := to.restore(got)

			assert.Equal(t, id, p.id, "the same id")
			assert.Equal(t, "alice", p.name)
			assert.NotContains(t, string(b), from.players[id].token, "the token does not travel")
			assert.NotEmpty(t, p.token, "a new one is made")
			assert.True(t, p.connected)
			assert.False(t, p.moving)
			tt.check(t, p, to.clock)
			resumed, err := to.resume(p.id, p.token)
			require.NoError(t, err, "the new token resumes it there")
			assert.Equal(t, p.id, resumed.id)
		})
	}
}

func TestDecodeMovedRefusesWhatItCannotRestore(t *testing.T) {
	for name, b := range map[string]string{
		"not JSON":        `x`,
		"unknown version": `{"v":2,"id":"p1-abcd"}`,
		"no id":           `{"v":1,"name":"alice"}`,
	} {
		_, err := decodeMoved([]byte(b))
		assert.Error(t, err, name)
	}
}

func TestRestoreKeepsATakenIdForItsOwner(t *testing.T) {
	w := newTestWorld(t, rules{})
	local := w.join("local")
	p := w.restore(movedPlayer{V: 1, ID: local.id, Name: "visitor", Alive: true, HP: 1})
	assert.NotEqual(t, local.id, p.id, "a fresh id rather than two players with one")
	assert.Equal(t, "local", w.get(t, local.id).name)
}
