package kubetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// The four binaries a cluster needs, built from deploy/testcluster by
// `make testcluster-bin`.
var binaries = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"}

// BinEnv names the environment variable that overrides where the
// binaries are looked for (default <repository root>/bin/testcluster).
const BinEnv = "DISCOVERY_KUBE_BIN"

// findBinDir returns the directory holding every binary, or an error that
// tells how to build them.
func findBinDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv(BinEnv)
	}
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			return "", fmt.Errorf("kubetest: find the repository root for bin/testcluster: %w (set %s)", err, BinEnv)
		}
		dir = filepath.Join(root, "bin", "testcluster")
	}
	var missing []string
	for _, b := range binaries {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("kubetest: Kubernetes binaries missing from %s (%s): run `make testcluster-bin` at the repository root (or set %s to a directory holding them)",
			dir, strings.Join(missing, ", "), BinEnv)
	}
	return dir, nil
}

// repoRoot is the main module's directory: from this file's path when the
// sources are where they were compiled (tests, go run), else from the go
// command's view of the current directory.
func repoRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Dir(filepath.Dir(filepath.Dir(file))) // internal/kubetest/bins.go
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			return root, nil
		}
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}
