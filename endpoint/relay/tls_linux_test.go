//go:build linux

package relay

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// tlsSession is a wss session as the gateway holds it: the player's client
// =TLS= a [relay] b -- the replica's server, where a is a *tls.Conn past its
// handshake. With replicaTLS the replica's side is TLS too (b =TLS= server).
type tlsSession struct {
	*session
	client, server net.Conn // what the player and the replica use
	a, b           net.Conn // what the relay gets
}

func newTLSSession(t testing.TB, l *listener, replicaTLS bool) *tlsSession {
	t.Helper()
	srvCfg, cliCfg := testTLSConfigs(t)
	s := &tlsSession{session: newSession(t, l)}
	client, a := tls.Client(s.session.client, cliCfg), tls.Server(s.session.a, srvCfg)
	handshake(t, client, a)
	s.client, s.a = client, a
	s.b, s.server = s.session.b, s.session.server
	if replicaTLS {
		b, server := tls.Client(s.session.b, cliCfg), tls.Server(s.session.server, srvCfg)
		handshake(t, b, server)
		s.b, s.server = b, server
	}
	return s
}

func handshake(t testing.TB, client, server *tls.Conn) {
	t.Helper()
	deadline(client)
	deadline(server)
	hs := make(chan error, 1)
	go func() { hs <- client.Handshake() }()
	require.NoError(t, server.Handshake())
	require.NoError(t, <-hs)
	require.NoError(t, client.SetDeadline(time.Time{}))
	require.NoError(t, server.SetDeadline(time.Time{}))
}

func (s *tlsSession) splice(t testing.TB, r *Relay, aPending, bPending []byte) {
	t.Helper()
	require.NoError(t, r.Splice(s.a, s.b, aPending, bPending, s.onClose))
}

// lingers are the TLSLinger values the TLS tests run with: a short one
// (bytes then a wait in the netpoller) and none (each frame an epoll event).
var lingers = []time.Duration{5 * time.Millisecond, -1}

func forLingers(t *testing.T, f func(t *testing.T, linger time.Duration)) {
	for _, linger := range lingers {
		t.Run(fmt.Sprintf("linger=%v", linger), func(t *testing.T) { f(t, linger) })
	}
}

