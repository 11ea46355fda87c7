//go:build linux

package relay

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// TLS pairs: the loops watch the sockets, goroutines move the bytes, and
// only while a session has bytes to move.
//
//   - A *tls.Conn cannot be read at the fd level, and its Write cannot stop
//     half-way (a write timeout breaks it for good), so its bytes are moved
//     with blocking reads and writes on goroutines. What made an idle wss
//     session cost 23-24 KB of RSS was keeping two of them per pair:
//     crypto/tls grows their stacks to 8-16 KB.
//   - A direction's goroutine borrows a pooled buffer to move what its
//     source has, returns it, and then lingers: it waits (Config.TLSLinger,
//     default 1s) in Go's netpoller for its socket to be readable, holding
//     no buffer, as the goroutine fallback did. Frames within the linger
//     cost what they cost with two goroutines per pair (32-35 us of CPU per
//     wss echo round trip in-process, was 32-34); with no linger each frame
//     costs a loop event, a new goroutine and a re-arm (64-82 us).
//   - Once the linger passes with nothing to read, the direction drops the
//     *tls.Conn's empty read buffers (tlsbuf_linux.go), re-arms its socket
//     in its loop's epoll and ends its goroutine. Each socket is registered
//     once, EPOLLIN|EPOLLRDHUP|EPOLLET|EPOLLONESHOT: an event disarms it, and
//     only a direction going idle re-arms it (EPOLL_CTL_MOD), so a busy
//     direction costs the loop nothing, and bytes that came before the
//     re-arm raise an event at once (the kernel polls the socket on
//     EPOLL_CTL_MOD). The event carries the pair's slot in the loop's table
//     and which side it is (EpollEvent.Pad != 0 tells it from a plain
//     side's). It kicks the direction: an idle one gets a goroutine
//     (dirIdle -> dirRunning), a running one is told to look again before it
//     goes idle (dirRunning -> dirAgain), so no event is lost.
//   - A *tls.Conn source is read with a read deadline ahead (the linger, or
//     recordWait with none), moved only once less than half of it is left,
//     so that frames do not each move a runtime timer: a record whose rest
//     is late, or a client that stops mid-record, holds the goroutine no
//     longer than that (crypto/tls treats a timeout as temporary and keeps a
//     partial record). If crypto/tls then holds more (the rest of a record
//     longer than the buffer, records read with this one), a deadline in the
//     past makes Read return it without touching the socket. A MSG_PEEK
//     says whether the socket has more; it also returns a pending socket
//     error, which it consumes (a read after it would see EOF). A plain
//     source is read at the fd level until EAGAIN or a short read, as the
//     loops do.
//   - Writes block on the goroutine, in Go's netpoller: under backpressure a
//     direction keeps its goroutine and its one buffer, like a loop keeps a
//     buffer.
//   - Ends as in the fallback: EOF half-closes the destination (close_notify
//     and FIN for a *tls.Conn), HalfCloseTimeout bounds the other direction,
//     an error closes both, and the pair finishes when both directions have
//     ended. Closing the conns kicks both directions, so an idle one starts,
//     finds them closed and ends, and a lingering one wakes with an error.

// recordWait is how long a direction with no linger waits for the rest of
// a TLS record whose first bytes came; past it, the record stays buffered in
// crypto/tls and the bytes still to come raise the next event.
const recordWait = 2 * time.Millisecond

// evTLS: readiness to read is all the loop watches for a TLS pair, once per
// arming.
const evTLS = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET | unix.EPOLLONESHOT

// Direction states.
const (
	dirIdle    uint32 = iota // no goroutine; the socket is armed in epoll
	dirRunning               // a goroutine moves bytes or lingers
	dirAgain                 // running, and kicked since it last looked
	dirDone                  // ended (EOF or error)
)

