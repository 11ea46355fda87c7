package main

import (
	"context"
	crand "crypto/rand"
	_ "embed"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	discovery "github.com/discovery-platform/discovery/sdk/go"
)

const (
	// maxMessageBytes is the largest client message; bigger ones close the
	// connection with 1009 (message too big).
	maxMessageBytes = 4 << 10
	// sendQueueLen bounds each connection's queue of unwritten replies; see
	// session for how states and pipelined requests avoid filling it.
	sendQueueLen = 256
	writeWait    = 5 * time.Second
	pingInterval = 25 * time.Second
	pongWait     = 60 * time.Second
	// closeGrace is how long a closing connection waits for the peer's close
	// reply before dropping TCP, so the close frame is not lost to a reset.
	closeGrace = time.Second
	// shutdownTimeout keeps the whole SIGTERM path under the 5 s we promise.
	shutdownTimeout = 4 * time.Second
)

//go:embed client.html
var clientHTML []byte

// server is the HTTP side: the page, health, info and the WebSocket sessions
// it hands to the hub.
type server struct {
	log      *slog.Logger
	hub      *hub
	upgrader websocket.Upgrader
	// platform is the arena's replica on the platform; nil when it runs
	// on its own (handoff.go).
	platform *discovery.Replica

	mu       sync.Mutex
	closing  bool
	sessions map[*session]struct{}
	wg       sync.WaitGroup // one per tracked session, done when both its goroutines end
}

func newServer(cfg config, log *slog.Logger) *server {
	w := newWorld(cfg.rules, time.Now, rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), crand.Text)
	identity := infoMsg{Revision: cfg.revision, Replica: cfg.replica, Respawn: cfg.rules.respawn, Size: cfg.rules.size}
	s := &server{
		log: log,
		hub: newHub(w, identity, log),
		upgrader: websocket.Upgrader{
			// Clients reach us through the platform's gateway, which may rewrite
			// Host, so the default same-origin check would refuse them. No
			// ambient credential (cookie) authenticates a player — the token
			// travels inside the protocol — so cross-origin sockets gain nothing.
			CheckOrigin: func(*http.Request) bool { return true },
		},
		sessions: map[*session]struct{}{},
	}
	s.usePlatform(cfg)
	return s
}

// serve runs the arena on ln until ctx is done, then shuts down: it stops
// accepting, closes every WebSocket with 1001 (going away) and returns once
// every connection goroutine has ended.
func (s *server) serve(ctx context.Context, ln net.Listener) error {
	hubCtx, stopHub := context.WithCancel(context.Background())
	go s.hub.run(hubCtx)
	stopFollowing := s.followPlatform(hubCtx)
	defer func() {
		stopHub()
		<-s.hub.stopped
		stopFollowing()
		s.hub.moves.Wait()
	}()

	srv := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		s.log.Warn("http shutdown", "err", serr)
	}
	s.closeSessions(sctx)
	if err == nil {
		err = <-served
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.handleIndex)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /info", s.handleInfo)
	mux.HandleFunc("GET /ws", s.handleWS)
	s.platformRoutes(mux)
	s.pageRoutes(mux)
	return mux
}

func (s *server) handleIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(clientHTML)
}

func (s *server) handleInfo(w http.ResponseWriter, r *http.Request) {
	inf, ok := s.hub.info(r.Context())
	if !ok {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(inf)
}

func (s *server) handleWS(w http.ResponseWriter, r *http.Request) {
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has already answered with an HTTP error
	}
	sess := newSession(conn)
	sess.ticket = discovery.Ticket(r)
	if !s.track(sess) {
		// Upgraded while shutting down: turn it away like everyone else.
		msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down")
		_ = conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeGrace))
		_ = conn.Close()
		return
	}
	defer s.untrack(sess)
	go sess.writeLoop()
	sess.readLoop(s.hub)
	sess.close(0, "")
	<-sess.writerDone
}

// track registers a session for shutdown; false once shutdown has begun.
func (s *server) track(sess *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *server) untrack(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
	s.wg.Done()
}

// closeSessions closes every session with 1001 and waits for their goroutines;
// past ctx's deadline it drops the remaining TCP connections outright.
func (s *server) closeSessions(ctx context.Context) {
	s.mu.Lock()
	s.closing = true
	open := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		open = append(open, sess)
	}
	s.mu.Unlock()
	for _, sess := range open {
		sess.close(websocket.CloseGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("shutdown deadline: dropping connections", "sessions", len(open))
		for _, sess := range open {
			_ = sess.conn.Close()
		}
		<-done
	}
}
