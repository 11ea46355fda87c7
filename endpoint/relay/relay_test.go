package relay

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const waitFor = 10 * time.Second

// listener hands out connected TCP pairs on 127.0.0.1.
type listener struct {
	ln *net.TCPListener
}

func newListener(tb testing.TB) *listener {
	tb.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(tb, err)
	tb.Cleanup(func() { ln.Close() })
	return &listener{ln: ln}
}

// pair returns (dialed, accepted), two ends of one TCP connection.
func (l *listener) pair(tb testing.TB) (*net.TCPConn, *net.TCPConn) {
	tb.Helper()
	d, err := net.DialTCP("tcp", nil, l.ln.Addr().(*net.TCPAddr))
	require.NoError(tb, err)
	a, err := l.ln.AcceptTCP()
	require.NoError(tb, err)
	return d, a
}

// session is client <-> [a relay b] <-> server.
type session struct {
	client, server *net.TCPConn
	a, b           *net.TCPConn
	closed         chan struct{} // closed by onClose
	calls          atomic.Int32  // onClose calls
}

// newSession makes the two TCP pairs without splicing them.
func newSession(tb testing.TB, l *listener) *session {
	tb.Helper()
	s := &session{closed: make(chan struct{})}
	s.client, s.a = l.pair(tb)
	s.b, s.server = l.pair(tb)
	tb.Cleanup(func() {
		s.client.Close()
		s.server.Close()
	})
	return s
}

func (s *session) onClose() {
	if s.calls.Add(1) == 1 {
		close(s.closed)
	}
}

func (s *session) splice(tb testing.TB, r *Relay, aPending, bPending []byte) {
	tb.Helper()
	require.NoError(tb, r.Splice(s.a, s.b, aPending, bPending, s.onClose))
}

func spliced(tb testing.TB, r *Relay, l *listener) *session {
	s := newSession(tb, l)
	s.splice(tb, r, nil, nil)
	return s
}

func newRelay(tb testing.TB, cfg Config) *Relay {
	tb.Helper()
	r, err := New(cfg)
	require.NoError(tb, err)
	tb.Cleanup(func() { r.Close() })
	return r
}

func deadline(c net.Conn) { c.SetDeadline(time.Now().Add(waitFor)) }

func writeRead(t testing.TB, w, r net.Conn, msg []byte) {
	t.Helper()
	writeExpect(t, w, r, msg, msg)
}

// writeExpect writes msg to w and expects to read want from r.
func writeExpect(t testing.TB, w, r net.Conn, msg, want []byte) {
	t.Helper()
	deadline(w)
	deadline(r)
	_, err := w.Write(msg)
	require.NoError(t, err)
	got := make([]byte, len(want))
	_, err = io.ReadFull(r, got)
	require.NoError(t, err)
	require.Equal(t, want, got)
}

// readEOF reads until EOF (or a reset) and returns what it read.
func readEOF(t testing.TB, c net.Conn) ([]byte, error) {
	t.Helper()
	deadline(c)
	return io.ReadAll(c)
}

func waitClosed(t testing.TB, s *session) {
	t.Helper()
	select {
	case <-s.closed:
	case <-time.After(waitFor):
		t.Fatal("onClose not called")
	}
}

func TestEchoBothDirections(t *testing.T) {
	r := newRelay(t, Config{Loops: 2})
	l := newListener(t)
	var ss []*session
	for range 4 { // spread over both loops
		ss = append(ss, spliced(t, r, l))
	}
	require.Equal(t, 4, r.Len())
	for _, s := range ss {
		for i := range 50 {
			writeRead(t, s.client, s.server, fmt.Appendf(nil, "ping %d", i))
			writeRead(t, s.server, s.client, fmt.Appendf(nil, "pong %d", i))
		}
	}
	require.Eventually(t, func() bool { return r.bufsOut.Load() == 0 }, waitFor, time.Millisecond,
		"idle pairs hold no buffer")
	for _, s := range ss {
		require.Zero(t, s.calls.Load())
	}
}

