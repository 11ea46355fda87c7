// Package certfile serves a TLS certificate kept in two PEM files (written by
// an operator, certbot or cert-manager) and picks up a replaced pair without a
// restart. Handshakes look at the files' modification time and size at most
// once per CheckEvery; a changed pair is loaded, and a pair that does not load
// (half written, key and certificate not matching) leaves the previous
// certificate in service and logs a warning, so a botched renewal never takes
// TLS down.
package certfile

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ErrInvalid is a certificate or key file that cannot be used.
var ErrInvalid = errors.New("certfile: invalid certificate")

// Config names the files and how often to look at them.
type Config struct {
	CertFile, KeyFile string
	// CheckEvery bounds how often a handshake stats the files (default 1 s):
	// often enough that a renewal is seen at once, rare enough to cost nothing.
	CheckEvery time.Duration
	Logger     *slog.Logger
}

// Reloader holds the current certificate; its GetCertificate is safe for
// concurrent handshakes.
type Reloader struct {
	cfg  Config
	cert atomic.Pointer[tls.Certificate]

	mu      sync.Mutex // one handshake checks the files; the others go on
	checked time.Time  // guarded by mu
	seen    stamp      // files' stamp last looked at, loaded or not; guarded by mu
}

// stamp tells whether either file changed.
type stamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

// New loads the pair now: a platform must not start serving TLS without a
// usable certificate.
func New(cfg Config) (*Reloader, error) {
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, fmt.Errorf("%w: both a certificate file and a key file are needed", ErrInvalid)
	}
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Reloader{cfg: cfg}
	st, err := r.stat()
	if err != nil {
		return nil, err
	}
	cert, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cert.Store(cert)
	r.seen, r.checked = st, time.Now()
	return r, nil
}

// GetCertificate is tls.Config.GetCertificate: the current certificate,
// reloaded first when the files changed.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.maybeReload()
	return r.cert.Load(), nil
}

// Certificate is the certificate in service now.
func (r *Reloader) Certificate() *tls.Certificate { return r.cert.Load() }

// ServerConfig is a TLS server configuration serving the reloaded certificate.
// It offers HTTP/1.1 only: WebSocket upgrades need a connection the gateway
// can take over, which HTTP/2 does not give.
func (r *Reloader) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.GetCertificate,
		NextProtos:     []string{"http/1.1"},
	}
}

func (r *Reloader) maybeReload() {
	if !r.mu.TryLock() {
		return // another handshake is looking; this one uses the current certificate
	}
	defer r.mu.Unlock()
	now := time.Now()
	if now.Sub(r.checked) < r.cfg.CheckEvery {
		return
	}
	r.checked = now
	st, err := r.stat()
	if err != nil {
		if st != r.seen {
			r.seen = st
			r.cfg.Logger.Warn("TLS certificate files unreadable; the previous certificate stays in service", "err", err)
		}
		return
	}
	if st == r.seen {
		return
	}
	// Look at each change once: a bad pair is reported once, not every second.
	r.seen = st
	cert, err := r.load()
	if err != nil {
		r.cfg.Logger.Warn("new TLS certificate does not load; the previous certificate stays in service", "err", err)
		return
	}
	r.cert.Store(cert)
	r.cfg.Logger.Info("TLS certificate reloaded", "subject", cert.Leaf.Subject.String(),
		"serial", cert.Leaf.SerialNumber.String(), "not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
}

func (r *Reloader) stat() (stamp, error) {
	c, err := os.Stat(r.cfg.CertFile)
	if err != nil {
		return stamp{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	k, err := os.Stat(r.cfg.KeyFile)
	if err != nil {
		return stamp{certMod: c.ModTime(), certSize: c.Size()}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return stamp{certMod: c.ModTime(), keyMod: k.ModTime(), certSize: c.Size(), keySize: k.Size()}, nil
}

func (r *Reloader) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(r.cfg.CertFile, r.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %s and %s: %v", ErrInvalid, r.cfg.CertFile, r.cfg.KeyFile, err)
	}
	if cert.Leaf == nil {
		return nil, fmt.Errorf("%w: %s: no leaf certificate", ErrInvalid, r.cfg.CertFile)
	}
	if time.Now().After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("%w: %s expired at %s", ErrInvalid, r.cfg.CertFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &cert, nil
}
