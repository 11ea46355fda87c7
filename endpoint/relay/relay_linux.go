//go:build linux

package relay

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Event-loop design (edge-triggered epoll):
//
//   - Each side is registered once, for EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET,
//     and never modified: an edge says "something changed", the side
//     remembers what it may do (flagReadable, flagWritable) until a read or
//     write tells otherwise (EAGAIN, or a short read: TCP hands out all it
//     holds, and more data makes a new edge). No epoll_ctl per event, and
//     closing the fd removes it from epoll (no EPOLL_CTL_DEL).
//   - A side that still has bytes to read when the loop stops reading it
//     (the peer's direction is backed up, or maxReadsPerEvent was reached) is
//     pumped again when its peer drains, or from the busy list before the
//     loop parks: no edge is lost, none is needed.
//   - All reads, writes, shutdowns and closes of a loop's fds happen on that
//     loop's goroutine; other goroutines talk to it through adds/stopping + an eventfd.
//   - Go's own netpoller still has the fds registered (edge-triggered); nobody
//     waits on them there, so its events are ignored by the runtime. (Taking
//     them out, by dup + Close, was tried: strace counted the same system
//     calls per frame in both wait modes, so it is not done.)
//   - Waiting (default): a loop goroutine does not sit in a blocking epoll_wait. In Go a
//     blocking syscall keeps its P (in _Psyscall) until sysmon retakes it (20 us
//     to 10 ms later); with Loops == GOMAXPROCS every P can be captured that way
//     and readied goroutines (the echo server, the HTTP side of the gateway) wait
//     for sysmon. Measured here (2 CPUs): 32-byte echo RTT through the relay
//     40-90 us blocking vs ~31 us parked; 256 pairs in parallel 25 us vs 18 us
//     per round trip. So the epoll fd is registered with Go's netpoller and the
//     loop drains it with epoll_wait(timeout 0), parking in between (see run).
//     With edge triggering a batch of fewer than maxEvents events empties the
//     ready list, so the loop parks right after it: per relayed message one
//     epoll_wait, one read, one write (and the netpoller's own wait).
//   - Waiting with Config.BlockingWait: the loop locks its OS thread and
//     blocks in epoll_wait(-1), as gnet/evio do. In a process that does little
//     else (a --role gateway process, bench/gateway on 2 CPUs, 2 loops) that
//     costs less: 42-45 us of CPU per echo round trip instead of 64 (nginx
//     33-40), added p50 46-60 us instead of 107 (nginx 95), though strace
//     counts more system calls per frame (6.4 instead of 4.3: sysmon's
//     nanosleep, retaking the Ps the loops hold). With an API in the same
//     process the held Ps delay its goroutines, as measured above.

const (
	maxEvents        = 256
	maxReadsPerEvent = 8

	evAll = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET
)

const (
	flagRdEOF    uint8 = 1 << iota // read side reached EOF
	flagWrShut                     // SHUT_WR done on this side
	flagReadable                   // an edge said bytes (or EOF) may be waiting
	flagWritable                   // the socket may take bytes
	flagBusy                       // on the loop's busy list
	flagPeerFIN                    // an edge said the peer sent its FIN: read to EOF
)

type side struct {
	fd    int32
	flags uint8
	conn  net.Conn
	out   []byte  // read from this side, not yet written to the peer
	buf   *[]byte // pooled buffer backing out, if any
	p     *pair
}

type pair struct {
	a, b    side
	onClose func()
	closed  bool
	// halfOpen ends a pair whose second direction outlives HalfCloseTimeout.
	halfOpen *time.Timer
}

func (p *pair) peer(s *side) *side {
	if s == &p.a {
		return &p.b
	}
	return &p.a
}

