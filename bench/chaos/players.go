package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/discovery-platform/discovery/bench/internal/rig"
	"github.com/discovery-platform/discovery/internal/testkit/proctest"
)

// stats is what the players and the rollouts counted.
type stats struct {
	sessions, completed                         atomic.Int64
	droppedReplica, droppedGateway, unexpected  atomic.Int64
	reconnected, reconnectGone, reconnectFailed atomic.Int64
	messages, wrongEcho                         atomic.Int64
	rollouts, rolloutRefused                    atomic.Int64
	endpointRetries, endpointStale              atomic.Int64
	connectExpected, connectUnexplained         atomic.Int64

	mu       sync.Mutex
	findings []string // unexpected drops, failed reconnects, unexplained connect failures
}

// note keeps a description of something a goal or a reader should see;
// the first hundred are kept.
func (s *stats) note(format string, args ...any) string {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.findings) < 100 {
		s.findings = append(s.findings, msg)
	}
	return msg
}

// statsSnapshot is the counters at one moment, to print what changed.
type statsSnapshot struct {
	sessions, completed, droppedReplica, droppedGateway, unexpected, reconnected int64
}

func (s *stats) snapshot() statsSnapshot {
	return statsSnapshot{sessions: s.sessions.Load(), completed: s.completed.Load(), droppedReplica: s.droppedReplica.Load(),
		droppedGateway: s.droppedGateway.Load(), unexpected: s.unexpected.Load(), reconnected: s.reconnected.Load()}
}

// errWrongEcho is an echo that differs from what was sent.
var errWrongEcho = errors.New("wrong echo")

// session is one player's connection, pinned to a replica by its endpoint.
type session struct {
	player int
	ep     rig.Endpoint
	gw     int
	url    string
	// gen is the gateway's death count when the session (re)connected.
	gen       int64
	connected time.Time
}

// players keeps Clients players connected: each plays sessions of random
// length one after the other, like a stream of arrivals and departures.
type players struct {
	c      *chaos
	dialer *websocket.Dialer
	stop   chan struct{}
	// frozen: players keep their current sessions past their length, so the
	// platform can settle under a steady load after the last fault.
	frozen atomic.Bool
	wg     sync.WaitGroup

	mu         sync.Mutex
	perReplica map[string]int // open sessions by replica id
}

func newPlayers(c *chaos) *players {
	return &players{c: c, stop: make(chan struct{}), perReplica: map[string]int{},
		dialer: &websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 512, WriteBufferSize: 512}}
}

func (p *players) start(ctx context.Context) {
	for i := 0; i < p.c.cfg.Clients; i++ {
		p.wg.Add(1)
		go p.slot(ctx, i)
	}
}

// close ends every session with a close frame and waits for the players.
func (p *players) close() {
	close(p.stop)
	p.wg.Wait()
}

func (p *players) stopped() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

func (p *players) open() (total int, byReplica map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	byReplica = map[string]int{}
	for id, n := range p.perReplica {
		byReplica[id] = n
		total += n
	}
	return total, byReplica
}

func (p *players) track(replica string, d int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.perReplica[replica] += d; p.perReplica[replica] <= 0 {
		delete(p.perReplica, replica)
	}
}

func (p *players) slot(ctx context.Context, i int) {
	defer p.wg.Done()
	rnd := rand.New(rand.NewPCG(uint64(p.c.cfg.Seed), uint64(i)+100))
	for !p.stopped() && ctx.Err() == nil {
		p.play(ctx, rnd, i)
	}
}

