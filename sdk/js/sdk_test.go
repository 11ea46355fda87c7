// Package js_test runs the JavaScript client SDK's own tests (npm ci, then
// npm test: dist/ up to date with src/, then node --test) so that `make test`
// and `go test ./sdk/...` cover it.
package js_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestNPM(t *testing.T) {
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm not found: sdk/js (the JavaScript SDK) is NOT tested; install Node >= 20 with npm to test it")
	}
	for _, args := range [][]string{
		{"ci", "--no-audit", "--no-fund"},
		{"test"},
	} {
		cmd := exec.CommandContext(t.Context(), npm, args...)
		cmd.WaitDelay = 5 * time.Second // a stray node child must not hold the output pipe forever
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("npm %s in sdk/js: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("npm %s:\n%s", strings.Join(args, " "), out)
	}
}