// waitIdle waits until every TLS direction of r is idle (or ended), r
// holds no buffer, and at most base goroutines run. The states come first:
// base may count goroutines that were exiting when it was taken.
func waitIdle(t *testing.T, r *Relay, base int) {
	t.Helper()
	for end := time.Now().Add(waitFor); !tlsIdle(r) || r.bufsOut.Load() != 0; {
		if time.Now().After(end) {
			t.Fatalf("TLS directions still running, %d buffers out", r.bufsOut.Load())
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	waitGoroutines(t, base)
}

// tlsIdle reports whether no TLS direction of r has a goroutine. Its atomic
// loads order what the directions did before going idle before the caller's
// next reads.
func tlsIdle(r *Relay) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for gp := range r.goPairs {
		if p, ok := gp.(*tlsPair); ok {
			for i := range p.dirs {
				if st := p.dirs[i].state.Load(); st != dirIdle && st != dirDone {
					return false
				}
			}
		}
	}
	return true
}

func TestTLSPairMovesBytesBothWays(t *testing.T) {
	for _, replicaTLS := range []bool{false, true} {
		forLingers(t, func(t *testing.T, linger time.Duration) {
			t.Logf("replicaTLS=%v", replicaTLS)
			r := newRelay(t, Config{Loops: 2, TLSLinger: linger})
			l := newListener(t)
			var ss []*tlsSession
			for range 4 { // over both loops
				ss = append(ss, newTLSSession(t, l, replicaTLS))
			}
			base := runtime.NumGoroutine()
			for _, s := range ss {
				s.splice(t, r, []byte("A:"), []byte("B:"))
			}
			require.Equal(t, 4, r.Len())
			require.Equal(t, "TLS", pairKind(r), "served by the loops' readiness, not the fallback")
			for _, s := range ss {
				writeExpect(t, s.client, s.server, []byte("hello"), []byte("A:hello"))
				writeExpect(t, s.server, s.client, []byte("hi"), []byte("B:hi"))
				for i := range 30 {
					writeRead(t, s.client, s.server, fmt.Appendf(nil, "up %d", i))
					writeRead(t, s.server, s.client, fmt.Appendf(nil, "down %d", i))
				}
			}
			waitIdle(t, r, base)
			for _, s := range ss {
				require.Zero(t, s.calls.Load())
			}
		})
	}
}

// Records of 16 KB (the most TLS puts in one) both ways at once, through a
// buffer smaller than a record (crypto/tls keeps the rest of the record for
// the next Read) and through the default one.
func TestTLSLargeTransfers(t *testing.T) {
	const size = 24 << 20
	for _, bufSize := range []int{4 << 10, 0} {
		forLingers(t, func(t *testing.T, linger time.Duration) {
			t.Logf("buffer=%d", bufSize)
			r := newRelay(t, Config{Loops: 1, BufferSize: bufSize, TLSLinger: linger})
			s := newTLSSession(t, newListener(t), false)
			base := runtime.NumGoroutine()
			s.splice(t, r, nil, nil)
			for _, c := range []net.Conn{s.client, s.server} {
				require.NoError(t, c.SetDeadline(time.Now().Add(2*time.Minute)))
			}
			type result struct {
				sum []byte
				err error
			}
			up, down := make(chan result, 1), make(chan result, 1)
			go func() { sum, err := stream(s.client, size, 7); up <- result{sum, err} }()
			go func() { sum, err := stream(s.server, size, 8); down <- result{sum, err} }()
			hUp, hDown := sha256.New(), sha256.New()
			errDown := make(chan error, 1)
			go func() { errDown <- hashInto(hDown, s.client, size) }()
			require.NoError(t, hashInto(hUp, s.server, size))
			require.NoError(t, <-errDown)
			u, d := <-up, <-down
			require.NoError(t, u.err)
			require.NoError(t, d.err)
			require.Equal(t, u.sum, hUp.Sum(nil), "client to replica")
			require.Equal(t, d.sum, hDown.Sum(nil), "replica to client")
			waitIdle(t, r, base)
			require.Greater(t, r.tlsDropped.Load(), int64(16<<10), "the idle *tls.Conns dropped their record buffers")
		})
	}
}

// A slow replica: the client's direction blocks in its write, keeping one
// buffer and no more, and the client stalls; everything arrives once the
// replica reads.
func TestTLSBackpressure(t *testing.T) {
	const size = 32 << 20
	r := newRelay(t, Config{Loops: 1, TLSLinger: -1})
	s := newTLSSession(t, newListener(t), false)
	s.splice(t, r, nil, nil)
	var written atomic.Int64
	type result struct {
		sum []byte
		err error
	}
	sent := make(chan result, 1)
	go func() {
		s.client.SetWriteDeadline(time.Now().Add(2 * time.Minute))
		sum, err := stream(countingWriter{s.client, &written}, size, 9)
		sent <- result{sum, err}
	}()
	last := int64(-1)
	require.Eventually(t, func() bool {
		w := written.Load()
		stalled := w == last && w > 0 && r.bufsOut.Load() == 1
		last = w
		return stalled
	}, waitFor, 20*time.Millisecond, "the client stalls, the relay holding one buffer")
	require.Less(t, written.Load(), int64(size))
	h := sha256.New()
	s.server.SetReadDeadline(time.Now().Add(2 * time.Minute))
	require.NoError(t, hashInto(h, s.server, size))
	res := <-sent
	require.NoError(t, res.err)
	require.Equal(t, res.sum, h.Sum(nil))
	require.Eventually(t, func() bool { return r.bufsOut.Load() == 0 }, waitFor, time.Millisecond)
}

func TestTLSHalfClose(t *testing.T) {
	t.Run("client first", func(t *testing.T) {
		r := newRelay(t, Config{TLSLinger: 5 * time.Millisecond})
		s := newTLSSession(t, newListener(t), false)
		s.splice(t, r, nil, nil)
		writeRead(t, s.client, s.server, []byte("ping"))
		// close_notify and FIN from the player: the replica reads EOF, and
		// its answer still reaches the player.
		_, err := s.client.Write([]byte("request"))
		require.NoError(t, err)
		require.NoError(t, s.client.(*tls.Conn).CloseWrite())
		req, err := readEOF(t, s.server)
		require.NoError(t, err)
		require.Equal(t, "request", string(req))
		require.Equal(t, 1, r.Len(), "a half-closed pair stays open")
		for i := range 10 {
			_, err = fmt.Fprintf(s.server, "reply %d;", i)
			require.NoError(t, err)
		}
		require.NoError(t, s.server.Close())
		reply, err := readEOF(t, s.client)
		require.NoError(t, err, "the player gets close_notify")
		require.Equal(t, "reply 0;reply 1;reply 2;reply 3;reply 4;reply 5;reply 6;reply 7;reply 8;reply 9;", string(reply))
		waitClosed(t, s.session)
		require.Zero(t, r.Len())
	})
	t.Run("replica first", func(t *testing.T) {
		r := newRelay(t, Config{TLSLinger: -1})
		s := newTLSSession(t, newListener(t), false)
		s.splice(t, r, nil, nil)
		_, err := s.server.Write([]byte("goodbye"))
		require.NoError(t, err)
		require.NoError(t, s.server.(*net.TCPConn).CloseWrite())
		got, err := readEOF(t, s.client)
		require.NoError(t, err, "the replica's FIN reaches the player as close_notify")
		require.Equal(t, "goodbye", string(got))
		require.Equal(t, 1, r.Len())
		writeRead(t, s.client, s.server, []byte("still heard"))
		require.NoError(t, s.client.Close())
		_, err = readEOF(t, s.server)
		require.NoError(t, err)
		waitClosed(t, s.session)
		require.Zero(t, r.Len())
	})
}

// One side half-closes and its peer goes silent: HalfCloseTimeout ends the
// pair, whichever side it was.
func TestTLSHalfCloseTimeout(t *testing.T) {
	for _, clientFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("clientFirst=%v", clientFirst), func(t *testing.T) {
			r := newRelay(t, Config{HalfCloseTimeout: 200 * time.Millisecond, TLSLinger: 5 * time.Millisecond})
			s := newTLSSession(t, newListener(t), false)
			s.splice(t, r, nil, nil)
			writeRead(t, s.client, s.server, []byte("ping"))
			start := time.Now()
			if clientFirst {
				require.NoError(t, s.client.(*tls.Conn).CloseWrite())
				_, err := readEOF(t, s.server)
				require.NoError(t, err)
			} else {
				require.NoError(t, s.server.(*net.TCPConn).CloseWrite())
				_, err := readEOF(t, s.client)
				require.NoError(t, err)
			}
			waitClosed(t, s.session)
			require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
			require.Zero(t, r.Len())
			if clientFirst {
				_, err := readEOF(t, s.client)
				require.NoError(t, err, "the silent replica's side was closed: the player sees it end")
			} else {
				_, err := readEOF(t, s.server)
				require.NoError(t, err)
			}
		})
	}
}

