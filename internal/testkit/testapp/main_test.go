package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
)

func TestMain(m *testing.M) {
	code := m.Run()
	build.Cleanup()
	os.Exit(code)
}

// run starts the testapp with env and returns it with its address, read
// from its "listening on" line. Its further output lines are in out.
func run(t *testing.T, env ...string) (cmd *exec.Cmd, addr string, out *bufio.Scanner) {
	t.Helper()
	cmd = exec.Command(build.Binary(t))
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	out = bufio.NewScanner(stdout)
	require.True(t, out.Scan(), "no output")
	addr, ok := strings.CutPrefix(out.Text(), "listening on ")
	require.True(t, ok, out.Text())
	return cmd, addr, out
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	cmd, addr, _ := run(t, "DISCOVERY_REVISION=9d00cc18", "DISCOVERY_REPLICA=r1", "VERSION=0.2")
	code, body := get(t, "http://"+addr+"/healthz")
	assert.Equal(t, 200, code)
	assert.Equal(t, "ok", body)
	_, body = get(t, "http://"+addr+"/echo?msg=hello")
	assert.Equal(t, "hello", body)
	_, body = get(t, "http://"+addr+"/")
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	assert.Equal(t, map[string]any{"revision": "9d00cc18", "replica": "r1", "version": "0.2",
		"pid": float64(cmd.Process.Pid)}, got)
}

func TestHealth(t *testing.T) {
	t.Parallel()
	_, addr, _ := run(t, "NEVER_HEALTHY=1")
	code, _ := get(t, "http://"+addr+"/healthz")
	assert.Equal(t, 503, code)

	began := time.Now()
	_, addr, _ = run(t, "HEALTH_DELAY=400ms")
	code, _ = get(t, "http://"+addr+"/healthz")
	if time.Since(began) < 400*time.Millisecond {
		assert.Equal(t, 503, code)
	}
	require.Eventually(t, func() bool {
		code, _ := get(t, "http://"+addr+"/healthz")
		return code == 200
	}, 5*time.Second, 10*time.Millisecond)
}

func TestFailStart(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(build.Binary(t))
	cmd.Env = append(os.Environ(), "FAIL_START=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "%v", err)
	assert.Equal(t, 3, exit.ExitCode())
	assert.Equal(t, "failing on purpose\n", stderr.String())
}

func TestSIGTERM(t *testing.T) {
	t.Parallel()
	cmd, addr, out := run(t, "SHUTDOWN_DELAY=300ms")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.True(t, out.Scan())
	assert.Equal(t, "got SIGTERM", out.Text())
	// It keeps serving during the shutdown delay, then exits 0.
	code, _ := get(t, "http://"+addr+"/healthz")
	assert.Equal(t, 200, code)
	require.NoError(t, cmd.Wait())
}

func TestIgnoreSIGTERM(t *testing.T) {
	t.Parallel()
	cmd, addr, out := run(t, "IGNORE_SIGTERM=1")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.True(t, out.Scan())
	assert.Equal(t, "got SIGTERM, ignoring it", out.Text())
	code, _ := get(t, "http://"+addr+"/healthz")
	assert.Equal(t, 200, code)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	err := cmd.Wait()
	require.Error(t, err)
	assert.Equal(t, "signal: killed", err.Error())
}
