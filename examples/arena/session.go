package main

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// session is one WebSocket connection: a reader (the HTTP handler's goroutine)
// that feeds the hub, and a writer goroutine that drains the outbox.
//
// The outbox keeps the hub from ever waiting on a client. It holds replies in
// order, at most sendQueueLen of them; one more drops the client. A state
// broadcast does not queue behind an unwritten older one: it replaces it and
// takes its turn at the end, so a client that reads slowly skips frames
// rather than losing its connection, and never sees a state older than a
// reply before it. The reader, not the hub, waits while the outbox is half
// full, so a client that pipelines requests is slowed to its own reading
// speed instead of dropped.
type session struct {
	conn *websocket.Conn

	mu      sync.Mutex
	out     [][]byte      // messages to write, in order
	stateAt int           // index in out of the unwritten state; -1 if none
	replies int           // messages in out that are not the state
	wake    chan struct{} // capacity 1: out has something for the writer
	room    chan struct{} // capacity 1: the writer emptied out

	closing    chan struct{} // closed by close; the writer then ends the connection
	closeOnce  sync.Once
	closeCode  int // 0: end without a close frame (the reader already saw the end)
	closeText  string
	flush      bool // write the outbox before the close frame
	readerDone chan struct{}
	writerDone chan struct{}

	// player is the id this connection plays; owned by the hub goroutine.
	player string
	// ticket is the handoff ticket the connection came with (the gateway's
	// X-Discovery-Ticket); set before the reader starts, then owned by the
	// hub, which uses it at the first join.
	ticket string
}

func newSession(conn *websocket.Conn) *session {
	return &session{
		conn:       conn,
		stateAt:    -1,
		wake:       make(chan struct{}, 1),
		room:       make(chan struct{}, 1),
		closing:    make(chan struct{}),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
	}
}

// enqueue queues a reply without ever blocking; a full outbox drops the client.
func (s *session) enqueue(b []byte) {
	s.mu.Lock()
	full := s.replies >= sendQueueLen
	if !full {
		s.out = append(s.out, b)
		s.replies++
	}
	s.mu.Unlock()
	if full {
		s.close(websocket.ClosePolicyViolation, "too slow: send queue full")
		return
	}
	notify(s.wake)
}

// offerState queues a state broadcast, replacing an unwritten older one.
func (s *session) offerState(b []byte) {
	s.mu.Lock()
	if s.stateAt >= 0 {
		s.out = slices.Delete(s.out, s.stateAt, s.stateAt+1)
	}
	s.stateAt = len(s.out)
	s.out = append(s.out, b)
	s.mu.Unlock()
	notify(s.wake)
}

// take empties the outbox into buf's storage and returns what it held.
func (s *session) take(buf [][]byte) [][]byte {
	clear(buf) // drop references to written messages
	s.mu.Lock()
	buf, s.out = s.out, buf[:0]
	s.stateAt, s.replies = -1, 0
	s.mu.Unlock()
	notify(s.room)
	return buf
}

func (s *session) backlog() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replies
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default: // already signalled
	}
}

// close asks the writer to end the connection; the first call wins.
func (s *session) close(code int, text string) {
	s.closeOnce.Do(func() {
		s.closeCode, s.closeText = code, text
		close(s.closing)
	})
}

// closeFlushed is close once every queued reply is written: a player who
// is moved reads the notice that says why before the close.
func (s *session) closeFlushed(code int, text string) {
	s.closeOnce.Do(func() {
		s.closeCode, s.closeText, s.flush = code, text, true
		close(s.closing)
	})
}

func (s *session) readLoop(h *hub) {
	defer close(s.readerDone)
	s.conn.SetReadLimit(maxMessageBytes)
	_ = s.conn.SetReadDeadline(time.Now().Add(pongWait))
	s.conn.SetPongHandler(func(string) error {
		return s.conn.SetReadDeadline(time.Now().Add(pongWait))
	})
	ctx := context.Background() // the hub's own stop unblocks submit
	for {
		mt, data, err := s.conn.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				// gorilla has sent 1009; swallow the rest of the oversized
				// message so closing does not reset the connection under it.
				s.discardInput()
			}
			h.submit(ctx, command{kind: cmdGone, sess: s})
			return
		}
		_ = s.conn.SetReadDeadline(time.Now().Add(pongWait))
		if !s.awaitRoom() {
			h.submit(ctx, command{kind: cmdGone, sess: s})
			return
		}
		if !h.submit(ctx, decodeClientMsg(s, mt, data)) {
			return
		}
	}
}

// awaitRoom holds the reader while the outbox is half full; false if the
// writer has gone.
func (s *session) awaitRoom() bool {
	for s.backlog() >= sendQueueLen/2 {
		select {
		case <-s.room:
		case <-s.closing:
			return true // keep reading: the peer's close reply is coming
		case <-s.writerDone:
			return false
		}
	}
	return true
}

func (s *session) discardInput() {
	nc := s.conn.NetConn()
	_ = nc.SetReadDeadline(time.Now().Add(closeGrace))
	_, _ = io.Copy(io.Discard, nc)
}

func (s *session) writeLoop() {
	defer close(s.writerDone)
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	var batch [][]byte
	for {
		select {
		case <-s.closing:
			s.finish()
			return
		case <-s.wake:
			batch = s.take(batch)
			for _, b := range batch {
				if !s.write(b) {
					return
				}
			}
		case <-ping.C:
			if err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				_ = s.conn.Close()
				return
			}
		}
	}
}

// write sends one text message; on failure it drops the connection, which
// ends the reader, which reports the session gone.
func (s *session) write(b []byte) bool {
	_ = s.conn.SetWriteDeadline(time.Now().Add(writeWait))
	if err := s.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		_ = s.conn.Close()
		return false
	}
	return true
}

// finish sends the close frame, if any, waits briefly for the peer to answer
// it (the reader then ends), and drops the TCP connection.
func (s *session) finish() {
	if s.flush {
		for _, b := range s.take(nil) {
			if !s.write(b) {
				return
			}
		}
	}
	if s.closeCode != 0 {
		msg := websocket.FormatCloseMessage(s.closeCode, s.closeText)
		if err := s.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeGrace)); err == nil {
			t := time.NewTimer(closeGrace)
			select {
			case <-s.readerDone:
			case <-t.C:
			}
			t.Stop()
		}
	}
	_ = s.conn.Close()
}
