// Package relay moves bytes both ways between the two TCP connections of a
// proxied session (client side, replica side) until the session ends.
//
// Connections that are plain sockets (*net.TCPConn, *net.UnixConn, anything
// exposing syscall.Conn whose fd is a stream socket) are served by a few
// event-loop goroutines, each draining its own epoll instance (parked in Go's
// netpoller between batches, or blocked in epoll_wait with BlockingWait).
// An idle pair then costs one small struct: no goroutine, no buffer. A pooled
// buffer is borrowed only while bytes are being moved, and kept only while the
// destination cannot take them (at most one buffer per direction).
//
// A pair with a *tls.Conn past its handshake on either side (a wss:// session
// on a platform serving --tls-cert), over sockets, is served by the same loops
// for readiness only (tls_linux.go): each socket is registered edge-triggered,
// and an edge starts a goroutine for that direction that reads through the
// *tls.Conn with a pooled buffer, writes to the peer and ends once the source
// has nothing more, so an idle TLS pair holds no goroutine and no buffer
// either; the *tls.Conn's own read buffers are dropped while idle too
// (tlsbuf_linux.go). Measured with bench/baseline at 4000 sessions over one
// gateway process: 5.0 KB of RSS per idle wss session, was 24.0 with two
// goroutines per pair (ws: 4.0 KB, unchanged). What an idle wss session
// still costs beyond a ws one is crypto/tls's state: the *tls.Conn (0.9 KB)
// and its two AES-GCM ciphers (1.75 KB).
//
// Other connections (net.Pipe, wrappers without a socket, a *tls.Conn before
// its handshake) fall back to two goroutines copying with pooled buffers, with
// the same half-close and onClose contract. A direction whose source is a
// socket, plain or under TLS, waits for it to be readable before it borrows a
// buffer.
//
// After a successful Splice the relay owns both connections: the caller must
// not read, write, set deadlines on or close them. Bytes that a wrapper (such
// as a bufio.Reader used during the handshake) has already read must be handed
// over as aPending/bPending, because raw sockets are read at the fd level.
package relay

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Config tunes a Relay; zero values take defaults.
type Config struct {
	Loops      int // event-loop goroutines, default runtime.GOMAXPROCS(0)
	BufferSize int // bytes moved per read, from a sync.Pool, default 16 KiB
	// HalfCloseTimeout bounds how long a pair stays open once one direction
	// has ended (like HAProxy's client-fin/server-fin timeouts): a peer that
	// never closes its side cannot hold a session forever. 0 waits forever.
	HalfCloseTimeout time.Duration
	// BlockingWait makes each loop own an OS thread blocked in
	// epoll_wait instead of parking in Go's netpoller between batches
	// (Linux). It pays where the process does little besides relaying (a
	// --role gateway process): measured with bench/gateway on 2 CPUs,
	// 42-45 us of CPU per echo round trip instead of 64, and an added p50
	// of 46-60 us instead of 107. Where the same process serves the API, a
	// loop blocked in a syscall holds its P until sysmon retakes it, and
	// other goroutines wait for that (see relay_linux.go): leave it off.
	BlockingWait bool
	// TLSLinger is how long a TLS pair's direction keeps its goroutine,
	// waiting in Go's netpoller, after it moved bytes, before it ends and
	// the loops watch its socket again (Linux). Within it, bytes cost what
	// a goroutine copying costs (measured in-process: 36 us of CPU per wss
	// echo round trip, 51 with no linger: a loop event and a new goroutine
	// per frame); past it, a quiet session holds no goroutine. Default 1s;
	// negative: none.
	TLSLinger time.Duration
}

const (
	defaultBufferSize = 16 << 10
	defaultTLSLinger  = time.Second
)

// ErrClosed is returned by Splice after Close.
var ErrClosed = errors.New("relay: closed")

// Relay relays bytes between connection pairs. Its methods are safe for
// concurrent use.
type Relay struct {
	bufSize  int
	halfOpen time.Duration
	linger   time.Duration // Config.TLSLinger; < 0: none
	blocking bool          // Config.BlockingWait
	pool     sync.Pool     // *[]byte of len bufSize
	bufsOut  atomic.Int64  // buffers currently borrowed from pool (for tests)
	pairs    atomic.Int64  // pairs currently relayed (Len)
	// tlsDropped counts the bytes of *tls.Conn read buffers idle TLS
	// directions let go (for tests).
	tlsDropped atomic.Int64

	mu     sync.Mutex
	closed bool
	loops  []*loop
	next   int // round-robin cursor, guarded by mu
	// goPairs are the pairs whose bytes goroutines move (the fallback's,
	// and TLS pairs), for Close; guarded by mu.
	goPairs map[goPair]struct{}

	loopWG sync.WaitGroup // event-loop goroutines
	goWG   sync.WaitGroup // goPairs not yet finished
}

