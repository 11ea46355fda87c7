package main

// What the bench reads of a process (and of the processes it started) from
// /proc: CPU time, resident memory, descriptors, threads.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/discovery-platform/discovery/bench/internal/rig"
	"github.com/discovery-platform/discovery/internal/testkit/proctest"
)

// tick is the unit of utime and stime in /proc/<pid>/stat: USER_HZ, which
// Linux fixes at 100 for user space whatever the kernel's own HZ.
const tick = 10 * time.Millisecond

// stat reads a process's parent and its utime+stime (all its threads, the
// dead ones included) in ticks.
func stat(pid int) (ppid int, ticks int64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The command name may hold spaces and parentheses: fields count from
	// the last ')'. After it: state ppid pgrp ... utime (14th) stime (15th).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ppid, ut + st, true
}

// cpuTicks is one process's utime+stime in ticks (0 if it is gone).
func cpuTicks(pid int) int64 {
	_, t, _ := stat(pid)
	return t
}

// tree returns root and every process descending from it (nginx's and
// HAProxy's workers are children of their master), root first.
func tree(root int) []int {
	if root == 0 {
		return nil
	}
	children := map[int][]int{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if ppid, _, ok := stat(pid); ok {
			children[ppid] = append(children[ppid], pid)
		}
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// treeTicks sums utime+stime over a process tree.
func treeTicks(root int) int64 {
	var n int64
	for _, pid := range tree(root) {
		n += cpuTicks(pid)
	}
	return n
}

// treeRSSKB sums VmRSS over a process tree (pages the master and its workers
// share count twice, but they do not change while sessions come and go).
func treeRSSKB(root int) int {
	n := 0
	for _, pid := range tree(root) {
		n += rig.RSSKB(pid)
	}
	return n
}

// treeFDs sums the open descriptors over a process tree.
func treeFDs(root int) int {
	n := 0
	for _, pid := range tree(root) {
		if f := rig.FDs(pid); f > 0 {
			n += f
		}
	}
	return n
}

func threads(pid int) int {
	ents, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	return len(ents)
}

// replicaPID finds the echo replica's own process (not its supervisor) among
// the processes carrying the run's marker; 0 when it is not found.
func replicaPID(marker, replica string) int {
	for pid, r := range proctest.Find(marker) {
		if r.Replica != replica {
			continue
		}
		if exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err == nil && filepath.Base(exe) == "testapp" {
			return pid
		}
	}
	return 0
}

// machine is a reading of /proc/stat's steal time: time the hypervisor ran
// something else on this VM's CPUs (in ticks, all CPUs together).
type machine struct {
	at    time.Time
	steal int64
}

func readMachine() machine {
	m := machine{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return m
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal guest guest_nice
	if len(f) > 8 {
		m.steal, _ = strconv.ParseInt(f[8], 10, 64)
	}
	return m
}

// load is what the machine lost since a reading, in % of one core.
type load struct{ steal float64 }

// machineSince is the steal time since m0, in % of one core: a process
// caught by it looks slower and, its runtime being counted in wall time
// while it holds a CPU, busier.
func machineSince(m0 machine) load {
	m := readMachine()
	return load{steal: 100 * float64(ticksDur(m.steal-m0.steal)) / float64(time.Since(m0.at))}
}

// ticksDur converts ticks to time.
func ticksDur(t int64) time.Duration { return time.Duration(t) * tick }

// perOp is ticks of CPU divided by n operations.
func perOp(t int64, n int) time.Duration {
	if n == 0 {
		return 0
	}
	return ticksDur(t) / time.Duration(n)
}

// fdLimit reports this process's descriptor limit as /proc reads it (the Go
// runtime has raised the soft limit to the hard one; children get the soft
// limit they were started with, which is the same here).
func fdLimit() string {
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) >= 2 {
				return fmt.Sprintf("%s soft, %s hard (2 per proxied session: ~%d sessions per process)", f[0], f[1], atoiOr(f[1], 0)/2-100)
			}
		}
	}
	return "unknown"
}

// fdHard is the hard descriptor limit (20000 here), which no process here
// can raise.
func fdHard() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Max > 1<<20 {
		return 1 << 20
	}
	return int(r.Max)
}

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}