type loop struct {
	r    *Relay
	epfd int

	mu       sync.Mutex // guards efd (once closed), adds, kills, tlsCmds, stopping
	efd      int
	adds     []*pair
	kills    []*pair  // pairs whose half-close timeout fired
	tlsCmds  []tlsCmd // TLS pairs to watch or forget, in order
	stopping bool

	// loop goroutine only
	sides  []*side // indexed by fd
	events []unix.EpollEvent
	// busy holds sides left readable when their read budget ran out.
	busy []*side
	// tls holds the TLS pairs watched, by slot (their events carry the
	// slot, not an fd; see tls_linux.go); tlsFree the slots free.
	tls     []*tlsPair
	tlsFree []int32
}

func (r *Relay) startLoops(n int) error {
	loops := make([]*loop, 0, n)
	for range n {
		l, err := newLoop(r)
		if err != nil {
			for _, l := range loops {
				unix.Close(l.epfd)
				unix.Close(l.efd)
			}
			return err
		}
		loops = append(loops, l)
	}
	r.loops = loops
	r.loopWG.Add(len(loops))
	for _, l := range loops {
		go l.run()
	}
	return nil
}

func newLoop(r *Relay) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("relay: epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil { // lets os.NewFile use the netpoller
		unix.Close(epfd)
		return nil, fmt.Errorf("relay: epoll fd: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("relay: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(efd)
		return nil, fmt.Errorf("relay: epoll_ctl eventfd: %w", err)
	}
	return &loop{r: r, epfd: epfd, efd: efd, events: make([]unix.EpollEvent, maxEvents)}, nil
}

// rawFD returns the fd of c if c is a non-blocking stream socket.
func rawFD(c net.Conn) (fd int, ok bool, err error) {
	sc, isSC := c.(syscall.Conn)
	if !isSC {
		return -1, false, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, false, nil
	}
	cerr := rc.Control(func(f uintptr) {
		fd = int(f)
		typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
		if err != nil || typ != unix.SOCK_STREAM {
			return
		}
		fl, err := unix.FcntlInt(f, unix.F_GETFL, 0)
		ok = err == nil && fl&unix.O_NONBLOCK != 0
	})
	if cerr != nil {
		return -1, false, fmt.Errorf("relay: %w", cerr)
	}
	return fd, ok, nil
}

func (r *Relay) spliceRaw(a, b net.Conn, aPending, bPending []byte, onClose func()) (bool, error) {
	afd, aok, err := rawFD(a)
	if err != nil {
		return true, err
	}
	bfd, bok, err := rawFD(b)
	if err != nil {
		return true, err
	}
	if !aok || !bok {
		return false, nil
	}
	if afd == bfd {
		return true, errors.New("relay: a and b are the same socket")
	}
	p := &pair{onClose: onClose}
	p.a = side{fd: int32(afd), conn: a, out: aPending, p: p}
	p.b = side{fd: int32(bfd), conn: b, out: bPending, p: p}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return true, ErrClosed
	}
	l := r.loops[r.next%len(r.loops)]
	r.next++
	r.pairs.Add(1)
	l.mu.Lock()
	l.adds = append(l.adds, p)
	if len(l.adds) == 1 {
		l.wakeLocked()
	}
	l.mu.Unlock()
	return true, nil
}

// wakeLocked pokes the eventfd; l.mu must be held (the loop closes efd under it).
func (l *loop) wakeLocked() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	for {
		_, err := unix.Write(l.efd, one[:])
		if err != unix.EINTR {
			return // EAGAIN: counter saturated, a wake-up is pending anyway
		}
	}
}

func (l *loop) stop() {
	l.mu.Lock()
	l.stopping = true
	l.wakeLocked()
	l.mu.Unlock()
}