func TestUnixSockets(t *testing.T) {
	r := newRelay(t, Config{Loops: 1})
	dir := t.TempDir()
	upair := func(name string) (net.Conn, net.Conn) {
		ln, err := net.Listen("unix", filepath.Join(dir, name))
		require.NoError(t, err)
		defer ln.Close()
		d, err := net.Dial("unix", ln.Addr().String())
		require.NoError(t, err)
		a, err := ln.Accept()
		require.NoError(t, err)
		t.Cleanup(func() { d.Close(); a.Close() })
		return d, a
	}
	client, a := upair("1")
	b, server := upair("2")
	done := make(chan struct{})
	require.NoError(t, r.Splice(a, b, nil, nil, func() { close(done) }))
	writeRead(t, client, server, []byte("over unix"))
	writeRead(t, server, client, []byte("and back"))
	require.NoError(t, client.Close())
	_, err := readEOF(t, server)
	require.NoError(t, err)
	require.NoError(t, server.Close())
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("onClose not called")
	}
}

// stream writes n bytes of deterministic data in 1 MiB chunks (each stamped
// with its index, so reordering changes the hash) and returns its SHA-256.
func stream(w io.Writer, n int, seed uint64) ([]byte, error) {
	block := make([]byte, 1<<20)
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	mrand.NewChaCha8(s).Read(block)
	h := sha256.New()
	for i := 0; n > 0; i++ {
		binary.LittleEndian.PutUint64(block, uint64(i))
		chunk := block[:min(n, len(block))]
		if _, err := w.Write(chunk); err != nil {
			return nil, err
		}
		h.Write(chunk)
		n -= len(chunk)
	}
	return h.Sum(nil), nil
}

// hashInto feeds exactly n bytes of r into h.
func hashInto(h io.Writer, r io.Reader, n int) error {
	got, err := io.CopyBuffer(h, io.LimitReader(r, int64(n)), make([]byte, 256<<10))
	if err == nil && got != int64(n) {
		err = fmt.Errorf("short stream: %d of %d bytes", got, n)
	}
	return err
}

func TestLargeTransferBackpressure(t *testing.T) {
	const size = 64 << 20
	r := newRelay(t, Config{Loops: 1})
	s := spliced(t, r, newListener(t))

	// Sample how many buffers the relay holds during the whole transfer.
	var maxBufs atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if n := r.bufsOut.Load(); n > maxBufs.Load() {
				maxBufs.Store(n)
			}
			select {
			case <-stopSampling:
				return
			default:
				runtime.Gosched()
			}
		}
	}()

	var written atomic.Int64
	type result struct {
		sum []byte
		err error
	}
	sent := make(chan result, 1)
	go func() {
		s.client.SetWriteDeadline(time.Now().Add(2 * time.Minute))
		sum, err := stream(countingWriter{s.client, &written}, size, 1)
		sent <- result{sum, err}
	}()

	// The server does not read yet: the relay must stop reading the client
	// and keep exactly one buffer of pending bytes, while the client blocks
	// once the socket buffers are full.
	last := int64(-1)
	require.Eventually(t, func() bool {
		w := written.Load()
		stalled := w == last && w > 0 && r.bufsOut.Load() == 1
		last = w
		return stalled
	}, waitFor, 20*time.Millisecond, "client should stall, the relay holding one pending buffer")
	w1 := written.Load()
	require.Less(t, w1, int64(size), "client should be blocked by backpressure")
	t.Logf("client stalled after writing %d KiB, server not reading", w1>>10)

	// Slow reader first: small reads, then the rest at full speed.
	s.server.SetReadDeadline(time.Now().Add(2 * time.Minute))
	h := sha256.New()
	small := make([]byte, 1024)
	got := 0
	for range 64 {
		n, err := s.server.Read(small)
		require.NoError(t, err)
		h.Write(small[:n])
		got += n
		time.Sleep(200 * time.Microsecond) // pacing, not synchronisation
	}
	require.NoError(t, hashInto(h, s.server, size-got))
	close(stopSampling)
	<-sampled

	res := <-sent
	require.NoError(t, res.err)
	require.Equal(t, res.sum, h.Sum(nil), "stream corrupted, lost or reordered")
	require.LessOrEqual(t, maxBufs.Load(), int64(1), "one direction holds at most one buffer")
	require.Eventually(t, func() bool { return r.bufsOut.Load() == 0 }, waitFor, time.Millisecond)
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func TestBidirectionalBulk(t *testing.T) {
	const size = 16 << 20
	r := newRelay(t, Config{Loops: 1, BufferSize: 4 << 10})
	s := spliced(t, r, newListener(t))
	s.client.SetDeadline(time.Now().Add(2 * time.Minute))
	s.server.SetDeadline(time.Now().Add(2 * time.Minute))

	type result struct {
		sum []byte
		err error
	}
	up, down := make(chan result, 1), make(chan result, 1)
	go func() { sum, err := stream(s.client, size, 2); up <- result{sum, err} }()
	go func() { sum, err := stream(s.server, size, 3); down <- result{sum, err} }()
	hUp, hDown := sha256.New(), sha256.New()
	errDown := make(chan error, 1)
	go func() { errDown <- hashInto(hDown, s.client, size) }()
	require.NoError(t, hashInto(hUp, s.server, size))
	require.NoError(t, <-errDown)
	u, d := <-up, <-down
	require.NoError(t, u.err)
	require.NoError(t, d.err)
	require.Equal(t, u.sum, hUp.Sum(nil))
	require.Equal(t, d.sum, hDown.Sum(nil))
	require.Eventually(t, func() bool { return r.bufsOut.Load() == 0 }, waitFor, time.Millisecond)
}

