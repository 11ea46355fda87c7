package main

import (
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFDGuardStopsAcceptingNearTheLimitAndResumes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var pairs atomic.Int64
	g := &fdGuard{Listener: ln, limit: 100 + fdReserve + 10, base: 100, relayed: func() int { return int(pairs.Load()) }}
	defer g.Close()

	// An HTTP connection being served counts one fd; hijacked, it leaves
	// the count (the relay counts its pair).
	g.track(nil, http.StateNew)
	require.Equal(t, 101, g.inUse())
	g.track(nil, http.StateHijacked)
	require.Equal(t, 100, g.inUse())

	pairs.Store(5) // 10 fds: no room left under the reserve
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := g.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer client.Close()
	select {
	case c := <-accepted:
		c.Close()
		t.Fatal("accepted a connection with no fds to spare")
	case <-time.After(100 * time.Millisecond): // it waits in the backlog meanwhile
	}

	pairs.Store(3) // sessions ended
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("did not accept once fds were free again")
	}
}
