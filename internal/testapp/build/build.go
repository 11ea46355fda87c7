// Package build compiles the testapp server once per test process, for tests
// anywhere in the repository that need a real replica to run.
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
const Package = "github.com/discovery-platform/discovery/internal/testapp"

var (
	once sync.Once
	dir  string
	bin  string
	err  error
)

// Binary builds the testapp (with the go command from PATH) on first use and
// returns the path of the binary; later calls in the same test process reuse
// it. The build outlives any single test, so it goes to
// os.TempDir()/discovery-testapp-<pid> rather than a t.TempDir(); call Cleanup
// from TestMain to remove it. It calls t.Fatal if the build fails.
func Binary(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("discovery-testapp-%d", os.Getpid()))
		if err = os.MkdirAll(dir, 0o755); err != nil {
			return
		}
		out := filepath.Join(dir, "testapp")
		cmd := exec.Command("go", "build", "-o", out, Package)
		if b, e := cmd.CombinedOutput(); e != nil {
			err = fmt.Errorf("go build %s: %v\n%s", Package, e, b)
			return
		}
		bin = out
	})
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Cleanup removes the directory Binary built into, if any. Call it from
// TestMain after m.Run.
func Cleanup() {
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}
