package main

import (
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// fdGuard keeps a gateway process from accepting a connection it could not
// proxy. A proxied session holds two fds (the client's and the replica's);
// at the process's fd limit the replica's dial fails and the client would
// get a 502. Several gateway processes share one listening socket, and the
// kernel hands a connection to whichever accepts first, unevenly: so a
// process whose free fds run low stops accepting, and the connections wait
// in the shared backlog for its siblings (or for its own sessions to end).
type fdGuard struct {
	net.Listener
	limit   int // RLIMIT_NOFILE (soft)
	base    int // fds open before serving (etcd, logs, listeners…)
	http    atomic.Int64
	relayed func() int // pairs the relay holds (2 fds each)
	closed  atomic.Bool
}

// fdReserve is how many fds a process keeps free beyond its sessions: the
// handshakes in flight (a hijacked conn not yet counted by the relay, its
// replica dial) and the platform's own needs (etcd reconnects, log files).
const fdReserve = 64

// newFDGuard wraps ln; without a limit to read it wraps nothing.
func newFDGuard(ln net.Listener, relayed func() int) net.Listener {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 || rl.Cur > 1<<30 {
		return ln
	}
	base := 32
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		base = len(ents)
	}
	return &fdGuard{Listener: ln, limit: int(rl.Cur), base: base, relayed: relayed}
}

// inUse estimates the fds the process holds: what it had before serving,
// the HTTP connections being served, and the relay's pairs.
func (g *fdGuard) inUse() int {
	return g.base + int(g.http.Load()) + 2*g.relayed()
}

func (g *fdGuard) Accept() (net.Conn, error) {
	for g.inUse()+fdReserve >= g.limit && !g.closed.Load() {
		time.Sleep(5 * time.Millisecond) // until sessions end; siblings take the backlog meanwhile
	}
	return g.Listener.Accept()
}

func (g *fdGuard) Close() error {
	g.closed.Store(true)
	return g.Listener.Close()
}

// track counts the HTTP connections being served (http.Server.ConnState):
// a hijacked one leaves the count, the relay counts it from then on.
func (g *fdGuard) track(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		g.http.Add(1)
	case http.StateHijacked, http.StateClosed:
		g.http.Add(-1)
	}
}
