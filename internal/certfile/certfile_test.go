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
	"github.com/discovery-platform/discovery/internal/testca"
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
	deadline := time.Now().Add(10 * time.Second)
	for served(t, ln, ca) != "second" {
		require.True(t, time.Now().Before(deadline), "the replaced certificate was never served")
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	assert.Equal(t, int64(12), r.Certificate().Leaf.SerialNumber.Int64())
	assert.Contains(t, logs.String(), "TLS certificate reloaded")

	// A broken renewal keeps the working certificate and says so.
	require.NoError(t, os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\nnot a certificate\n"), 0o600))
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "does not load") {
		require.True(t, time.Now().Before(deadline), "no warning about the bad certificate")
		assert.Equal(t, "second", served(t, ln, ca), "the previous certificate stays in service")
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	assert.Equal(t, "second", served(t, ln, ca))
	assert.Equal(t, 1, strings.Count(logs.String(), "does not load"), "one warning per change, not per handshake")

	// A certificate that does not match the key is refused the same way.
	other, _ := ca.Issue(t, "mismatched", 13)
	require.NoError(t, os.WriteFile(certFile, other, 0o600))
	deadline = time.Now().Add(10 * time.Second)
	for strings.Count(logs.String(), "does not load") < 2 {
		require.True(t, time.Now().Before(deadline), "no warning about the mismatched pair")
		served(t, ln, ca)
		time.Sleep(10 * time.Millisecond) // poll interval
	}
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