// goPair is a pair Close must close itself: the loops do not own its conns.
type goPair interface{ closeBoth() }

// New starts a Relay with cfg.Loops event loops.
func New(cfg Config) (*Relay, error) {
	if cfg.Loops <= 0 {
		cfg.Loops = runtime.GOMAXPROCS(0)
	}
	if cfg.BufferSize <= 0 {
		cfg.BufferSize = defaultBufferSize
	}
	if cfg.TLSLinger == 0 {
		cfg.TLSLinger = defaultTLSLinger
	}
	r := &Relay{
		bufSize:  cfg.BufferSize,
		halfOpen: cfg.HalfCloseTimeout,
		linger:   cfg.TLSLinger,
		blocking: cfg.BlockingWait,
		goPairs:  make(map[goPair]struct{}),
	}
	r.pool.New = func() any {
		b := make([]byte, r.bufSize)
		return &b
	}
	if err := r.startLoops(cfg.Loops); err != nil {
		return nil, err
	}
	return r, nil
}

// Splice hands a connected pair to the relay and returns at once. aPending/bPending are bytes already read
// from a / b before the hand-off (e.g. left in a bufio.Reader during the handshake); they are written to the
// other side first. onClose (may be nil) is called exactly once, from any goroutine, after both conns are closed.
//
// onClose must not block for long and must not call Close: for plain socket
// pairs it runs on an event-loop goroutine. If Splice returns an error the relay has
// taken nothing: the conns are left open and onClose is never called.
func (r *Relay) Splice(a, b net.Conn, aPending, bPending []byte, onClose func()) error {
	if a == nil || b == nil {
		return errors.New("relay: nil conn")
	}
	aPending = clonePending(aPending)
	bPending = clonePending(bPending)
	handled, err := r.spliceRaw(a, b, aPending, bPending, onClose)
	if handled || err != nil {
		return err
	}
	handled, err = r.spliceTLS(a, b, aPending, bPending, onClose)
	if handled || err != nil {
		return err
	}
	return r.spliceFallback(a, b, aPending, bPending, onClose)
}

// Len returns the number of pairs currently relayed.
func (r *Relay) Len() int { return int(r.pairs.Load()) }

// Close closes every pair (each onClose runs before Close returns) and stops
// the loops. Splice after Close returns ErrClosed. Close is idempotent.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.loopWG.Wait()
		r.goWG.Wait()
		return nil
	}
	r.closed = true
	gps := make([]goPair, 0, len(r.goPairs))
	for gp := range r.goPairs {
		gps = append(gps, gp)
	}
	loops := r.loops
	r.mu.Unlock()

	for _, gp := range gps {
		gp.closeBoth()
	}
	for _, l := range loops {
		l.stop()
	}
	r.loopWG.Wait()
	r.goWG.Wait()
	return nil
}

func (r *Relay) getBuf() *[]byte {
	r.bufsOut.Add(1)
	return r.pool.Get().(*[]byte)
}

func (r *Relay) putBuf(b *[]byte) {
	r.bufsOut.Add(-1)
	r.pool.Put(b)
}