func TestManyPairs(t *testing.T) {
	const pairs, rounds = 2000, 5
	r := newRelay(t, Config{})
	l := newListener(t)
	ss := make([]*session, pairs)
	for i := range ss {
		ss[i] = spliced(t, r, l)
	}
	require.Equal(t, pairs, r.Len())

	errs := make(chan error, 2*pairs)
	var wg sync.WaitGroup
	for i, s := range ss {
		wg.Add(2)
		go func() { // server: echo until EOF, then close
			defer wg.Done()
			deadline(s.server)
			_, err := io.Copy(s.server, s.server)
			s.server.Close()
			errs <- err
		}()
		go func() { // client: rounds of request/echo, then close
			defer wg.Done()
			deadline(s.client)
			for j := range rounds {
				msg := fmt.Appendf(nil, "pair %d round %d", i, j)
				if _, err := s.client.Write(msg); err != nil {
					errs <- err
					return
				}
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(s.client, got); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, msg) {
					errs <- fmt.Errorf("pair %d: got %q want %q", i, got, msg)
					return
				}
			}
			errs <- s.client.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, s := range ss {
		waitClosed(t, s)
		require.EqualValues(t, 1, s.calls.Load())
	}
	require.Zero(t, r.Len())
	require.Zero(t, r.bufsOut.Load())
}

func TestClientCloseServerSeesEOF(t *testing.T) {
	r := newRelay(t, Config{})
	s := spliced(t, r, newListener(t))
	writeRead(t, s.client, s.server, []byte("hello"))
	require.NoError(t, s.client.Close())
	got, err := readEOF(t, s.server)
	require.NoError(t, err)
	require.Empty(t, got)
	require.NoError(t, s.server.Close())
	waitClosed(t, s)
	require.Zero(t, r.Len())
}

func TestServerCloseClientSeesEOF(t *testing.T) {
	r := newRelay(t, Config{})
	s := spliced(t, r, newListener(t))
	writeRead(t, s.server, s.client, []byte("hello"))
	_, err := s.server.Write([]byte("bye"))
	require.NoError(t, err)
	require.NoError(t, s.server.Close())
	got, err := readEOF(t, s.client)
	require.NoError(t, err)
	require.Equal(t, "bye", string(got))
	require.NoError(t, s.client.Close())
	waitClosed(t, s)
	require.Zero(t, r.Len())
}

func TestHalfClose(t *testing.T) {
	r := newRelay(t, Config{})
	s := spliced(t, r, newListener(t))
	_, err := s.client.Write([]byte("request"))
	require.NoError(t, err)
	require.NoError(t, s.client.CloseWrite())

	req, err := readEOF(t, s.server)
	require.NoError(t, err)
	require.Equal(t, "request", string(req))
	require.Equal(t, 1, r.Len(), "half-closed pair stays open")

	// The other direction still works after the client's FIN.
	for i := range 10 {
		_, err = fmt.Fprintf(s.server, "reply %d;", i)
		require.NoError(t, err)
	}
	require.NoError(t, s.server.Close())
	reply, err := readEOF(t, s.client)
	require.NoError(t, err)
	require.Equal(t, "reply 0;reply 1;reply 2;reply 3;reply 4;reply 5;reply 6;reply 7;reply 8;reply 9;", string(reply))
	waitClosed(t, s)
	require.Zero(t, r.Len())
}

func TestHalfCloseTimeoutEndsAPeerThatNeverCloses(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			r := newRelay(t, Config{HalfCloseTimeout: 200 * time.Millisecond})
			s := newSession(t, newListener(t))
			if useTLS {
				// Wrap the relay's side in TLS so the fallback path runs.
				srv, cli := testTLSConfigs(t)
				ta := tls.Server(s.a, srv)
				tc := tls.Client(s.client, cli)
				hs := make(chan error, 1)
				go func() { hs <- tc.Handshake() }()
				require.NoError(t, ta.Handshake())
				require.NoError(t, <-hs)
				require.NoError(t, r.Splice(ta, s.b, nil, nil, s.onClose))
				require.NoError(t, tc.CloseWrite())
			} else {
				s.splice(t, r, nil, nil)
				require.NoError(t, s.client.CloseWrite())
			}
			// The server reads the EOF but never closes its side.
			_, err := readEOF(t, s.server)
			require.NoError(t, err)
			waitClosed(t, s)
			require.Zero(t, r.Len())
		})
	}
}