func TestTLSCloseFromEitherSide(t *testing.T) {
	for _, tc := range []struct {
		name  string
		close func(t *testing.T, s *tlsSession)
	}{
		{"player closes", func(t *testing.T, s *tlsSession) {
			require.NoError(t, s.client.Close())
			_, err := readEOF(t, s.server)
			require.NoError(t, err)
			require.NoError(t, s.server.Close())
		}},
		{"replica closes", func(t *testing.T, s *tlsSession) {
			require.NoError(t, s.server.Close())
			_, err := readEOF(t, s.client)
			require.NoError(t, err)
			require.NoError(t, s.client.Close())
		}},
		{"player resets", func(t *testing.T, s *tlsSession) {
			setReset(t, s.session.client)
			_, err := readEOF(t, s.server)
			require.NoError(t, err, "the relay closed its side")
		}},
		{"replica resets", func(t *testing.T, s *tlsSession) {
			setReset(t, s.session.server)
			// The relay closes the player's side: close_notify, or a
			// reset if the player's bytes were unread; not a timeout.
			_, err := readEOF(t, s.client)
			require.False(t, errors.Is(err, os.ErrDeadlineExceeded), "%v", err)
		}},
	} {
		forLingers(t, func(t *testing.T, linger time.Duration) {
			t.Log(tc.name)
			r := newRelay(t, Config{TLSLinger: linger})
			s := newTLSSession(t, newListener(t), false)
			base := runtime.NumGoroutine()
			s.splice(t, r, nil, nil)
			writeRead(t, s.client, s.server, []byte("ping"))
			writeRead(t, s.server, s.client, []byte("pong"))
			tc.close(t, s)
			waitClosed(t, s.session)
			require.Zero(t, r.Len())
			waitIdle(t, r, base)
			require.EqualValues(t, 1, s.calls.Load())
		})
	}
}

