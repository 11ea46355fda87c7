package main

import (
	"crypto/subtle"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// This file holds the rules of the arena and nothing else: no sockets, no
// goroutines, no wall clock. The clock, the random source and the token
// generator are injected so tests can drive every rule deterministically.

// Rule violations. The server maps each to an error code for the client.
var (
	errUnknownPlayer = errors.New("arena: unknown player")
	errBadToken      = errors.New("arena: wrong token")
	errDead          = errors.New("arena: dead players cannot act")
	errBadDirection  = errors.New("arena: direction must be up, down, left or right")
	errMoving        = errors.New("arena: being moved to the new version")
)

// maxNameRunes bounds player names so one player cannot bloat every state broadcast.
const maxNameRunes = 20

// rules are the knobs of a world, fixed for its lifetime.
type rules struct {
	// size is the side of the square grid; cells are 0..size-1 on each axis.
	size int
	// hp is the hit points a player (re)spawns with; each attack that
	// reaches it takes one, and at zero it dies. 1 is the original game:
	// one hit kills.
	hp int
	// respawn brings dead players back after respawnDelay; off in the demo's "v2".
	respawn      bool
	respawnDelay time.Duration
	// reconnectWindow is how long a disconnected player stays in the world.
	reconnectWindow time.Duration
}

// direction is a move of one cell. y grows downwards, so "up" is y-1.
type direction string

const (
	dirUp    direction = "up"
	dirDown  direction = "down"
	dirLeft  direction = "left"
	dirRight direction = "right"
)

func (d direction) delta() (dx, dy int, ok bool) {
	switch d {
	case dirUp:
		return 0, -1, true
	case dirDown:
		return 0, 1, true
	case dirLeft:
		return -1, 0, true
	case dirRight:
		return 1, 0, true
	}
	return 0, 0, false
}

// player is one participant. Dead players keep their last position.
type player struct {
	id    string
	name  string
	token string // secret that lets a new connection resume this player
	seq   int    // join order; keeps listings stable
	x, y  int
	hp    int // 0 when dead
	alive bool
	// score counts kills, deaths counts times killed.
	score, deaths int
	connected     bool
	// moving: the player's state is on its way to the new version
	// (handoff). It can neither act nor be hurt, and does not respawn,
	// until the move succeeds (it leaves) or fails.
	moving bool
	// respawnAt is when a dead player comes back; zero when none is due.
	respawnAt time.Time
	// goneAt is when the player lost its connection; meaningful while !connected.
	goneAt time.Time
}

// world is the whole game state. It is not safe for concurrent use: one
// goroutine (the server's hub) owns it.
type world struct {
	rules    rules
	now      func() time.Time
	rng      *rand.Rand
	newToken func() string
	players  map[string]*player
	lastSeq  int
	// tag ends every id this world gives, so a player handed off to
	// another world keeps its id there without meeting one of that
	// world's own.
	tag string
}

func newWorld(r rules, now func() time.Time, rng *rand.Rand, newToken func() string) *world {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	tag := make([]byte, 4)
	for i := range tag {
		tag[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return &world{rules: r, now: now, rng: rng, newToken: newToken, players: map[string]*player{}, tag: string(tag)}
}

// newID is the id of the player joining as seq: "p1-k7q2".
func (w *world) newID(seq int) string {
	return "p" + strconv.Itoa(seq) + "-" + w.tag
}

// join adds a new, connected, living player at a random free cell.
func (w *world) join(name string) player {
	w.lastSeq++
	for w.players[w.newID(w.lastSeq)] != nil { // a moved player's, from a world of the same tag
		w.lastSeq++
	}
	p := &player{
		id:        w.newID(w.lastSeq),
		name:      cleanName(name, w.lastSeq),
		token:     w.newToken(),
		seq:       w.lastSeq,
		hp:        w.rules.hp,
		alive:     true,
		connected: true,
	}
	p.x, p.y = w.freeCell()
	w.players[p.id] = p
	return *p
}

// resume hands an existing player to a new connection, as it was: position,
// score, alive or dead. The token must match the one given at join.
func (w *world) resume(id, token string) (player, error) {
	p, ok := w.players[id]
	if !ok {
		return player{}, errUnknownPlayer
	}
	if subtle.ConstantTimeCompare([]byte(p.token), []byte(token)) != 1 {
		return player{}, errBadToken
	}
	p.connected = true
	p.goneAt = time.Time{}
	return *p, nil
}

// disconnect keeps the player in the world for the reconnect window.
func (w *world) disconnect(id string) {
	if p, ok := w.players[id]; ok {
		p.connected = false
		p.goneAt = w.now()
	}
}

// leave removes the player at once.
func (w *world) leave(id string) {
	delete(w.players, id)
}

// move shifts a living player one cell, clamped to the grid.
func (w *world) move(id string, d direction) error {
	p, err := w.actor(id)
	if err != nil {
		return err
	}
	dx, dy, ok := d.delta()
	if !ok {
		return errBadDirection
	}
	p.x = clamp(p.x+dx, 0, w.rules.size-1)
	p.y = clamp(p.y+dy, 0, w.rules.size-1)
	return nil
}

// attack takes a hit point from every other living player within one cell
// (the 8 neighbours and the same cell) and returns the ids of those it
// killed, in join order. Players being moved are out of reach.
func (w *world) attack(id string) ([]string, error) {
	a, err := w.actor(id)
	if err != nil {
		return nil, err
	}
	var victims []string
	for _, p := range w.sorted() {
		if p == a || !p.alive || p.moving || chebyshev(a, p) > 1 {
			continue
		}
		if p.hp--; p.hp > 0 {
			continue
		}
		p.hp = 0
		p.alive = false
		p.deaths++
		if w.rules.respawn {
			p.respawnAt = w.now().Add(w.rules.respawnDelay)
		}
		a.score++
		victims = append(victims, p.id)
	}
	return victims, nil
}

// actor returns a player allowed to act: known and alive.
func (w *world) actor(id string) (*player, error) {
	p, ok := w.players[id]
	if !ok {
		return nil, errUnknownPlayer
	}
	if p.moving {
		return nil, errMoving
	}
	if !p.alive {
		return nil, errDead
	}
	return p, nil
}

// timerResult lists what runTimers changed, in join order.
type timerResult struct {
	respawned []player
	removed   []string
}

// runTimers applies every timer due by now: respawns dead players at a random
// free cell and removes players whose reconnect window has passed.
func (w *world) runTimers() timerResult {
	var res timerResult
	now := w.now()
	for _, p := range w.sorted() {
		if !p.connected && !now.Before(p.goneAt.Add(w.rules.reconnectWindow)) {
			delete(w.players, p.id)
			res.removed = append(res.removed, p.id)
			continue
		}
		if !p.alive && !p.moving && !p.respawnAt.IsZero() && !now.Before(p.respawnAt) {
			p.x, p.y = w.freeCell()
			p.hp = w.rules.hp
			p.alive = true
			p.respawnAt = time.Time{}
			res.respawned = append(res.respawned, *p)
		}
	}
	return res
}

// nextDeadline is the earliest time runTimers has something to do.
func (w *world) nextDeadline() (time.Time, bool) {
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, p := range w.players {
		if !p.respawnAt.IsZero() && !p.moving {
			consider(p.respawnAt)
		}
		if !p.connected {
			consider(p.goneAt.Add(w.rules.reconnectWindow))
		}
	}
	return next, !next.IsZero()
}

// snapshot copies every player, in join order.
func (w *world) snapshot() []player {
	ps := w.sorted()
	out := make([]player, len(ps))
	for i, p := range ps {
		out[i] = *p
	}
	return out
}

func (w *world) sorted() []*player {
	ps := make([]*player, 0, len(w.players))
	for _, p := range w.players {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *player) int { return a.seq - b.seq })
	return ps
}

// freeCell picks a random cell with no living player on it; dead bodies do not
// block. A full grid falls back to any cell rather than refusing players.
func (w *world) freeCell() (x, y int) {
	n := w.rules.size
	taken := make(map[[2]int]bool)
	for _, p := range w.players {
		if p.alive {
			taken[[2]int{p.x, p.y}] = true
		}
	}
	free := n*n - len(taken)
	if free <= 0 {
		return w.rng.IntN(n), w.rng.IntN(n)
	}
	k := w.rng.IntN(free)
	for y := range n {
		for x := range n {
			if taken[[2]int{x, y}] {
				continue
			}
			if k == 0 {
				return x, y
			}
			k--
		}
	}
	panic("unreachable: free cell count out of sync")
}

// cleanName trims, drops control characters and bounds the length; an empty
// name becomes "player N".
func cleanName(name string, seq int) string {
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if r := []rune(name); len(r) > maxNameRunes {
		name = strings.TrimSpace(string(r[:maxNameRunes]))
	}
	if name == "" {
		name = "player " + strconv.Itoa(seq)
	}
	return name
}

func chebyshev(a, b *player) int {
	return max(abs(a.x-b.x), abs(a.y-b.y))
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func clamp(v, lo, hi int) int {
	return min(max(v, lo), hi)
}