func TestPendingDeliveredFirst(t *testing.T) {
	r := newRelay(t, Config{})
	s := newSession(t, newListener(t))
	s.splice(t, r, []byte("A-pending|"), []byte("B-pending|"))
	writeExpect(t, s.client, s.server, []byte("from client"), []byte("A-pending|from client"))
	writeExpect(t, s.server, s.client, []byte("from server"), []byte("B-pending|from server"))
}

func TestLargePendingDeliveredFirst(t *testing.T) {
	// Pending bytes bigger than the socket buffers: flushed under backpressure.
	const size = 8 << 20
	pending := make([]byte, size)
	mrand.NewChaCha8([32]byte{4}).Read(pending)
	r := newRelay(t, Config{})
	s := newSession(t, newListener(t))
	s.splice(t, r, pending, nil)
	_, err := s.client.Write([]byte("tail"))
	require.NoError(t, err)
	got := make([]byte, size+4)
	deadline(s.server)
	_, err = io.ReadFull(s.server, got)
	require.NoError(t, err)
	require.True(t, bytes.Equal(pending, got[:size]))
	require.Equal(t, "tail", string(got[size:]))
}

func setReset(t *testing.T, c *net.TCPConn) {
	require.NoError(t, c.SetLinger(0))
	require.NoError(t, c.Close())
}

func TestClientReset(t *testing.T) {
	r := newRelay(t, Config{})
	s := spliced(t, r, newListener(t))
	writeRead(t, s.client, s.server, []byte("hello"))
	setReset(t, s.client)
	waitClosed(t, s)
	require.Zero(t, r.Len())
	_, err := readEOF(t, s.server) // the relay closed b: plain EOF
	require.NoError(t, err)
}

