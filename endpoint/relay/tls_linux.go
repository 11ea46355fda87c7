//go:build linux

package relay

import (
	"crypto/tls"
	"errors"
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
// only while there are bytes to move.
//
//   - A *tls.Conn cannot be read at the fd level, and its Write cannot stop
//     half-way (a write timeout breaks it for good), so its bytes are moved
//     with blocking reads and writes on goroutines. What made a wss session
//     cost 22-23 KB was keeping two of them per pair while it was idle:
//     crypto/tls grows their stacks to 8-16 KB. Now an idle direction has no
//     goroutine.
//   - Each socket of the pair (the one under a *tls.Conn, or a plain one) is
//     registered once with a loop's epoll, EPOLLIN|EPOLLRDHUP|EPOLLET, and
//     never modified; the event carries the pair's slot in the loop's table
//     and which side it is (EpollEvent.Pad != 0 tells it from a plain side).
//     An edge kicks the direction reading that socket: an idle direction gets
//     a goroutine (dirIdle -> dirRunning), a running one is told to look
//     again before it goes idle (dirRunning -> dirAgain), so no edge is lost.
//   - A direction's goroutine borrows a pooled buffer and reads until its
//     source has nothing more. A *tls.Conn source is read with a read
//     deadline: recordWait ahead while the socket has bytes (the rest of a
//     record may be on its way; a client that stops mid-record holds nothing
//     once it passes), then in the past, which makes Read return the records
//     crypto/tls already took from the socket and time out without touching
//     it (crypto/tls treats a timeout as temporary and keeps a partial
//     record). Then a MSG_PEEK says whether the socket has more; if not, the
//     direction drops the *tls.Conn's empty read buffers (tlsbuf_linux.go),
//     returns its buffer and goes idle. A plain source is read at the fd
//     level until EAGAIN, or a short read (as the loops do).
//   - Writes block on the goroutine, in Go's netpoller: under backpressure a
//     direction keeps its goroutine and its one buffer, like the loops keep
//     a buffer.
//   - Ends as in the fallback: EOF half-closes the destination (close_notify
//     and FIN for a *tls.Conn), HalfCloseTimeout bounds the other direction,
//     an error closes both, and the pair finishes when both directions have
//     ended. Closing the conns kicks both directions, so an idle one starts,
//     finds them closed and ends.
//   - Cost per wss frame, client to replica: one epoll event, a goroutine,
//     read, write and a peek that says EAGAIN; replica to client: one event,
//     a goroutine, read and write.

// recordWait is how long a direction waits for the rest of a TLS record
// whose first bytes came; past it, the record stays buffered in crypto/tls
// and the bytes still to come make the next edge.
const recordWait = 2 * time.Millisecond

// evTLS: readiness to read is all the loop watches for a TLS pair.
const evTLS = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET

// Direction states.
const (
	dirIdle    uint32 = iota // no goroutine: the next edge starts one
	dirRunning               // a goroutine moves bytes
	dirAgain                 // running, and an edge came since it last looked
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
	slot     int32 // in l.tls, or -1; the loop goroutine's only
}

type tlsDir struct {
	p       *tlsPair
	src     int             // index in p.conns of the conn read
	tc      *tls.Conn       // the source, or nil if it is a plain socket
	rc      syscall.RawConn // the source's socket
	pending []byte          // written to the destination first
	state   atomic.Uint32
	fin     atomic.Bool // an edge said the source's peer sent its FIN
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
	p := &tlsPair{r: r, conns: [2]net.Conn{a, b}, onClose: onClose, slot: -1}
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
		p.dirs[i] = tlsDir{p: p, src: i, tc: tc, rc: rc}
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
		if p.slot >= 0 && l.tls[p.slot] == p {
			l.tls[p.slot] = nil
			l.tlsFree = append(l.tlsFree, p.slot)
		}
		p.slot = -1
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
	// came before the registration: each direction's first round sees to them.
	for i := range p.dirs {
		d := &p.dirs[i]
		if d.state.CompareAndSwap(dirIdle, dirRunning) {
			go d.run(true)
		}
	}
}

// tlsEvent passes an edge on a TLS pair's socket to the direction reading it.
// An edge for a slot reused since (the old pair's sockets closing) only makes
// a direction look once for nothing.
func (l *loop) tlsEvent(ev unix.EpollEvent) {
	if int(ev.Fd) >= len(l.tls) || ev.Pad < 1 || ev.Pad > 2 {
		return
	}
	p := l.tls[ev.Fd]
	if p == nil {
		return
	}
	d := &p.dirs[ev.Pad-1]
	if ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
		d.fin.Store(true)
	}
	d.kick()
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

// run moves bytes until the source has nothing more, then goes idle, or
// ends the direction. first: the round the loop starts on registration.
func (d *tlsDir) run(first bool) {
	// An edge started this round: the socket has bytes, or had (check
	// says whether to make sure before a read that would wait).
	check := first
	for {
		err := d.round(first, check)
		first, check = false, true
		if err == nil {
			if d.state.CompareAndSwap(dirRunning, dirIdle) {
				return
			}
			d.state.Store(dirRunning) // it was dirAgain: look again
			continue
		}
		d.state.Store(dirDone)
		d.p.ended(d, err)
		return
	}
}

// round moves what the source has now; nil when it has nothing more.
func (d *tlsDir) round(first, check bool) error {
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
		if err := drainHeld(dst, d.tc, *bp); err != nil {
			return err
		}
	}
	err := d.copyTLS(dst, *bp, check)
	if err == nil {
		releaseReadBuffers(d.tc)
	}
	return err
}

// copyTLS copies records from d.tc to dst until its socket has no bytes.
func (d *tlsDir) copyTLS(dst net.Conn, buf []byte, check bool) error {
	for {
		if check {
			ok, err := d.readable()
			if err != nil || !ok {
				return err
			}
		}
		check = true
		if err := d.tc.SetReadDeadline(time.Now().Add(recordWait)); err != nil {
			return err
		}
		n, err := d.tc.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil // a partial record, kept; its rest makes an edge
			}
			return err
		}
		// crypto/tls may hold more: the rest of a record longer than buf,
		// records read from the socket with this one.
		if err := drainHeld(dst, d.tc, buf); err != nil {
			return err
		}
	}
}

// readable peeks at the source's socket: bytes, EOF or an error to read.
func (d *tlsDir) readable() (bool, error) {
	var ok bool
	err := d.rc.Control(func(fd uintptr) {
		var b [1]byte
		for {
			_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			if err != unix.EINTR {
				ok = err != unix.EAGAIN
				return
			}
		}
	})
	return ok, err
}

// copyPlain copies from a plain socket to dst until EAGAIN, or a short read
// (TCP hands out all it holds; more bytes make an edge) unless an edge said
// the FIN came: then until EOF.
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
		if n < len(buf) && !d.fin.Load() {
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