// run serves the loop until stop. The goroutine does not block an OS thread in
// epoll_wait: the epoll fd is itself pollable, so it is registered with Go's
// netpoller (os.NewFile on a non-blocking fd) and the goroutine parks there
// whenever a non-blocking epoll_wait finds nothing ready. Blocking in
// epoll_wait (as gnet/evio do) is Config.BlockingWait, and the fallback if
// that registration fails; the notes at the top of this file weigh the two.
func (l *loop) run() {
	defer l.r.loopWG.Done()
	f := os.NewFile(uintptr(l.epfd), "relay-epoll") // owns epfd from here on
	defer f.Close()
	if rc, err := f.SyscallConn(); err == nil && !l.r.blocking {
		stopped := false
		err = rc.Read(func(uintptr) bool {
			for {
				n := l.wait(0)
				if l.process(n) {
					stopped = true
					return true
				}
				if n < maxEvents && !l.pumpBusy() {
					// The ready list is empty (edge-triggered: what
					// epoll_wait returned left it) and no side was left
					// with bytes: park in Go's netpoller until an edge.
					return false
				}
			}
		})
		if err == nil && stopped {
			l.shutdown()
			return
		}
	}
	// BlockingWait, or the fallback: block this goroutine's thread in
	// epoll_wait. The thread is the loop's alone; it ends with the goroutine.
	runtime.LockOSThread()
	for {
		timeout := -1
		if len(l.busy) > 0 {
			timeout = 0
		}
		if l.process(l.wait(timeout)) {
			l.shutdown()
			return
		}
		l.pumpBusy()
	}
}

// pumpBusy gives every side on the busy list another read budget; it
// reports whether any is still busy after.
func (l *loop) pumpBusy() bool {
	if len(l.busy) == 0 {
		return false
	}
	busy := l.busy
	l.busy = nil
	for _, s := range busy {
		s.flags &^= flagBusy
		if !s.p.closed {
			l.pump(s.p)
		}
	}
	return len(l.busy) > 0
}

func (l *loop) wait(msec int) int {
	for {
		n, err := unix.EpollWait(l.epfd, l.events, msec)
		if err == nil {
			return n
		}
		if err != unix.EINTR {
			panic(fmt.Sprintf("relay: epoll_wait: %v", err))
		}
	}
}

// process handles n events from l.events and reports whether the loop must stop.
func (l *loop) process(n int) bool {
	woken := false
	for i := range n {
		ev := l.events[i]
		if ev.Pad != 0 { // a TLS pair's socket: Fd is its slot
			l.tlsEvent(ev)
			continue
		}
		if ev.Fd == int32(l.efd) {
			woken = true
			continue
		}
		// A pair closed earlier in this batch has cleared its slots;
		// no pair is added before the batch is done, so a stale event
		// never reaches a reused fd number.
		if int(ev.Fd) < len(l.sides) {
			if s := l.sides[ev.Fd]; s != nil {
				l.handle(s, ev.Events)
			}
		}
	}
	return woken && l.commands()
}

// commands drains the eventfd and the command queue; it reports whether the
// loop must stop.
func (l *loop) commands() bool {
	var buf [8]byte
	l.mu.Lock()
	for {
		_, err := unix.Read(l.efd, buf[:])
		if err != unix.EINTR {
			break
		}
	}
	adds, kills, tlsCmds, stopping := l.adds, l.kills, l.tlsCmds, l.stopping
	l.adds, l.kills, l.tlsCmds = nil, nil, nil
	l.mu.Unlock()
	for _, p := range kills {
		l.closePair(p) // idempotent: a pair that ended meanwhile is left alone
	}
	for _, p := range adds {
		l.add(p)
	}
	for _, c := range tlsCmds {
		l.tlsCommand(c)
	}
	return stopping
}

func (l *loop) shutdown() {
	for _, s := range l.sides {
		if s != nil {
			l.closePair(s.p)
		}
	}
	l.sides = nil
	l.mu.Lock()
	unix.Close(l.efd)
	l.efd = -1
	l.mu.Unlock()
}

func (l *loop) add(p *pair) {
	for _, s := range []*side{&p.a, &p.b} {
		fd := int(s.fd)
		if fd >= len(l.sides) {
			// Grow by 1/8 (not 2x): every loop's table spans the
			// process's fd numbers, so slack costs 8 B per fd per loop.
			n := (fd + 1 + (fd+1)/8 + 255) &^ 255
			grown := make([]*side, n)
			copy(grown, l.sides)
			l.sides = grown
		}
		if old := l.sides[fd]; old != nil {
			// Only possible if the caller closed a conn it handed over
			// and its fd number was reused: drop the stale pair.
			l.closePair(old.p)
		}
		l.sides[fd] = s
	}
	for _, s := range []*side{&p.a, &p.b} {
		ev := unix.EpollEvent{Events: evAll, Fd: s.fd}
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, int(s.fd), &ev); err != nil {
			l.closePair(p)
			return
		}
		// Bytes may have come before the registration (its first edge
		// says so too); a read that finds none costs one EAGAIN.
		s.flags |= flagReadable | flagWritable
	}
	l.pump(p)
}

