//go:build !linux

package relay

import "net"

// Without epoll every pair takes the goroutine fallback.
type loop struct{}

func (l *loop) stop() {}

func (r *Relay) startLoops(int) error { return nil }

func (r *Relay) spliceRaw(a, b net.Conn, aPending, bPending []byte, onClose func()) (bool, error) {
	return false, nil
}

// readableWaiter: without epoll the fallback always copies through a buffer.
func readableWaiter(net.Conn) *waiter { return nil }

func (r *Relay) spliceTLS(a, b net.Conn, aPending, bPending []byte, onClose func()) (bool, error) {
	return false, nil
}
