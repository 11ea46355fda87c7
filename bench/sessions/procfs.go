package main

// What the bench reads of processes from /proc: which processes serve the
// gateway port, and their resident memory and descriptors.

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/discovery-platform/discovery/bench/internal/rig"
	"github.com/discovery-platform/discovery/internal/testkit/proctest"
)

// gatewayPIDs returns the gateway's processes: main (the `--role gateway`
// process) first, then its workers, the children whose command line holds
// --gateway-fd, by pid.
func gatewayPIDs(main int) []int {
	if main == 0 {
		return nil
	}
	var workers []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || parent(pid) != main || !proctest.Alive(pid) {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err == nil && bytes.Contains(cmd, []byte("\x00--gateway-fd\x00")) {
			workers = append(workers, pid)
		}
	}
	sort.Ints(workers)
	return append([]int{main}, workers...)
}

// parent is a process's parent pid (0 if it is gone).
func parent(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name may hold spaces and parentheses: fields count from
	// the last ')'. After it: state ppid ...
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// replicaPIDs returns the echo replicas' own processes (not their
// supervisors): the run's processes whose executable is testapp.
func replicaPIDs(marker string) []int {
	var out []int
	for pid, r := range proctest.Find(marker) {
		if r.Replica == "" {
			continue
		}
		if exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err == nil && filepath.Base(exe) == "testapp" {
			out = append(out, pid)
		}
	}
	sort.Ints(out)
	return out
}

// under returns the live processes whose command line names something in
// dir: the run's own, since dir is its fresh work dir.
func under(dir string) []int {
	var out []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || !proctest.Alive(pid) {
			continue
		}
		if cmd, err := os.ReadFile(filepath.Join(d, "cmdline")); err == nil && bytes.Contains(cmd, []byte(dir+"/")) {
			out = append(out, pid)
		}
	}
	return out
}

// proc is one process's figures at one moment.
type proc struct {
	pid, rssKB, fds int
	// anonKB is RssAnon: the part of the RSS that is the process's own
	// (heap, stacks), not pages of the binary that every gateway process
	// maps alike and VmRSS counts in each.
	anonKB int
}

func read(pid int) proc {
	return proc{pid: pid, rssKB: rig.RSSKB(pid), fds: rig.FDs(pid), anonKB: statusKB(pid, "RssAnon:")}
}

// statusKB reads one "Name:   N kB" line of /proc/PID/status (0 if none).
func statusKB(pid int, field string) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}

// readAll reads every pid's figures.
func readAll(pids []int) []proc {
	out := make([]proc, len(pids))
	for i, pid := range pids {
		out[i] = read(pid)
	}
	return out
}

// totals sums RSS (KB) and fds over procs.
func totals(procs []proc) (rssKB, fds int) {
	for _, p := range procs {
		rssKB += p.rssKB
		fds += max(p.fds, 0)
	}
	return rssKB, fds
}

// anonTotal sums RssAnon (KB) over procs.
func anonTotal(procs []proc) int {
	n := 0
	for _, p := range procs {
		n += p.anonKB
	}
	return n
}

// memAvailableKB is the machine's MemAvailable from /proc/meminfo.
func memAvailableKB() int {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}

// sysctl reads a /proc/sys file, trimmed ("?" when unreadable).
func sysctl(name string) string {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b)), " ")
}