type tlsPair struct {
	r       *Relay
	l       *loop
	conns   [2]net.Conn // a, b
	dirs    [2]tlsDir   // dirs[i] reads conns[i], writes conns[1-i]
	onClose func()
	left    atomic.Int32 // directions not yet ended
	once    sync.Once    // closeBoth
	// halfOpen ends a pair whose second direction outlives HalfCloseTimeout.
	halfOpen atomic.Pointer[time.Timer]
	// slot is p's index in l.tls, set by the loop before the directions
	// start and never changed: a direction re-arming its socket after the
	// loop forgot p (and gave the slot to another pair) only makes that
	// pair's direction look once for nothing.
	slot int32
}

type tlsDir struct {
	p       *tlsPair
	tc      *tls.Conn       // the source, or nil if it is a plain socket
	rc      syscall.RawConn // the source's socket
	pending []byte          // written to the destination first
	// until is the source's read deadline as set by deadline (since
	// epoch), 0 once something else moved it; the goroutine's only.
	until time.Duration
	state atomic.Uint32
	src   uint8 // index in p.conns of the conn read
}

// tlsCmd asks a loop to watch a pair's sockets (and start its directions),
// or to forget the pair.
type tlsCmd struct {
	p     *tlsPair
	watch bool
}

// spliceTLS takes a pair whose sides are each a plain socket or a *tls.Conn
// past its handshake over one, at least one of them TLS.
func (r *Relay) spliceTLS(a, b net.Conn, aPending, bPending []byte, onClose func()) (bool, error) {
	p := &tlsPair{r: r, conns: [2]net.Conn{a, b}, onClose: onClose}
	var fds [2]int
	anyTLS := false
	for i, c := range p.conns {
		sock := c
		tc, isTLS := c.(*tls.Conn)
		if isTLS {
			// Before its handshake a read deadline would fail the
			// handshake for good: such a conn takes the fallback.
			if !tc.ConnectionState().HandshakeComplete {
				return false, nil
			}
			sock, anyTLS = tc.NetConn(), true
		}
		fd, ok, err := rawFD(sock)
		if err != nil {
			return true, err
		}
		if !ok {
			return false, nil
		}
		rc, err := sock.(syscall.Conn).SyscallConn()
		if err != nil {
			return false, nil
		}
		fds[i] = fd
		p.dirs[i] = tlsDir{p: p, src: uint8(i), tc: tc, rc: rc}
	}
	if !anyTLS {
		return false, nil
	}
	if fds[0] == fds[1] {
		return true, errors.New("relay: a and b are the same socket")
	}
	p.dirs[0].pending, p.dirs[1].pending = aPending, bPending
	p.left.Store(2)

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return true, ErrClosed
	}
	p.l = r.loops[r.next%len(r.loops)]
	r.next++
	r.goPairs[p] = struct{}{}
	r.pairs.Add(1)
	r.goWG.Add(1)
	// Queued under r.mu: whoever finds p in goPairs queues its forget after this.
	p.l.sendTLS(tlsCmd{p: p, watch: true})
	return true, nil
}

// sendTLS queues c for the loop. After stop it is dropped: Close closes
// the pairs itself.
func (l *loop) sendTLS(c tlsCmd) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopping || l.efd < 0 {
		return
	}
	l.tlsCmds = append(l.tlsCmds, c)
	if len(l.tlsCmds) == 1 {
		l.wakeLocked()
	}
}

// tlsCommand runs on the loop goroutine.
func (l *loop) tlsCommand(c tlsCmd) {
	p := c.p
	if !c.watch {
		if int(p.slot) < len(l.tls) && l.tls[p.slot] == p {
			l.tls[p.slot] = nil
			l.tlsFree = append(l.tlsFree, p.slot)
		}
		return
	}
	if n := len(l.tlsFree); n > 0 {
		p.slot = l.tlsFree[n-1]
		l.tlsFree = l.tlsFree[:n-1]
	} else {
		p.slot = int32(len(l.tls))
		l.tls = append(l.tls, nil)
	}
	l.tls[p.slot] = p
	for i := range p.dirs {
		var err error
		ev := unix.EpollEvent{Events: evTLS, Fd: p.slot, Pad: int32(i + 1)}
		// Control holds the socket open: the fd number is still this conn's.
		cerr := p.dirs[i].rc.Control(func(fd uintptr) {
			err = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		})
		if cerr != nil || err != nil {
			// Closed meanwhile (which kicked its directions), or refused.
			// Closing may send close_notify: not on the loop.
			go p.closeBoth()
			return
		}
	}
	// Pending bytes, records taken along with the handshake and bytes that
	// came before the registration: each direction's first round sees to
	// them (an event meanwhile makes it look again).
	for i := range p.dirs {
		d := &p.dirs[i]
		if d.state.CompareAndSwap(dirIdle, dirRunning) {
			go d.run(true)
		}
	}
}