func TestServerResetDuringTransfer(t *testing.T) {
	r := newRelay(t, Config{})
	s := spliced(t, r, newListener(t))
	writeErr := make(chan error, 1)
	go func() {
		s.client.SetWriteDeadline(time.Now().Add(waitFor))
		_, err := stream(s.client, 256<<20, 5)
		writeErr <- err
	}()
	deadline(s.server)
	_, err := io.ReadFull(s.server, make([]byte, 1<<20))
	require.NoError(t, err)
	setReset(t, s.server)
	waitClosed(t, s)
	require.Zero(t, r.Len())
	require.Error(t, <-writeErr, "client writes fail once the relay closed its side")
	require.Eventually(t, func() bool { return r.bufsOut.Load() == 0 }, waitFor, time.Millisecond)
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

func TestRelayCloseClosesEverything(t *testing.T) {
	l := newListener(t)
	var sessions []*session
	for range 20 {
		sessions = append(sessions, newSession(t, l))
	}
	runtime.GC()
	baseG := runtime.NumGoroutine()
	baseFD := openFDs(t)

	r, err := New(Config{Loops: 3})
	require.NoError(t, err)
	for i, s := range sessions {
		if i%2 == 0 {
			s.splice(t, r, nil, nil)
		} else { // goroutine fallback
			require.NoError(t, r.Splice(opaque{s.a}, opaque{s.b}, nil, nil, s.onClose))
		}
	}
	require.Equal(t, 20, r.Len())
	require.Greater(t, runtime.NumGoroutine(), baseG)
	// One pair under backpressure holds a buffer when Close comes.
	bp := sessions[0]
	go stream(bp.client, 64<<20, 6) //nolint:errcheck // fails when closed
	require.Eventually(t, func() bool { return r.bufsOut.Load() >= 1 }, waitFor, time.Millisecond)
	writeRead(t, sessions[2].client, sessions[2].server, []byte("alive"))
	writeRead(t, sessions[3].client, sessions[3].server, []byte("alive too"))

	require.NoError(t, r.Close())
	for _, s := range sessions {
		require.EqualValues(t, 1, s.calls.Load(), "every onClose ran before Close returned")
	}
	require.Zero(t, r.Len())
	require.Zero(t, r.bufsOut.Load())
	for _, s := range sessions[1:] {
		_, err := readEOF(t, s.client)
		require.NoError(t, err)
		_, err = readEOF(t, s.server)
		require.NoError(t, err)
	}
	require.ErrorIs(t, r.Splice(sessions[0].client, sessions[0].server, nil, nil, nil), ErrClosed)
	require.NoError(t, r.Close(), "Close is idempotent")

	waitGoroutines(t, baseG)
	// Relay-side conns, epoll and eventfd fds are all closed.
	require.Eventually(t, func() bool { return openFDs(t) <= baseFD-2*len(sessions) }, waitFor, time.Millisecond)
}

// waitGoroutines polls (on this goroutine: require.Eventually would add one of
// its own) until at most base goroutines are left, and dumps them otherwise.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	for end := time.Now().Add(waitFor); runtime.NumGoroutine() > base; {
		if time.Now().After(end) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines leaked: %d > %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond) // polling interval
	}
}

// opaque hides everything but net.Conn (no SyscallConn, no CloseWrite).
type opaque struct{ net.Conn }

func TestSpliceAfterCloseAndErrors(t *testing.T) {
	r, err := New(Config{})
	require.NoError(t, err)
	require.NoError(t, r.Close())
	s := newSession(t, newListener(t))
	require.ErrorIs(t, r.Splice(s.a, s.b, nil, nil, nil), ErrClosed)
	require.ErrorIs(t, r.Splice(opaque{s.a}, opaque{s.b}, nil, nil, nil), ErrClosed)

	r = newRelay(t, Config{})
	require.Error(t, r.Splice(s.a, s.a, nil, nil, nil))
	require.Error(t, r.Splice(nil, s.b, nil, nil, nil))
	s.a.Close()
	require.Error(t, r.Splice(s.a, s.b, nil, nil, nil), "closed conn")
	require.Zero(t, r.Len())
}

// ---- TLS fallback ----

func testTLSConfigs(t testing.TB) (server, client *tls.Config) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "relay test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	return server, client
}

