package platformtest

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// TestStartMovesOffATakenPort: something takes the API's port between Addr
// and the first start; the platform exits on it, and Start moves the
// installation to fresh ports and starts again. A restart keeps them.
func TestStartMovesOffATakenPort(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the platform: skipped with -short")
	}
	p := New(t)
	taken := p.Addr
	l, err := net.Listen("tcp", taken)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p.Start()
	if p.Addr == taken {
		t.Fatalf("the platform still uses the taken %s", taken)
	}
	if !p.Alive() || p.Token == "" {
		t.Fatalf("after Start: alive %v, token %q", p.Alive(), p.Token)
	}
	if !strings.Contains(LogTail(p.Log, 1<<20), "address already in use") {
		t.Error("the log keeps the failed first start")
	}
	env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.Process().PID()), "environ"))
	if err != nil || !strings.Contains(string(env), p.Marker) {
		t.Errorf("the platform's environment holds the marker (err %v)", err)
	}

	p.Kill()
	if p.Alive() {
		t.Fatal("alive after Kill")
	}
	addr, token := p.Addr, p.Token
	p.Start()
	if p.Addr != addr || p.Token != token {
		t.Errorf("a restart moved: %s %q, was %s %q", p.Addr, p.Token, addr, token)
	}
	resp, err := p.HTTP().Get(p.APIURL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	p.Stop()
	if p.Alive() {
		t.Fatal("alive after Stop")
	}
}

// TestProcessLogsAndStops: a process's output is appended to its log, start
// after start, and Stop tells a clean exit from one it had to force.
func TestProcessLogsAndStops(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	for _, word := range []string{"first", "second"} {
		run, err := Command{Path: "/bin/sh", Args: []string{"-c", "echo " + word + "; echo err >&2; exit 3"}, Log: log}.Start()
		if err != nil {
			t.Fatal(err)
		}
		<-run.Done()
		if !run.Exited() || run.Cmd().ProcessState.ExitCode() != 3 {
			t.Fatalf("%s: exited %v, %v", word, run.Exited(), run.Cmd().ProcessState)
		}
	}
	if got := LogTail(log, 100); got != "first\nerr\nsecond\nerr\n" {
		t.Errorf("log %q", got)
	}
	if got := LogTail(log, 4); got != "err\n" {
		t.Errorf("tail %q", got)
	}

	// Each shell says it is ready once its trap is set.
	for _, c := range []struct {
		name, trap string
		stops      bool
	}{
		{"clean", `trap "exit 0" TERM`, true},
		{"stubborn", `trap "" TERM`, false},
	} {
		log := filepath.Join(t.TempDir(), c.name)
		run, err := Command{Path: "/bin/sh", Args: []string{"-c", c.trap + "; echo ready; while :; do sleep 0.05; done"}, Log: log}.Start()
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); LogTail(log, 100) != "ready\n"; time.Sleep(10 * time.Millisecond) { // poll interval
			if time.Now().After(deadline) {
				t.Fatalf("%s: the shell never said ready", c.name)
			}
		}
		err = run.Stop(500 * time.Millisecond)
		if c.stops && err != nil {
			t.Errorf("%s: a process that exits 0 on SIGTERM: %v", c.name, err)
		}
		if !c.stops && (err == nil || !strings.Contains(err.Error(), "did not stop")) {
			t.Errorf("%s: a process that ignores SIGTERM: %v", c.name, err)
		}
		if !run.Exited() {
			t.Errorf("%s: Stop left it running", c.name)
		}
	}
}
