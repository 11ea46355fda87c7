package certfile_test

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/internal/certfile"
	"github.com/discovery-platform/discovery/internal/testkit/testca"
)

// syncBuffer is a log sink the reloader may write to from handshakes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// served does a real handshake against a TLS listener serving r and returns
// the common name the client saw.
// pollUntil calls cond on the test's goroutine (it may use require) every
// 10 ms until it holds, failing after 10 s.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "timed out waiting for: %s", what)
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

func served(t *testing.T, ln net.Listener, ca *testca.CA) string {
	t.Helper()
	c, err := tls.Dial("tcp", ln.Addr().String(), ca.ClientConfig())
	require.NoError(t, err)
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func TestReplacedFilesAreServedWithoutARestart(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.Write(t, certFile, keyFile, "first", 11)
	var logs syncBuffer
	r, err := certfile.New(certfile.Config{CertFile: certFile, KeyFile: keyFile, CheckEvery: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)

	raw, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln := tls.NewListener(raw, r.ServerConfig())
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				_ = c.Close()
			}()
		}
	}()
	assert.Equal(t, "first", served(t, ln, ca))

	ca.Write(t, certFile, keyFile, "second", 12)
	pollUntil(t, "the replaced certificate is served", func() bool { return served(t, ln, ca) == "second" })
	assert.Equal(t, int64(12), r.Certificate().Leaf.SerialNumber.Int64())
	assert.Contains(t, logs.String(), "TLS certificate reloaded")

	// A broken renewal keeps the working certificate and says so.
	require.NoError(t, os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\nnot a certificate\n"), 0o600))
	pollUntil(t, "a warning about the bad certificate", func() bool {
		assert.Equal(t, "second", served(t, ln, ca), "the previous certificate stays in service")
		return strings.Contains(logs.String(), "does not load")
	})
	assert.Equal(t, "second", served(t, ln, ca))
	assert.Equal(t, 1, strings.Count(logs.String(), "does not load"), "one warning per change, not per handshake")

	// A certificate that does not match the key is refused the same way.
	other, _ := ca.Issue(t, "mismatched", 13)
	require.NoError(t, os.WriteFile(certFile, other, 0o600))
	pollUntil(t, "a warning about the mismatched pair", func() bool {
		served(t, ln, ca)
		return strings.Count(logs.String(), "does not load") >= 2
	})
	assert.Equal(t, "second", served(t, ln, ca))
	assert.Contains(t, logs.String(), "private key does not match")
}

func TestNewRefusesUnusableFiles(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	_, err := certfile.New(certfile.Config{CertFile: certFile, KeyFile: keyFile})
	require.ErrorIs(t, err, certfile.ErrInvalid, "missing files")
	_, err = certfile.New(certfile.Config{CertFile: certFile})
	require.ErrorIs(t, err, certfile.ErrInvalid, "no key file named")

	ca.Write(t, certFile, keyFile, "ok", 2)
	require.NoError(t, os.WriteFile(keyFile, []byte("garbage"), 0o600))
	_, err = certfile.New(certfile.Config{CertFile: certFile, KeyFile: keyFile})
	require.ErrorIs(t, err, certfile.ErrInvalid, "a key that does not parse")
	assert.Contains(t, err.Error(), keyFile, "the error names the file")
}
