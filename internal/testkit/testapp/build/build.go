// Package build compiles the testapp server and the process runtime's
// supervisor once per test process, for tests anywhere in the repository that
// need a real replica to run.
package build

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Package is the import path of the test server.
const Package = "github.com/discovery-platform/discovery/internal/testkit/testapp"

// SupervisorPackage is the import path of the process runtime's supervisor.
const SupervisorPackage = "github.com/discovery-platform/discovery/cmd/discovery-supervisor"

var (
	dirOnce sync.Once
	dir     string
	dirErr  error

	testapp, supervisor binary
)

// binary is one program built at most once per test process.
type binary struct {
	once sync.Once
	path string
	err  error
}

func (b *binary) build(t testing.TB, pkg, name string) string {
	t.Helper()
	b.once.Do(func() {
		dirOnce.Do(func() {
			// 0755 like its parent: replicas running as another uid must be
			// able to execute what is in it.
			dir = filepath.Join(os.TempDir(), fmt.Sprintf("discovery-testapp-%d", os.Getpid()))
			if dirErr = os.MkdirAll(dir, 0o755); dirErr == nil {
				dirErr = os.Chmod(dir, 0o755)
			}
		})
		if b.err = dirErr; b.err != nil {
			return
		}
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", out, pkg)
		if o, e := cmd.CombinedOutput(); e != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, e, o)
			return
		}
		b.path = out
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Binary builds the testapp (with the go command from PATH) on first use and
// returns the path of the binary; later calls in the same test process reuse
// it. The build outlives any single test, so it goes to
// os.TempDir()/discovery-testapp-<pid> rather than a t.TempDir(); call Cleanup
// from TestMain to remove it. It calls t.Fatal if the build fails.
func Binary(t testing.TB) string {
	t.Helper()
	return testapp.build(t, Package, "testapp")
}

// Supervisor builds cmd/discovery-supervisor like Binary builds the testapp,
// into the same directory, and returns its path (for process.Config.Supervisor).
func Supervisor(t testing.TB) string {
	t.Helper()
	return supervisor.build(t, SupervisorPackage, "discovery-supervisor")
}

// Cleanup removes the directory Binary and Supervisor built into, if any.
// Call it from TestMain after m.Run.
func Cleanup() {
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}
