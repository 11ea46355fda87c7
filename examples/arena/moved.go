package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// A player handed off to another arena (a replica of the new version)
// travels as movedPlayer: everything that makes it the same player there.
// Like game.go, this file knows no sockets and no platform.

// movedVersion is the version of movedPlayer's JSON; a receiving arena
// refuses one it does not know.
const movedVersion = 1

// maxRespawnIn bounds the respawn delay a moved player brings.
const maxRespawnIn = time.Hour

// movedPlayer is a player's state in a handoff, as JSON:
//
//	{"v":1,"id":"p3-k7q2","name":"alice","x":4,"y":9,"hp":2,"alive":true,"score":1,"deaths":0}
//
// plus "respawn_in_ms" for a dead player whose respawn is due. The token
// does not travel: the new arena gives the player a new one.
type movedPlayer struct {
	V      int    `json:"v"`
	ID     string `json:"id"`
	Name   string `json:"name"`
	X      int    `json:"x"`
	Y      int    `json:"y"`
	HP     int    `json:"hp"`
	Alive  bool   `json:"alive"`
	Score  int    `json:"score"`
	Deaths int    `json:"deaths"`
	// RespawnInMS is how long a dead player still waits to respawn; nil
	// when no respawn is due.
	RespawnInMS *int64 `json:"respawn_in_ms,omitempty"`
}

func (m movedPlayer) encode() []byte { return mustMarshal(m) }

func decodeMoved(b []byte) (movedPlayer, error) {
	var m movedPlayer
	if err := json.Unmarshal(b, &m); err != nil {
		return movedPlayer{}, fmt.Errorf("moved player: %w", err)
	}
	if m.V != movedVersion {
		return movedPlayer{}, fmt.Errorf("moved player: version %d, want %d", m.V, movedVersion)
	}
	if m.ID == "" {
		return movedPlayer{}, errors.New("moved player: no id")
	}
	return m, nil
}

// export freezes a connected player for its move and returns its state;
// false if it is unknown or already moving. thaw undoes the freeze.
func (w *world) export(id string) (movedPlayer, bool) {
	p, ok := w.players[id]
	if !ok || p.moving {
		return movedPlayer{}, false
	}
	p.moving = true
	m := movedPlayer{V: movedVersion, ID: p.id, Name: p.name, X: p.x, Y: p.y, HP: p.hp, Alive: p.alive, Score: p.score, Deaths: p.deaths}
	if !p.alive && !p.respawnAt.IsZero() {
		ms := max(p.respawnAt.Sub(w.now()), 0).Milliseconds()
		m.RespawnInMS = &ms
	}
	return m, true
}

// thaw ends a player's move; false if the player is no longer in the world.
func (w *world) thaw(id string) bool {
	p, ok := w.players[id]
	if ok {
		p.moving = false
	}
	return ok
}

// restore adds a player handed off from another arena, connected, with its
// state as it was there, under this world's rules: the same id (a fresh one
// in the unlikely case this world has a player of that id), name, position
// (kept on the grid), hit points (at most this world's), score and deaths,
// alive or dead. A dead player respawns when it was due to, if this world
// respawns at all; one that was not due to respawns after this world's
// delay. It gets a new token.
func (w *world) restore(m movedPlayer) player {
	w.lastSeq++
	p := &player{
		id:        m.ID,
		name:      cleanName(m.Name, w.lastSeq),
		token:     w.newToken(),
		seq:       w.lastSeq,
		x:         clamp(m.X, 0, w.rules.size-1),
		y:         clamp(m.Y, 0, w.rules.size-1),
		alive:     m.Alive,
		score:     max(m.Score, 0),
		deaths:    max(m.Deaths, 0),
		connected: true,
	}
	if _, taken := w.players[p.id]; taken {
		p.id = w.newID(w.lastSeq)
	}
	if p.alive {
		p.hp = clamp(m.HP, 1, w.rules.hp)
	} else if w.rules.respawn {
		wait := w.rules.respawnDelay
		if m.RespawnInMS != nil {
			wait = min(max(time.Duration(*m.RespawnInMS)*time.Millisecond, 0), maxRespawnIn)
		}
		p.respawnAt = w.now().Add(wait)
	}
	w.players[p.id] = p
	return *p
}
