package main

// System calls per relayed frame, counted by strace attached to a proxy.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/discovery-platform/discovery/bench/internal/rig"
)

// syscalls is strace's count of one proxy's system calls over a block of
// round trips.
type syscalls struct {
	frames int // relayed frames: two per round trip
	total  int
	calls  []syscallCount // most frequent first
}

type syscallCount struct {
	name          string
	calls, errors int
}

func (s *syscalls) perFrame() float64 {
	if s == nil || s.frames == 0 {
		return 0
	}
	return float64(s.total) / float64(s.frames)
}

// straceBlock attaches `strace -c -f` to every process of p's proxy (-f
// takes every thread of a process given with -p, and any it starts), does n
// round trips on a fresh connection, detaches and reads the summary. The
// block is not timed: strace slows every call it sees.
func straceBlock(p *path, strace, dir, marker string, n int) (*syscalls, error) {
	conn, _, err := websocket.DefaultDialer.Dial(p.url, nil)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := roundTrips(conn, warmup, nil); err != nil {
		return nil, err
	}
	name := "strace-" + short(p.name)
	out := filepath.Join(dir, name+".txt")
	args := []string{"-c", "-f", "-o", out}
	pids := tree(p.proc.PID())
	for _, pid := range pids {
		args = append(args, "-p", strconv.Itoa(pid))
	}
	sp := &rig.Proc{Name: name, Path: strace, Args: args, Env: append(os.Environ(), marker), Log: filepath.Join(dir, name+".log")}
	if err := start(sp); err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			sp.Stop(10 * time.Second)
		}
	}()
	// strace says "Process N attached" on stderr for each -p once it holds it.
	if !rig.Poll(context.Background(), 15*time.Second, 20*time.Millisecond, func() bool {
		b, _ := os.ReadFile(sp.Log)
		return strings.Count(string(b), " attached") >= len(pids)
	}) {
		return nil, fmt.Errorf("not attached within 15 s: %s", sp.LogTail(1000))
	}
	if _, err := roundTrips(conn, n, nil); err != nil {
		return nil, err
	}
	sp.Stop(10 * time.Second) // SIGTERM: strace detaches and writes its summary
	stopped = true
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	s := parseStraceSummary(string(b))
	s.frames = 2 * n
	if s.total == 0 {
		return nil, fmt.Errorf("strace counted nothing: %s", sp.LogTail(1000))
	}
	return s, nil
}

// parseStraceSummary reads the table `strace -c` prints:
//
//	% time     seconds  usecs/call     calls    errors syscall
//	------ ----------- ----------- --------- --------- ----------------
//	 52.11    0.004120           2      2001           write
//	 ...
//	100.00    0.007906           1      6012        12 total
//
// (the errors column is blank when a call never failed). The total is the
// sum of the rows.
func parseStraceSummary(text string) *syscalls {
	s := &syscalls{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || strings.HasPrefix(f[0], "%") || strings.HasPrefix(f[0], "-") {
			continue
		}
		name, nums := f[len(f)-1], f[:len(f)-1]
		if name == "total" {
			continue
		}
		if _, err := strconv.ParseFloat(nums[0], 64); err != nil {
			continue
		}
		calls, err := strconv.Atoi(nums[3])
		if err != nil {
			continue
		}
		c := syscallCount{name: name, calls: calls}
		if len(nums) >= 5 {
			c.errors, _ = strconv.Atoi(nums[4])
		}
		s.calls = append(s.calls, c)
		s.total += calls
	}
	sort.SliceStable(s.calls, func(i, j int) bool { return s.calls[i].calls > s.calls[j].calls })
	return s
}