// play is one player's session: get an endpoint, connect through a random
// gateway, exchange numbered messages until the session's length passes,
// leave with a close frame. A session cut under it is classified at once.
func (p *players) play(ctx context.Context, rnd *rand.Rand, i int) {
	c := p.c
	ep, ok := p.endpoint(ctx)
	if !ok {
		return
	}
	s := &session{player: i, ep: ep, gw: rnd.IntN(len(c.gateways))}
	s.url = rig.Via(ep.Endpoint, c.gateways[s.gw].addr) + "ws"
	conn, resp, err := p.dial(ctx, s)
	if err != nil {
		p.connectFailed(s, resp, err)
		return
	}
	c.stats.sessions.Add(1)
	p.track(ep.Replica, 1)
	defer p.track(ep.Replica, -1)
	defer func() {
		if conn != nil {
			_ = conn.Close()
		}
	}()
	end := time.Now().Add(jitter(rnd, c.cfg.SessionLife))
	tick := time.NewTicker(c.cfg.Interval)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-p.stop:
			leave(conn)
			c.stats.completed.Add(1)
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !p.frozen.Load() && time.Now().After(end) {
			leave(conn)
			c.stats.completed.Add(1)
			return
		}
		err := exchange(conn, fmt.Sprintf("%d:%d", i, seq))
		if err == nil {
			c.stats.messages.Add(1)
			continue
		}
		if errors.Is(err, errWrongEcho) {
			c.stats.wrongEcho.Add(1)
			c.debugf("%s", c.stats.note("player %d: %v", i, err))
			continue
		}
		if p.stopped() || ctx.Err() != nil {
			return // the run is ending: not a drop
		}
		cause := p.cause(s)
		c.debugf("player %d cut (%s killed) on revision %s replica %s via gateway %d after %s: %v", i, orNone(cause), ep.Revision, ep.Replica, s.gw,
			time.Since(s.connected).Round(time.Millisecond), err)
		switch cause {
		case "replica":
			c.stats.droppedReplica.Add(1)
			return
		case "gateway":
			c.stats.droppedGateway.Add(1)
			_ = conn.Close()
			if conn = p.reconnect(ctx, s); conn == nil {
				return
			}
		default:
			c.stats.unexpected.Add(1)
			c.printf("%s", c.stats.note("UNEXPECTED DROP: player %d on revision %s replica %s via gateway %d, after %s: %v (%s)",
				i, ep.Revision, ep.Replica, s.gw, time.Since(s.connected).Round(time.Millisecond), err, p.c.describeReplica(ep)))
			return
		}
	}
}

// leave ends a session the way a client does: a close frame, then the socket.
func leave(conn *websocket.Conn) {
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
}

// exchange sends one message and waits for its echo. The deadline is
// generous: on a loaded 2-core machine a slow echo is not a dropped session,
// and a cut one fails at once anyway (the socket closes).
func exchange(conn *websocket.Conn, msg string) error {
	_ = conn.SetWriteDeadline(time.Now().Add(20 * time.Second))
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		return err
	}
	_, got, err := conn.ReadMessage()
	if err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("%w: sent %q, got %q", errWrongEcho, msg, got)
	}
	return nil
}

// endpoint calls get-endpoint until it answers, the run stops or ctx ends.
// While the platform restarts nothing answers; a player just waits, as a
// game client retries with backoff.
func (p *players) endpoint(ctx context.Context) (rig.Endpoint, bool) {
	for !p.stopped() && ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ep, code, stale, _ := p.c.api.GetEndpoint(cctx, appName)
		cancel()
		if code == 200 {
			if stale {
				p.c.stats.endpointStale.Add(1)
			}
			return ep, true
		}
		p.c.stats.endpointRetries.Add(1)
		rig.Sleep(ctx, 200*time.Millisecond)
	}
	return rig.Endpoint{}, false
}