// tlsEvent passes an event on a TLS pair's socket to the direction reading
// it. An event for a slot reused since only makes a direction look once for
// nothing.
func (l *loop) tlsEvent(ev unix.EpollEvent) {
	if int(ev.Fd) >= len(l.tls) || ev.Pad < 1 || ev.Pad > 2 {
		return
	}
	if p := l.tls[ev.Fd]; p != nil {
		p.dirs[ev.Pad-1].kick()
	}
}

// kick starts a goroutine for an idle direction, or tells a running one to
// look again before it goes idle. Any goroutine may call it.
func (d *tlsDir) kick() {
	for {
		switch d.state.Load() {
		case dirIdle:
			if d.state.CompareAndSwap(dirIdle, dirRunning) {
				go d.run(false)
				return
			}
		case dirRunning:
			if d.state.CompareAndSwap(dirRunning, dirAgain) {
				return
			}
		default: // dirAgain, dirDone
			return
		}
	}
}

// run moves bytes, lingers, and goes idle once the linger passed with
// nothing to read, or ends the direction. first: the round the loop starts
// on registration.
func (d *tlsDir) run(first bool) {
	// An event (or the linger's wait) said the socket has bytes: read
	// them; else look first.
	read := !first
	for {
		err := d.round(first, read)
		first = false
		var ok bool
		if err == nil {
			ok, err = d.wait(d.p.r.linger)
		}
		if err == nil && ok {
			read = true
			continue
		}
		if err == nil {
			if d.tc != nil {
				if n := releaseReadBuffers(d.tc); n > 0 {
					d.p.r.tlsDropped.Add(int64(n))
				}
			}
			err = d.arm()
		}
		if err != nil {
			d.state.Store(dirDone)
			d.p.ended(d, err)
			return
		}
		if d.state.CompareAndSwap(dirRunning, dirIdle) {
			return
		}
		d.state.Store(dirRunning) // it was dirAgain: look again
		read = false
	}
}

// round moves what the source has now with a pooled buffer.
func (d *tlsDir) round(first, read bool) error {
	p := d.p
	dst := p.conns[1-d.src]
	if first && len(d.pending) > 0 {
		_, err := dst.Write(d.pending)
		d.pending = nil
		if err != nil {
			return err
		}
	}
	bp := p.r.getBuf()
	defer p.r.putBuf(bp)
	if d.tc == nil {
		return d.copyPlain(dst, *bp)
	}
	if first {
		// Records read along with the handshake may wait in the conn.
		d.until = 0
		if err := drainHeld(dst, d.tc, *bp); err != nil {
			return err
		}
	}
	if !read {
		return nil
	}
	// The socket has bytes; the deadline bounds the wait for the rest of
	// a record.
	wait := p.r.linger
	if wait < 0 {
		wait = recordWait
	}
	if err := d.deadline(wait); err != nil {
		return err
	}
	n, err := d.tc.Read(*bp)
	if n > 0 {
		if _, werr := dst.Write((*bp)[:n]); werr != nil {
			return werr
		}
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// A partial record (kept by crypto/tls) whose rest is late,
			// or a deadline that passed before the read began: wait
			// tells which.
			return nil
		}
		return err
	}
	if !holdsRead(d.tc) {
		return nil
	}
	// crypto/tls holds more: the rest of a record longer than the buffer,
	// records read from the socket with this one.
	d.until = 0
	return drainHeld(dst, d.tc, *bp)
}