// pairKind tells how the relay serves its one pair off the loops'
// sockets: "TLS", "fallback" or "" (none).
func pairKind(r *Relay) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for gp := range r.goPairs {
		if _, ok := gp.(*fbPair); ok {
			return "fallback"
		}
		return "TLS"
	}
	return ""
}

func TestTLSFallback(t *testing.T) {
	srvCfg, cliCfg := testTLSConfigs(t)
	r := newRelay(t, Config{})
	s := newSession(t, newListener(t))
	// client =TLS= a [relay] b =TLS= server: the relay terminates TLS on both sides.
	client := tls.Client(s.client, cliCfg)
	server := tls.Server(s.server, srvCfg)
	a := tls.Server(s.a, srvCfg)
	b := tls.Client(s.b, cliCfg)
	baseG := runtime.NumGoroutine()
	require.NoError(t, r.Splice(a, b, []byte("A:"), []byte("B:"), s.onClose))
	require.Equal(t, 1, r.Len())
	require.Equal(t, "fallback", pairKind(r), "TLS conns before their handshake are copied by the fallback's goroutines")

	writeExpect(t, client, server, []byte("hello server"), []byte("A:hello server"))
	writeExpect(t, server, client, []byte("hello client"), []byte("B:hello client"))
	for i := range 20 {
		writeRead(t, client, server, fmt.Appendf(nil, "up %d", i))
		writeRead(t, server, client, fmt.Appendf(nil, "down %d", i))
	}

	// Half-close through TLS: close_notify + FIN travel, the reply still flows.
	_, err := client.Write([]byte("last request"))
	require.NoError(t, err)
	require.NoError(t, client.CloseWrite())
	req, err := readEOF(t, server)
	require.NoError(t, err)
	require.Equal(t, "last request", string(req))
	_, err = server.Write([]byte("last reply"))
	require.NoError(t, err)
	require.NoError(t, server.Close())
	reply, err := readEOF(t, client)
	require.NoError(t, err)
	require.Equal(t, "last reply", string(reply))
	waitClosed(t, s)
	require.Zero(t, r.Len())
	waitGoroutines(t, baseG)
	require.Zero(t, r.bufsOut.Load())
}

func TestMixedFallback(t *testing.T) {
	// Client side is plain TCP, replica side TLS: one raw conn is not enough.
	srvCfg, cliCfg := testTLSConfigs(t)
	r := newRelay(t, Config{})
	s := newSession(t, newListener(t))
	server := tls.Server(s.server, srvCfg)
	require.NoError(t, r.Splice(s.a, tls.Client(s.b, cliCfg), nil, nil, s.onClose))
	writeRead(t, s.client, server, []byte("plain to tls"))
	writeRead(t, server, s.client, []byte("tls to plain"))
	require.NoError(t, s.client.Close())
	_, err := readEOF(t, server)
	require.NoError(t, err)
	require.NoError(t, server.Close())
	waitClosed(t, s)
	require.Zero(t, r.Len())
}

func TestPipeFallback(t *testing.T) {
	// net.Pipe has neither an fd nor CloseWrite: EOF on one side closes both.
	r := newRelay(t, Config{})
	client, a := net.Pipe()
	b, server := net.Pipe()
	done := make(chan struct{})
	require.NoError(t, r.Splice(a, b, nil, nil, func() { close(done) }))
	writeRead(t, client, server, []byte("x"))
	writeRead(t, server, client, []byte("y"))
	require.NoError(t, client.Close())
	_, err := readEOF(t, server)
	require.NoError(t, err)
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("onClose not called")
	}
	require.Zero(t, r.Len())
}

func TestBlockingWait(t *testing.T) {
	l := newListener(t)
	s1, s2 := newSession(t, l), newSession(t, l)
	baseG := runtime.NumGoroutine()
	r := newRelay(t, Config{Loops: 2, BlockingWait: true})
	s1.splice(t, r, nil, nil)
	s2.splice(t, r, []byte("p:"), nil)
	for i := range 20 {
		writeRead(t, s1.client, s1.server, fmt.Appendf(nil, "up %d", i))
		writeRead(t, s1.server, s1.client, fmt.Appendf(nil, "down %d", i))
	}
	writeExpect(t, s2.client, s2.server, []byte("x"), []byte("p:x"))
	require.NoError(t, s1.client.Close())
	_, err := readEOF(t, s1.server)
	require.NoError(t, err)
	require.NoError(t, s1.server.Close())
	waitClosed(t, s1)
	require.NoError(t, r.Close())
	waitClosed(t, s2)
	waitGoroutines(t, baseG)
}