func (p *players) dial(ctx context.Context, s *session) (*websocket.Conn, *http.Response, error) {
	s.gen = p.c.gateways[s.gw].gen.Load()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, resp, err := p.dialer.DialContext(dctx, s.url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	s.connected = time.Now()
	return conn, resp, err
}

// cause tells why a session was cut: "replica" or "gateway" when this run
// killed what it ran on, "" when nothing explains it.
func (p *players) cause(s *session) string {
	if p.c.replicaKilled(s.ep.Replica) {
		return "replica"
	}
	if p.c.gateways[s.gw].gen.Load() != s.gen {
		return "gateway"
	}
	return ""
}

// reconnect dials the session's endpoint URL again after its gateway was
// killed, as a client would, until the gateway is back: the URL pins the
// replica, so a live replica must be reached again.
func (p *players) reconnect(ctx context.Context, s *session) *websocket.Conn {
	c := p.c
	deadline := time.Now().Add(45 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if p.stopped() || ctx.Err() != nil || c.replicaKilled(s.ep.Replica) {
			return nil
		}
		conn, resp, err := p.dial(ctx, s)
		if err == nil {
			c.stats.reconnected.Add(1)
			return conn
		}
		last = err
		if resp != nil && resp.StatusCode == http.StatusGone {
			c.stats.reconnectGone.Add(1)
			c.printf("%s", c.stats.note("reconnect of player %d to revision %s replica %s answered 410 gone (%s)",
				s.player, s.ep.Revision, s.ep.Replica, c.describeReplica(s.ep)))
			return nil
		}
		rig.Sleep(ctx, 250*time.Millisecond)
	}
	c.stats.reconnectFailed.Add(1)
	c.printf("%s", c.stats.note("RECONNECT FAILED: player %d to revision %s replica %s via gateway %d for 45s: %v (%s)",
		s.player, s.ep.Revision, s.ep.Replica, s.gw, last, c.describeReplica(s.ep)))
	return nil
}

// connectFailed classifies a failed first connection: expected when its
// replica was killed or its gateway is down or restarting.
func (p *players) connectFailed(s *session, resp *http.Response, err error) {
	c := p.c
	g := c.gateways[s.gw]
	restarting := g.proc.PID() == 0 || time.Since(g.proc.StartedAt()) < 30*time.Second
	if c.replicaKilled(s.ep.Replica) || g.gen.Load() != s.gen || (resp == nil && restarting) {
		c.stats.connectExpected.Add(1)
		return
	}
	c.stats.connectUnexplained.Add(1)
	what := err.Error()
	if resp != nil {
		what = fmt.Sprintf("the gateway answered %d", resp.StatusCode)
	}
	desc := c.describeReplica(s.ep)
	// How long until this gateway routes the URL get-endpoint handed out:
	// the lag of its route table behind the API's.
	t0 := time.Now()
	u := rig.Via(s.ep.URL, g.addr)
	routed := rig.Poll(context.Background(), 10*time.Second, 20*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return rig.Get(ctx, c.api.HTTP, u) == nil
	})
	lag := "not within 10s"
	if routed {
		lag = time.Since(t0).Round(time.Millisecond).String() + " later"
	}
	c.printf("%s", c.stats.note("connect failed: player %d to revision %s replica %s via gateway %d: %s (%s); the gateway routed that URL %s",
		s.player, s.ep.Revision, s.ep.Replica, s.gw, what, desc, lag))
}

// describeReplica says whether a replica's process runs and what the API
// says of its revision, for a finding's evidence.
func (c *chaos) describeReplica(ep rig.Endpoint) string {
	procs, _ := proctest.Replicas(c.marker)
	alive := "its process is gone"
	if r, ok := procs[ep.Replica]; ok {
		alive = fmt.Sprintf("its process %d runs", r.PID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	revs, err := c.api.Revisions(ctx, appName)
	if err != nil {
		return alive + "; revisions unreadable: " + err.Error()
	}
	for _, r := range revs {
		if r.ID != ep.Revision {
			continue
		}
		rec := "no record of the replica"
		for _, rep := range r.Replicas {
			if rep.ID == ep.Replica {
				rec = fmt.Sprintf("replica record %s stopping=%v", rep.State, rep.Stopping)
			}
		}
		return fmt.Sprintf("%s; revision %s (%s); %s", alive, r.State, r.Reason, rec)
	}
	return alive + "; revision not listed"
}
