package relay

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// inUse is heap-in-use + stack-in-use after a full collection (two, so that
// sync.Pool's victim cache is dropped too).
func inUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

func benchPairs(b *testing.B) int {
	n := 2000
	if v := os.Getenv("RELAY_BENCH_PAIRS"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(b, err)
	}
	// 4 fds per pair in this process (client, a, b, server); ulimit -n is 20000.
	require.True(b, n > 0 && n <= 4000, "RELAY_BENCH_PAIRS must be in 1..4000")
	return n
}

// BenchmarkIdlePairMemory measures what the relay itself holds per idle pair:
// the baseline is the same N conn quadruples (client, a, b, server) held open
// without the relay; then every pair is spliced, exchanges one message each way
// and goes idle. "goroutines" forces the fallback (two goroutines copying with
// pooled buffers) on the same sockets for comparison; "tls" is a wss session
// as the gateway holds it: the client's side a *tls.Conn past its handshake
// (made before the baseline), the replica's a plain socket.
func BenchmarkIdlePairMemory(b *testing.B) {
	for _, mode := range []string{"epoll", "goroutines", "tls"} {
		b.Run(mode, func(b *testing.B) {
			n := benchPairs(b)
			l := newListener(b)
			before := inUse()
			ss := make([]*session, n)
			clients := make([]net.Conn, n) // what the player writes to and reads from
			relayA := make([]net.Conn, n)  // the relay's client side
			var srvCfg, cliCfg *tls.Config
			if mode == "tls" {
				srvCfg, cliCfg = testTLSConfigs(b)
			}
			for i := range ss {
				ss[i] = newSession(b, l)
				clients[i], relayA[i] = ss[i].client, ss[i].a
				switch mode {
				case "goroutines":
					relayA[i] = opaque{ss[i].a}
				case "tls":
					c, a := tls.Client(ss[i].client, cliCfg), tls.Server(ss[i].a, srvCfg)
					hs := make(chan error, 1)
					go func() { hs <- c.Handshake() }()
					require.NoError(b, a.Handshake())
					require.NoError(b, <-hs)
					clients[i], relayA[i] = c, a
				}
			}
			baseMem := inUse()
			baseG := runtime.NumGoroutine()

			r, err := New(Config{})
			require.NoError(b, err)
			msg, got := []byte("0123456789abcdef0123456789abcdef"), make([]byte, 32)
			for i, s := range ss {
				var relayB net.Conn = s.b
				if mode == "goroutines" {
					relayB = opaque{s.b}
				}
				require.NoError(b, r.Splice(relayA[i], relayB, nil, nil, nil))
				// One round trip: the pair is live, then idle.
				for _, dir := range [][2]net.Conn{{clients[i], s.server}, {s.server, clients[i]}} {
					_, err := dir[0].Write(msg)
					require.NoError(b, err)
					_, err = io.ReadFull(dir[1], got)
					require.NoError(b, err)
				}
			}
			relayMem := inUse()
			relayG := runtime.NumGoroutine()
			require.Equal(b, n, r.Len())

			for range b.N { // the measurement is one-shot; ns/op is setup time
			}
			b.ReportMetric(float64(int64(relayMem)-int64(baseMem))/float64(n), "B/pair")
			b.ReportMetric(float64(relayG-baseG)/float64(n), "goroutines/pair")
			b.ReportMetric(float64(int64(baseMem)-int64(before))/float64(n), "conns-B/pair")
			b.ReportMetric(float64(n), "pairs")

			b.StopTimer()
			require.NoError(b, r.Close())
			require.Zero(b, r.Len())
		})
	}
}

// BenchmarkEchoRoundTrip: one pair, a 32-byte message client -> server and
// its echo back. "direct" is the same without the relay; "tls" is a wss
// session as the gateway holds it (the client's side a *tls.Conn past its
// handshake, the replica's plain), so the CPU includes the client's and the
// relay's encryption; "tls-nolinger" the same with TLSLinger < 0 (a loop
// event and a new goroutine per frame).
func BenchmarkEchoRoundTrip(b *testing.B) {
	for _, mode := range []string{"relay", "direct", "tls", "tls-nolinger"} {
		b.Run(mode, func(b *testing.B) {
			l := newListener(b)
			var client, server net.Conn
			switch mode {
			case "direct":
				client, server = l.pair(b)
				b.Cleanup(func() { client.Close(); server.Close() })
			case "relay":
				r := newRelay(b, Config{})
				s := spliced(b, r, l)
				client, server = s.client, s.server
			case "tls", "tls-nolinger":
				cfg := Config{}
				if mode == "tls-nolinger" {
					cfg.TLSLinger = -1
				}
				r := newRelay(b, cfg)
				s := newSession(b, l)
				srvCfg, cliCfg := testTLSConfigs(b)
				c, a := tls.Client(s.client, cliCfg), tls.Server(s.a, srvCfg)
				hs := make(chan error, 1)
				go func() { hs <- c.Handshake() }()
				require.NoError(b, a.Handshake())
				require.NoError(b, <-hs)
				require.NoError(b, r.Splice(a, s.b, nil, nil, nil))
				client, server = c, s.server
			}
			go func() { // echo
				buf := make([]byte, 32)
				for {
					if _, err := io.ReadFull(server, buf); err != nil {
						return
					}
					if _, err := server.Write(buf); err != nil {
						return
					}
				}
			}()
			client.SetDeadline(time.Now().Add(5 * time.Minute))
			msg, got := make([]byte, 32), make([]byte, 32)
			b.ResetTimer()
			cpu := cpuTime()
			for range b.N {
				if _, err := client.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(client, got); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-us/op")
			client.Close()
		})
	}
}

// BenchmarkBulk moves 8 MiB one way per op through one pair.
func BenchmarkBulk(b *testing.B) {
	const size = 8 << 20
	r := newRelay(b, Config{})
	s := spliced(b, r, newListener(b))
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 256<<10)
		_, err := io.CopyBuffer(io.Discard, io.LimitReader(s.server, int64(size)*int64(b.N)), buf)
		done <- err
	}()
	chunk := make([]byte, 256<<10)
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		for off := 0; off < size; off += len(chunk) {
			if _, err := s.client.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
	}
	require.NoError(b, <-done)
}

// BenchmarkEchoParallel: 256 pairs, each with its own echo server goroutine,
// driven concurrently (32-byte messages); ns/op is per round trip overall.
func BenchmarkEchoParallel(b *testing.B) {
	const pairs = 256
	r := newRelay(b, Config{})
	l := newListener(b)
	free := make(chan *session, pairs)
	for range pairs {
		s := spliced(b, r, l)
		go func() {
			buf := make([]byte, 32)
			for {
				if _, err := io.ReadFull(s.server, buf); err != nil {
					return
				}
				if _, err := s.server.Write(buf); err != nil {
					return
				}
			}
		}()
		free <- s
	}
	b.SetParallelism(pairs / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		s := <-free
		msg, got := make([]byte, 32), make([]byte, 32)
		for pb.Next() {
			if _, err := s.client.Write(msg); err != nil {
				b.Error(err)
				return
			}
			if _, err := io.ReadFull(s.client, got); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// cpuTime is the CPU time (user + system) this process has used: the
// benchmark, its echo server and the relay alike; compare modes.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