func (l *loop) handle(s *side, events uint32) {
	if events&unix.EPOLLERR != 0 {
		l.closePair(s.p) // reset or other socket error
		return
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
		s.flags |= flagReadable
	}
	if events&(unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
		// The FIN's edge may come in the same event as the last bytes: a
		// short read of them does not mean there is nothing more to read.
		s.flags |= flagPeerFIN
	}
	if events&(unix.EPOLLOUT|unix.EPOLLHUP) != 0 {
		s.flags |= flagWritable
	}
	l.pump(s.p)
}

// pump moves what it can both ways: first what is pending for a writable
// side, then fresh bytes from readable sides whose direction is clear.
func (l *loop) pump(p *pair) {
	for _, src := range []*side{&p.a, &p.b} {
		dst := p.peer(src)
		if len(src.out) > 0 && dst.flags&flagWritable != 0 && !l.flush(src) {
			return
		}
	}
	for _, src := range []*side{&p.a, &p.b} {
		if src.wantIn() && src.flags&flagReadable != 0 && !l.readFrom(src) {
			return
		}
	}
}

func (s *side) wantIn() bool { return s.flags&flagRdEOF == 0 && len(s.out) == 0 }

// readFrom reads from s and writes to its peer. It returns false if the pair
// was closed.
func (l *loop) readFrom(s *side) bool {
	p := s.p
	dst := p.peer(s)
	for range maxReadsPerEvent {
		bp := l.r.getBuf()
		buf := *bp
		n, err := readFD(int(s.fd), buf)
		switch {
		case err == unix.EAGAIN:
			l.r.putBuf(bp)
			s.flags &^= flagReadable
			return true
		case err != nil:
			l.r.putBuf(bp)
			l.closePair(p)
			return false
		case n == 0:
			l.r.putBuf(bp)
			s.flags = s.flags&^flagReadable | flagRdEOF
			return l.shutWrite(dst)
		}
		w, err := writeFD(int(dst.fd), buf[:n])
		if err != nil {
			l.r.putBuf(bp)
			l.closePair(p)
			return false
		}
		if w < n {
			// Backpressure: keep the rest, stop reading s until dst's
			// next edge drains it (pump then reads s again).
			s.out, s.buf = buf[w:n], bp
			dst.flags &^= flagWritable
			if n < len(buf) && s.flags&flagPeerFIN == 0 {
				s.flags &^= flagReadable
			}
			return true
		}
		l.r.putBuf(bp)
		if n < len(buf) && s.flags&flagPeerFIN == 0 {
			s.flags &^= flagReadable // drained: the next bytes make an edge
			return true
		}
	}
	// The budget ran out with bytes maybe left: come back before parking.
	if s.flags&flagBusy == 0 {
		s.flags |= flagBusy
		l.busy = append(l.busy, s)
	}
	return true
}

// flush writes src.out to src's peer. It returns false if the pair was closed.
func (l *loop) flush(src *side) bool {
	p := src.p
	dst := p.peer(src)
	w, err := writeFD(int(dst.fd), src.out)
	if err != nil {
		l.closePair(p)
		return false
	}
	src.out = src.out[w:]
	if len(src.out) > 0 {
		dst.flags &^= flagWritable
		return true
	}
	src.out = nil
	if src.buf != nil {
		l.r.putBuf(src.buf)
		src.buf = nil
	}
	if src.flags&flagRdEOF != 0 {
		return l.shutWrite(dst)
	}
	return true
}