// Relay.Close ends idle TLS pairs (no goroutine is waiting on them),
// lingering ones, busy ones and ones whose registration the loop has not
// seen yet.
func TestRelayCloseWithIdleTLSPairs(t *testing.T) {
	for _, linger := range []time.Duration{-1, time.Minute} {
		t.Run(fmt.Sprintf("linger=%v", linger), func(t *testing.T) { testRelayCloseWithTLSPairs(t, linger) })
	}
}

func testRelayCloseWithTLSPairs(t *testing.T, linger time.Duration) {
	const n = 40
	l := newListener(t)
	ss := make([]*tlsSession, n)
	for i := range ss {
		ss[i] = newTLSSession(t, l, i%4 == 3)
	}
	runtime.GC()
	baseG := runtime.NumGoroutine()
	baseFD := openFDs(t)
	r, err := New(Config{Loops: 2, TLSLinger: linger})
	require.NoError(t, err)
	for i, s := range ss {
		s.splice(t, r, nil, nil)
		if i < n-5 { // the last few may still be queued for their loop
			writeRead(t, s.client, s.server, fmt.Appendf(nil, "hello %d", i))
			writeRead(t, s.server, s.client, fmt.Appendf(nil, "back %d", i))
		}
	}
	// One busy pair: a stream the replica does not read.
	go stream(ss[0].client, 64<<20, 10) //nolint:errcheck // fails when closed
	require.Eventually(t, func() bool { return r.bufsOut.Load() >= 1 }, waitFor, time.Millisecond)
	require.Equal(t, n, r.Len())
	if linger > 0 {
		require.Greater(t, runtime.NumGoroutine(), baseG+n, "the pairs that moved bytes linger")
	}

	require.NoError(t, r.Close())
	for _, s := range ss {
		require.EqualValues(t, 1, s.calls.Load(), "every onClose ran before Close returned")
	}
	require.Zero(t, r.Len())
	require.Zero(t, r.bufsOut.Load())
	for _, s := range ss[1:] {
		_, err := readEOF(t, s.client)
		require.NoError(t, err)
		_, err = readEOF(t, s.server)
		require.NoError(t, err)
	}
	require.NoError(t, r.Close(), "Close is idempotent")
	waitGoroutines(t, baseG)
	require.Eventually(t, func() bool { return openFDs(t) <= baseFD-2*n }, waitFor, time.Millisecond)
}

// An idle TLS pair costs no goroutine: n pairs, each live once, then idle.
func TestIdleTLSPairsHoldNoGoroutine(t *testing.T) {
	forLingers(t, testIdleTLSPairsHoldNoGoroutine)
}

func testIdleTLSPairsHoldNoGoroutine(t *testing.T, linger time.Duration) {
	const n = 200
	r := newRelay(t, Config{Loops: 2, TLSLinger: linger})
	l := newListener(t)
	ss := make([]*tlsSession, n)
	for i := range ss {
		ss[i] = newTLSSession(t, l, false)
	}
	runtime.GC()
	base := runtime.NumGoroutine()
	for i, s := range ss {
		s.splice(t, r, nil, nil)
		writeRead(t, s.client, s.server, fmt.Appendf(nil, "hello %d", i))
		writeRead(t, s.server, s.client, fmt.Appendf(nil, "back %d", i))
	}
	require.Equal(t, n, r.Len())
	waitIdle(t, r, base)
	t.Logf("%d idle TLS pairs: %d goroutines, %d before", n, runtime.NumGoroutine(), base)
	for i, s := range ss { // and they wake up again
		writeRead(t, s.client, s.server, fmt.Appendf(nil, "again %d", i))
		writeRead(t, s.server, s.client, fmt.Appendf(nil, "again back %d", i))
	}
	waitIdle(t, r, base)
}

