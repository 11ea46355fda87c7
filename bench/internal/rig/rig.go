// Package rig runs a Discovery installation out of real parts for the
// programs under bench/: the platform binary built from this module, started
// as separate processes (control plane, extra gateways) against an etcd the
// program embeds, driven over the REST API and the gateway like a user would.
// It is for programs and their tests alike, so nothing here takes a
// *testing.T; everything it starts carries a marker in its environment so
// that one call stops it all, replicas included.
package rig

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/discovery-platform/discovery/internal/testkit/platformtest"
	"github.com/discovery-platform/discovery/internal/testkit/proctest"
	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
)

// Packages the rig builds.
const (
	PlatformPackage   = platformtest.Package
	SupervisorPackage = platformtest.SupervisorPackage
	TestappPackage    = build.Package
)

// Build compiles pkg into dir/name with the go command from PATH. Programs
// under bench/ build without -race: they measure the platform, not the
// detector, and the detector's memory would swamp the figures. The platform
// gets the discovery-supervisor binary beside it, where its process runtime
// looks for it (platformtest.Build).
func Build(dir, pkg, name string) (string, error) {
	out := filepath.Join(dir, name)
	var err error
	if pkg == PlatformPackage {
		err = platformtest.Build(out)
	} else {
		err = platformtest.GoBuild(out, pkg)
	}
	if err != nil {
		return "", err
	}
	return out, nil
}

// OpenToReplicas lets replicas running as their tenants' uids (the platform
// runs as root here) traverse dir, and its parent when that is a temporary
// directory of its own (a test's t.TempDir()): they must reach their working
// directories inside.
func OpenToReplicas(dir string) error { return platformtest.OpenToReplicas(dir) }

// Binaries returns the platform and test app binaries to run: the paths
// given, or ones built into dir/bin where a path is empty.
func Binaries(dir, platform, testapp string) (string, string, error) {
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", "", err
	}
	var err error
	if platform == "" {
		if platform, err = Build(bin, PlatformPackage, "platform"); err != nil {
			return "", "", err
		}
	}
	if testapp == "" {
		if testapp, err = Build(bin, TestappPackage, "testapp"); err != nil {
			return "", "", err
		}
	}
	return platform, testapp, nil
}

// NewMarker returns a KEY=VALUE unique to this run. Every process the rig
// starts inherits it, and replicas get it from the platform's
// --replica-env (they inherit nothing of the platform's own environment), so
// proctest.Find(marker) sees all of them and KillAll stops them.
func NewMarker() string {
	return "DISCOVERY_TEST_RUN=bench-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

// KillAll SIGKILLs everything that carries marker (platforms, gateways,
// replicas), with their process groups.
func KillAll(marker string) { proctest.KillAll(marker) }

// FreeAddr returns a loopback host:port nothing listens on right now.
func FreeAddr() (string, error) { return platformtest.FreeAddr() }

// Poll calls cond every interval until it returns true, ctx ends or within
// passes; it reports whether cond held. It is the only way the rig waits for
// something: never a fixed sleep.
func Poll(ctx context.Context, within, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(interval):
		}
	}
}

// Sleep waits d or until ctx ends; it reports whether the whole d passed.
// The programs use it for the random pauses of a fault schedule, never to
// wait for a state.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// TestLog is a writer that sends each line a program prints to t's log as
// it comes, for the tests that run a bench program in small.
func TestLog(t testing.TB) io.Writer { return testLog{t} }

type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
