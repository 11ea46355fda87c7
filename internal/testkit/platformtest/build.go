package platformtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
)

// Packages the harness builds.
const (
	Package           = "github.com/discovery-platform/discovery/cmd/platform"
	SupervisorPackage = build.SupervisorPackage
)

// GoBuild compiles pkg into out with the go command from PATH and the given
// build flags (such as -race).
func GoBuild(out, pkg string, flags ...string) error {
	args := append(append([]string{"build"}, flags...), "-o", out, pkg)
	if b, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// Build compiles the platform into out with the given build flags (test/e2e
// builds with -race; bench programs without, they measure the platform, not
// the detector) and puts the discovery-supervisor beside it.
func Build(out string, flags ...string) error {
	if err := GoBuild(out, Package, flags...); err != nil {
		return err
	}
	return SupervisorBeside(out)
}

// SupervisorBeside builds discovery-supervisor next to the platform binary
// bin, where the process runtime looks for it, and makes their directory
// 0755: the supervisor runs replicas as other uids, who must reach it. Build
// calls it; call it for a platform built some other way (its own ldflags).
func SupervisorBeside(bin string) error {
	dir := filepath.Dir(bin)
	if err := GoBuild(filepath.Join(dir, "discovery-supervisor"), SupervisorPackage); err != nil {
		return err
	}
	return os.Chmod(dir, 0o755)
}

// builds are the platforms Binary built in this test process, by flag set.
var builds = struct {
	sync.Mutex
	byFlags map[string]*binary
	dirs    []string
}{byFlags: map[string]*binary{}}

// binary is one platform build, made at most once.
type binary struct {
	once sync.Once
	path string
	err  error
}

// Binary builds the platform with flags once per test process (per flag
// set) and returns its path; it fails t if the build fails. The build
// outlives any single test, so it goes to a directory of its own under
// os.TempDir() (a test may build more programs into it: it is 0755 and
// removed whole); call Cleanup from TestMain to remove it.
func Binary(t testing.TB, flags ...string) string {
	t.Helper()
	key := strings.Join(flags, " ")
	builds.Lock()
	b := builds.byFlags[key]
	if b == nil {
		b = &binary{}
		builds.byFlags[key] = b
	}
	builds.Unlock()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "discovery-platform-")
		if err != nil {
			b.err = err
			return
		}
		builds.Lock()
		builds.dirs = append(builds.dirs, dir)
		builds.Unlock()
		out := filepath.Join(dir, "platform")
		if b.err = Build(out, flags...); b.err == nil {
			b.path = out
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Cleanup removes what Binary built. Call it from TestMain after m.Run.
func Cleanup() {
	builds.Lock()
	defer builds.Unlock()
	for _, d := range builds.dirs {
		_ = os.RemoveAll(d)
	}
	builds.dirs = nil
}