// Records crypto/tls holds with no byte left on the socket: taken along
// with the handshake, the tail of a record longer than the relay's buffer,
// several records in one segment; and a record that comes in two parts.
func TestTLSBufferedRecords(t *testing.T) {
	forLingers(t, testTLSBufferedRecords)
}

func testTLSBufferedRecords(t *testing.T, linger time.Duration) {
	srvCfg, cliCfg := testTLSConfigs(t)
	r := newRelay(t, Config{BufferSize: 1024, TLSLinger: linger})
	s := newSession(t, newListener(t))
	wire := &batchConn{Conn: s.client}
	client := tls.Client(wire, cliCfg)
	a := tls.Server(s.a, srvCfg)
	handshake(t, client, a)

	// "first" is read before the hand-off; "second" came in the same
	// segment and waits inside a.
	wire.records(t, client, "first", "second")
	deadline(a)
	got := make([]byte, 5)
	_, err := io.ReadFull(a, got)
	require.NoError(t, err)
	require.NoError(t, a.SetDeadline(time.Time{}))
	base := runtime.NumGoroutine()
	require.NoError(t, r.Splice(a, s.b, nil, nil, s.onClose))
	deadline(s.server)
	got = make([]byte, 6)
	_, err = io.ReadFull(s.server, got)
	require.NoError(t, err)
	require.Equal(t, "second", string(got), "the record held at the hand-off")

	// One 8 KB record through a 1 KB buffer, then a burst of records.
	big := bytes.Repeat([]byte("0123456789abcdef"), 512)
	writeRead(t, client, s.server, big)
	wire.records(t, client, "x", "y", "z", string(big))
	got = make([]byte, 3+len(big))
	_, err = io.ReadFull(s.server, got)
	require.NoError(t, err)
	require.Equal(t, append([]byte("xyz"), big...), got)

	// Half a record, then silence: the direction goes idle with it kept
	// in crypto/tls, and the rest completes it.
	rec := recordBytes(t, wire, client, "split record")
	_, err = s.client.Write(rec[:7])
	require.NoError(t, err)
	time.Sleep(3 * recordWait) // pacing: past the wait for the rest (and the linger)
	waitIdle(t, r, base)
	_, err = s.client.Write(rec[7:])
	require.NoError(t, err)
	got = make([]byte, len("split record"))
	deadline(s.server)
	_, err = io.ReadFull(s.server, got)
	require.NoError(t, err)
	require.Equal(t, "split record", string(got))
	waitIdle(t, r, base)
}

// recordBytes returns msg encrypted as the next record client sends,
// without sending it.
func recordBytes(t *testing.T, wire *batchConn, client *tls.Conn, msg string) []byte {
	t.Helper()
	wire.mu.Lock()
	wire.batching = true
	wire.mu.Unlock()
	_, err := client.Write([]byte(msg))
	require.NoError(t, err)
	wire.mu.Lock()
	defer wire.mu.Unlock()
	wire.batching = false
	rec := wire.buf
	wire.buf = nil
	return rec
}

// The offsets of crypto/tls's read buffers were found: if a Go release
// renames them, idle wss sessions cost 3.5 KB more (of heap) and this says so.
func TestTLSReadBuffersFound(t *testing.T) {
	require.True(t, tlsBufs.ok, "crypto/tls's rawInput/input/hand fields not found: releaseReadBuffers does nothing")
	r := newRelay(t, Config{TLSLinger: 5 * time.Millisecond})
	s := newTLSSession(t, newListener(t), false)
	a := s.a.(*tls.Conn)
	// (Read before the splice: after it, only a's direction may look.)
	held := (*bytes.Buffer)(unsafe.Add(unsafe.Pointer(a), tlsBufs.rawInput)).Cap() +
		(*bytes.Buffer)(unsafe.Add(unsafe.Pointer(a), tlsBufs.hand)).Cap()
	require.Positive(t, held, "the handshake left buffers")
	base := runtime.NumGoroutine()
	s.splice(t, r, nil, nil)
	writeRead(t, s.client, s.server, []byte("hello"))
	waitIdle(t, r, base)
	require.GreaterOrEqual(t, r.tlsDropped.Load(), int64(held), "dropped once idle")
	t.Logf("a *tls.Conn past its handshake held %d bytes of empty read buffers", held)
}
