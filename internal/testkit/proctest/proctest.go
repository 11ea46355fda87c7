// Package proctest finds and stops the processes a test started, by an
// environment marker they inherit, so no test leaves a replica behind even when
// the platform that started it was killed.
package proctest

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Marker returns a unique KEY=VALUE for this test; pass it in the environment of
// everything the test starts (replicas inherit the platform's environment).
func Marker(t testing.TB) string {
	return "DISCOVERY_TEST_RUN=" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

// Replica is a running process carrying the marker and a replica id.
type Replica struct {
	PID      int
	Replica  string
	Revision string
}

// Find returns every live process whose environment holds marker, keyed by
// pid, with its DISCOVERY_REPLICA and DISCOVERY_REVISION values (empty for the
// platform itself). Zombies are skipped.
func Find(marker string) map[int]Replica {
	out := map[int]Replica{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err != nil || !bytes.Contains(env, []byte(marker)) {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join(d, "stat")); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				continue
			}
		}
		r := Replica{PID: pid}
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, "DISCOVERY_REPLICA="); ok {
				r.Replica = v
			}
			if v, ok := strings.CutPrefix(kv, "DISCOVERY_REVISION="); ok {
				r.Revision = v
			}
		}
		out[pid] = r
	}
	return out
}

// Replicas returns the live replica processes (those with a replica id) with
// marker, keyed by replica id; a replica id seen twice appears in dup.
func Replicas(marker string) (byID map[string]Replica, dup []string) {
	byID = map[string]Replica{}
	for _, r := range Find(marker) {
		if r.Replica == "" {
			continue
		}
		if _, ok := byID[r.Replica]; ok {
			dup = append(dup, r.Replica)
		}
		byID[r.Replica] = r
	}
	return byID, dup
}

// KillAll SIGKILLs every process (and its process group) holding marker, at
// cleanup. Register it with t.Cleanup right after creating the marker.
func KillAll(marker string) {
	for i := 0; i < 50; i++ {
		procs := Find(marker)
		if len(procs) == 0 {
			return
		}
		for pid := range procs {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond) // let the kernel reap before looking again
	}
}

// Alive reports whether pid runs (and is not a zombie).
func Alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}