// shutWrite half-closes dst once everything read from its peer has been
// written, and closes the pair when both directions are done. It returns false
// if the pair was closed.
func (l *loop) shutWrite(dst *side) bool {
	p := dst.p
	src := p.peer(dst)
	if len(src.out) > 0 || dst.flags&flagWrShut != 0 {
		return true
	}
	dst.flags |= flagWrShut
	if err := unix.Shutdown(int(dst.fd), unix.SHUT_WR); err != nil {
		l.closePair(p)
		return false
	}
	if p.a.flags&flagWrShut != 0 && p.b.flags&flagWrShut != 0 {
		l.closePair(p) // both directions done
		return false
	}
	if d := l.r.halfOpen; d > 0 && p.halfOpen == nil {
		p.halfOpen = time.AfterFunc(d, func() { l.kill(p) })
	}
	return true
}

// kill asks the loop to close a pair (from a timer goroutine).
func (l *loop) kill(p *pair) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopping || l.efd < 0 {
		return
	}
	l.kills = append(l.kills, p)
	l.wakeLocked()
}

// closePair closes both conns, returns any borrowed buffers and calls
// onClose. Idempotent.
func (l *loop) closePair(p *pair) {
	if p.closed {
		return
	}
	p.closed = true
	if p.halfOpen != nil {
		p.halfOpen.Stop()
	}
	for _, s := range []*side{&p.a, &p.b} {
		// Closing the fd takes it out of epoll: nothing else holds it.
		if int(s.fd) < len(l.sides) && l.sides[s.fd] == s {
			l.sides[s.fd] = nil
		}
		_ = s.conn.Close()
		s.conn = nil
		if s.buf != nil {
			l.r.putBuf(s.buf)
			s.buf = nil
		}
		s.out = nil
	}
	l.r.pairs.Add(-1)
	if f := p.onClose; f != nil {
		p.onClose = nil
		f()
	}
}

func readFD(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Read(fd, b)
		if err != unix.EINTR {
			if err != nil {
				n = 0
			}
			return n, err
		}
	}
}

// writeFD writes until b is done or the socket would block (EAGAIN is not
// an error: the count tells how much was taken).
func writeFD(fd int, b []byte) (int, error) {
	off := 0
	for off < len(b) {
		n, err := unix.Write(fd, b[off:])
		switch err {
		case nil:
			off += n
		case unix.EINTR:
		case unix.EAGAIN:
			return off, nil
		default:
			return off, err
		}
	}
	return off, nil
}

// readableWaiter returns how to wait, holding no buffer, until c has bytes
// to read (or its EOF or an error is pending), or nil if c has no socket the
// runtime's poller can watch. c may be the socket itself or a *tls.Conn
// past its handshake over one; that may hold records it already took from
// the socket, so the caller drains it before each wait (waiter.wrapped). The
// fallback uses it so an idle direction costs a parked goroutine but no
// buffer.
func readableWaiter(c net.Conn) *waiter {
	w := &waiter{}
	sock := c
	if tc, ok := c.(*tls.Conn); ok {
		// Before its handshake a read deadline would fail the handshake
		// for good; such a conn is copied through a buffer instead.
		if !tc.ConnectionState().HandshakeComplete {
			return nil
		}
		sock, w.wrapped = tc.NetConn(), true
	}
	if _, ok, err := rawFD(sock); !ok || err != nil {
		return nil
	}
	rc, err := sock.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil
	}
	w.wait = func() error {
		// The poller parks us between calls until the fd is readable; a
		// peek says whether it already is.
		var perr error
		err := rc.Read(func(fd uintptr) bool {
			var ok bool
			ok, perr = peek(int(fd))
			return ok || perr != nil
		})
		if err == nil {
			err = perr
		}
		return err
	}
	return w
}

// peek says whether fd has bytes or EOF to read. A socket error (a reset)
// is returned: the peek consumes it, and a read after would see EOF.
func peek(fd int) (bool, error) {
	var b [1]byte
	for {
		_, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch err {
		case nil:
			return true, nil
		case unix.EINTR:
		case unix.EAGAIN:
			return false, nil
		default:
			return false, err
		}
	}
}