// batchConn holds what it is given while batching and writes it to the
// socket at once on flush: TLS records that then arrive in one segment.
type batchConn struct {
	net.Conn
	mu       sync.Mutex
	batching bool
	buf      []byte
}

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.batching {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// records writes each message as its own TLS record, all in one TCP write.
func (c *batchConn) records(t *testing.T, tc *tls.Conn, msgs ...string) {
	t.Helper()
	c.mu.Lock()
	c.batching = true
	c.mu.Unlock()
	for _, m := range msgs {
		_, err := tc.Write([]byte(m))
		require.NoError(t, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batching = false
	_, err := c.Conn.Write(c.buf)
	c.buf = nil
	require.NoError(t, err)
}

// A wss session as the gateway has it: the client's side a *tls.Conn past
// its handshake, the replica's a plain socket. Idle, neither direction
// holds a buffer; records the *tls.Conn took from the socket together (at
// the hand-off, and later in bursts) are relayed without waiting for more.
func TestTLSSessionHoldsNoBufferWhileIdle(t *testing.T) {
	srvCfg, cliCfg := testTLSConfigs(t)
	r := newRelay(t, Config{})
	s := newSession(t, newListener(t))
	wire := &batchConn{Conn: s.client}
	client := tls.Client(wire, cliCfg)
	a := tls.Server(s.a, srvCfg)
	hs := make(chan error, 1)
	go func() { hs <- client.Handshake() }()
	deadline(a)
	require.NoError(t, a.Handshake())
	require.NoError(t, <-hs)

	// The handshake's reader took "hello" and, in the same socket read,
	// the next record, which now waits inside the *tls.Conn.
	wire.records(t, client, "hello", " world")
	got := make([]byte, 5)
	_, err := io.ReadFull(a, got)
	require.NoError(t, err)
	require.Equal(t, "hello", string(got))
	require.NoError(t, a.SetDeadline(time.Time{}))

	require.NoError(t, r.Splice(a, s.b, nil, nil, s.onClose))
	deadline(s.server)
	got = make([]byte, 6)
	_, err = io.ReadFull(s.server, got)
	require.NoError(t, err, "the record held at the hand-off is relayed")
	require.Equal(t, " world", string(got))

	for i := range 20 {
		writeRead(t, client, s.server, fmt.Appendf(nil, "up %d", i))
		writeRead(t, s.server, client, fmt.Appendf(nil, "down %d", i))
	}
	// A burst: three records in one segment, read from the socket at once.
	wire.records(t, client, "a", "b", "c")
	got = make([]byte, 3)
	_, err = io.ReadFull(s.server, got)
	require.NoError(t, err, "records read along with the first are relayed")
	require.Equal(t, "abc", string(got))

	require.Eventually(t, func() bool { return r.bufsOut.Load() == 0 }, waitFor, time.Millisecond,
		"an idle TLS session holds no buffer")

	// Half-close through TLS: close_notify ends the client's direction,
	// the reply still flows.
	_, err = client.Write([]byte("last"))
	require.NoError(t, err)
	require.NoError(t, client.CloseWrite())
	req, err := readEOF(t, s.server)
	require.NoError(t, err)
	require.Equal(t, "last", string(req))
	_, err = s.server.Write([]byte("bye"))
	require.NoError(t, err)
	require.NoError(t, s.server.Close())
	reply, err := readEOF(t, client)
	require.NoError(t, err)
	require.Equal(t, "bye", string(reply))
	waitClosed(t, s)
	require.Zero(t, r.Len())
	require.Zero(t, r.bufsOut.Load())
}