func clonePending(p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

// ---- fallback: two goroutines per pair ----

type fbPair struct {
	r       *Relay
	a, b    net.Conn
	onClose func()
	once    sync.Once
	left    atomic.Int32 // directions still running
}

func (r *Relay) spliceFallback(a, b net.Conn, aPending, bPending []byte, onClose func()) error {
	fp := &fbPair{r: r, a: a, b: b, onClose: onClose}
	fp.left.Store(2)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.goPairs[fp] = struct{}{}
	r.pairs.Add(1)
	r.goWG.Add(1)
	r.mu.Unlock()
	go fp.pipe(a, b, aPending)
	go fp.pipe(b, a, bPending)
	return nil
}

// pipe copies src to dst (pending first). On EOF it half-closes dst if dst
// supports CloseWrite; on error, or if it cannot, it closes both conns.
func (fp *fbPair) pipe(src, dst net.Conn, pending []byte) {
	var err error
	if len(pending) > 0 {
		_, err = dst.Write(pending)
	}
	if err == nil {
		if w := readableWaiter(src); w != nil {
			err = fp.copyWhenReadable(dst, src, w)
		} else {
			bp := fp.r.getBuf()
			// Hide ReaderFrom/WriterTo so the pooled buffer is really used
			// (TCPConn.ReadFrom would splice or allocate its own 32 KiB).
			_, err = io.CopyBuffer(writerOnly{dst}, readerOnly{src}, *bp)
			fp.r.putBuf(bp)
		}
	}
	if err != nil || !closeWrite(dst) {
		fp.closeBoth()
	} else if d := fp.r.halfOpen; d > 0 && fp.left.Load() == 2 {
		// The other direction may never end: bound the half-open time.
		// closeBoth is idempotent, so a timer outliving the pair is harmless.
		time.AfterFunc(d, fp.closeBoth)
	}
	if fp.left.Add(-1) == 0 {
		fp.finish()
	}
}

// waiter waits until a conn is readable without holding a buffer.
type waiter struct {
	wait func() error
	// wrapped: the conn wraps the socket waited on and may hold bytes it
	// has read from it already (a *tls.Conn's whole records).
	wrapped bool
}

// longAgo is a read deadline that has passed: reads return what the conn
// holds already, then time out without touching the socket.
var longAgo = time.Unix(1, 0)

// copyWhenReadable copies src to dst until EOF, borrowing a pooled buffer
// only once src has bytes: while src is idle the direction holds none.
func (fp *fbPair) copyWhenReadable(dst, src net.Conn, w *waiter) error {
	var err error
	if w.wrapped {
		// Records read along with the handshake may wait in src already.
		bp := fp.r.getBuf()
		err = drainHeldAndClear(dst, src, *bp)
		fp.r.putBuf(bp)
	}
	for err == nil {
		if err = w.wait(); err != nil {
			break
		}
		bp := fp.r.getBuf()
		err = moveOnce(dst, src, *bp)
		if err == nil && w.wrapped {
			err = drainHeldAndClear(dst, src, *bp)
		}
		fp.r.putBuf(bp)
	}
	if err == io.EOF {
		return nil
	}
	return err
}

// moveOnce reads once from src and writes what it got to dst.
func moveOnce(dst, src net.Conn, buf []byte) error {
	n, rerr := src.Read(buf)
	if n > 0 {
		if _, err := dst.Write(buf[:n]); err != nil {
			return err
		}
	}
	return rerr
}

// drainHeld copies to dst what src holds without reading its socket: a
// passed deadline stops it there (for a *tls.Conn a timeout is not a lasting
// error), and is left in place.
func drainHeld(dst, src net.Conn, buf []byte) error {
	if err := src.SetReadDeadline(longAgo); err != nil {
		return err
	}
	for {
		if err := moveOnce(dst, src, buf); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			return err
		}
	}
}

// drainHeldAndClear is drainHeld, then lifts the deadline.
func drainHeldAndClear(dst, src net.Conn, buf []byte) error {
	if err := drainHeld(dst, src, buf); err != nil {
		return err
	}
	return src.SetReadDeadline(time.Time{})
}

func (fp *fbPair) closeBoth() {
	fp.once.Do(func() {
		_ = fp.a.Close()
		_ = fp.b.Close()
	})
}

func (fp *fbPair) finish() {
	fp.closeBoth()
	r := fp.r
	r.mu.Lock()
	delete(r.goPairs, fp)
	r.mu.Unlock()
	r.pairs.Add(-1)
	if fp.onClose != nil {
		fp.onClose()
	}
	r.goWG.Done()
}

type closeWriter interface{ CloseWrite() error }

// closeWrite half-closes c; for a *tls.Conn that is close_notify followed by a
// FIN on the underlying conn. It reports whether c supported it.
func closeWrite(c net.Conn) bool {
	cw, ok := c.(closeWriter)
	if !ok || cw.CloseWrite() != nil {
		return false
	}
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok {
		if inner, ok := nc.NetConn().(closeWriter); ok {
			_ = inner.CloseWrite()
		}
	}
	return true
}

type readerOnly struct{ io.Reader }
type writerOnly struct{ io.Writer }
