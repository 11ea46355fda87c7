package platformtest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// OpenToReplicas lets replicas running as their tenants' uids (the
// platform runs as root) traverse dir, and its parent when that is a
// temporary directory of its own (t.TempDir()'s parent is 0700): they must
// reach their working directories inside.
func OpenToReplicas(dir string) error {
	if err := os.Chmod(dir, 0o711); err != nil {
		return err
	}
	parent := filepath.Dir(dir)
	if rel, err := filepath.Rel(os.TempDir(), parent); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
		return os.Chmod(parent, 0o711)
	}
	return nil
}

// TempDir is a fresh t.TempDir() for a data dir or a replica dir, open to
// replicas (OpenToReplicas).
func TempDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	if err := OpenToReplicas(d); err != nil {
		t.Fatal(err)
	}
	return d
}

// FreeAddr returns a loopback host:port nothing listens on right now
// (something may take it before the platform binds it: see Platform.Start).
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Addr is FreeAddr for a test: it fails t when there is no port.
func Addr(t testing.TB) string {
	t.Helper()
	a, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// ReadToken reads the bootstrap admin token the platform writes into its
// data dir on its first start.
func ReadToken(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