// epoch makes read deadlines monotonic instants that fit an int64.
var epoch = time.Now()

// deadline sets the source's read deadline to wait from now, unless the one
// it set last has more than half of that left: a direction moving frames
// moves its deadline (a runtime timer) every wait/2, not at every frame.
func (d *tlsDir) deadline(wait time.Duration) error {
	now := time.Since(epoch)
	if d.until-now > wait/2 {
		return nil
	}
	d.until = now + wait
	return d.p.conns[d.src].SetReadDeadline(epoch.Add(d.until))
}

// wait waits up to linger, in Go's netpoller, for the source's socket to
// have bytes or EOF to read (true); with linger < 0 it only looks.
func (d *tlsDir) wait(linger time.Duration) (bool, error) {
	var ok bool
	var err error
	if linger < 0 {
		if cerr := d.rc.Control(func(fd uintptr) { ok, err = peek(int(fd)) }); cerr != nil {
			return false, cerr
		}
		return ok, err
	}
	if err := d.deadline(linger); err != nil {
		return false, err
	}
	rerr := d.rc.Read(func(fd uintptr) bool {
		ok, err = peek(int(fd))
		return ok || err != nil
	})
	if errors.Is(rerr, os.ErrDeadlineExceeded) {
		return false, nil
	}
	if rerr != nil {
		return false, rerr
	}
	return ok, err
}

// arm re-arms the source's socket in the loop's epoll: its next bytes (or
// those already there) raise an event.
func (d *tlsDir) arm() error {
	p := d.p
	ev := unix.EpollEvent{Events: evTLS, Fd: p.slot, Pad: int32(d.src) + 1}
	var err error
	if cerr := d.rc.Control(func(fd uintptr) {
		err = unix.EpollCtl(p.l.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev)
	}); cerr != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("relay: epoll_ctl: %w", err)
	}
	return nil
}

// copyPlain copies from a plain socket to dst until EAGAIN, or a short read
// (TCP hands out all it holds; wait sees to what comes after).
func (d *tlsDir) copyPlain(dst net.Conn, buf []byte) error {
	for {
		var n int
		var err error
		if cerr := d.rc.Control(func(fd uintptr) { n, err = readFD(int(fd), buf) }); cerr != nil {
			return cerr
		}
		switch {
		case err == unix.EAGAIN:
			return nil
		case err != nil:
			return err
		case n == 0:
			return io.EOF
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return err
		}
		if n < len(buf) {
			return nil
		}
	}
}

// ended: on EOF half-close the destination if it can be, else close both;
// the pair finishes with its second direction.
func (p *tlsPair) ended(d *tlsDir, err error) {
	if err != io.EOF || !closeWrite(p.conns[1-d.src]) {
		p.closeBoth()
	} else if hc := p.r.halfOpen; hc > 0 && p.left.Load() == 2 {
		// The other direction may never end: bound the half-open time.
		t := time.AfterFunc(hc, p.closeBoth)
		if !p.halfOpen.CompareAndSwap(nil, t) {
			t.Stop()
		}
	}
	if p.left.Add(-1) == 0 {
		p.finish()
	}
}

// closeBoth closes both conns once and kicks both directions: an idle one
// has no goroutine to find them closed, so it gets one, which ends it.
func (p *tlsPair) closeBoth() {
	p.once.Do(func() {
		p.l.sendTLS(tlsCmd{p: p})
		_ = p.conns[0].Close()
		_ = p.conns[1].Close()
		p.dirs[0].kick()
		p.dirs[1].kick()
	})
}

func (p *tlsPair) finish() {
	p.closeBoth()
	if t := p.halfOpen.Load(); t != nil {
		t.Stop()
	}
	r := p.r
	r.mu.Lock()
	delete(r.goPairs, p)
	r.mu.Unlock()
	r.pairs.Add(-1)
	if p.onClose != nil {
		p.onClose()
	}
	r.goWG.Done()
}
