package process

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"
)

// This file is the runtime's view of processes: starting them in their own
// session, recognising them in /proc (a pid alone can be reused; pid plus
// start time cannot), signalling their process group, and reaping the ones
// this OS process is the parent of.

// children is the set of replica processes this OS process started and has
// not reaped yet. It is process-wide, not per Runtime, because parenthood is:
// a Runtime closed and reopened within one process (tests, an in-process
// restart) still has to reap what the first one started, and only the parent
// may wait for a process. A process we did not start is never waited for, so
// a reused pid can never make us steal another child's exit status.
var children = struct {
	sync.Mutex
	pids map[int]bool
}{pids: map[int]bool{}}

// startChild starts argv in a new session (setsid) with stdout and stderr on
// out. Its own session keeps it out of the platform's process group, so a
// Ctrl-C or a SIGKILL of the platform's group does not reach it, and makes it
// the leader of a group that Stop can signal as a whole.
func startChild(argv, env []string, out *os.File) (int, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	children.Lock()
	defer children.Unlock()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	pid := cmd.Process.Pid
	children.pids[pid] = true
	// We wait with wait4 on the pid ourselves (see processGone), without a
	// goroutine blocked in cmd.Wait that Close could not stop.
	_ = cmd.Process.Release()
	return pid, nil
}

// killAndReap ends a child this process just started and could not record.
func killAndReap(pid int) {
	children.Lock()
	defer children.Unlock()
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	var ws syscall.WaitStatus
	for {
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
			break
		}
	}
	delete(children.pids, pid)
}

// processGone reports whether the process pid, started at ticks, has ended.
// For our own children it reaps the zombie and describes the exit ("exit
// status 1", "signal: killed"); for adopted processes the status is unknown
// and exit is "". A child's leftover process group members are killed with
// it, as a container's processes die with it.
func processGone(pid int, ticks uint64) (gone bool, exit string) {
	children.Lock()
	defer children.Unlock()
	if children.pids[pid] {
		exited, err := waitExited(pid)
		switch {
		case errors.Is(err, syscall.ECHILD):
			// Someone else in this process waited for it.
			delete(children.pids, pid)
			return true, ""
		case err != nil || !exited:
			return false, ""
		}
		// Not reaped yet, so its pid (and process group id) cannot have been
		// reused: killing the group reaches only the replica's own processes.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		var ws syscall.WaitStatus
		for {
			wpid, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
			if err == syscall.EINTR {
				continue
			}
			delete(children.pids, pid)
			if wpid != pid {
				return true, ""
			}
			return true, describeWait(ws)
		}
	}
	st, err := readStat(pid)
	return err != nil || st.startTicks != ticks || st.state == 'Z', ""
}

// signalGroup signals the process group led by pid, if pid is still the
// process started at ticks.
func signalGroup(pid int, ticks uint64, sig syscall.Signal) error {
	if pid <= 0 {
		return fmt.Errorf("no process")
	}
	children.Lock()
	defer children.Unlock()
	if !children.pids[pid] {
		// Not our child: the number may have been reused since we looked.
		if st, err := readStat(pid); err != nil || st.startTicks != ticks {
			return fmt.Errorf("process %d is gone", pid)
		}
	}
	if err := syscall.Kill(-pid, sig); err != nil {
		return fmt.Errorf("signal %v to group %d: %w", sig, pid, err)
	}
	return nil
}

// waitExited reports whether child pid has exited, without reaping it
// (waitid with WNOWAIT), so its group can be killed while its ids are pinned.
func waitExited(pid int) (bool, error) {
	const (
		pPID    = 1
		wNOHANG = 0x1
		wEXITED = 0x4
		wNOWAIT = 0x1000000
	)
	// siginfo_t: three ints, then a union aligned to the pointer size whose
	// first field for SIGCHLD is si_pid; the kernel writes 128 bytes.
	var info struct {
		signo, errno, code int32
		_                  [0]uintptr
		pid                int32
		_                  [128]byte
	}
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info)), wEXITED|wNOHANG|wNOWAIT, 0, 0)
		switch e {
		case 0:
			return info.pid == int32(pid), nil
		case syscall.EINTR:
			continue
		default:
			return false, e
		}
	}
}

// describeWait words an exit the way os/exec does.
func describeWait(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return "exit status " + strconv.Itoa(ws.ExitStatus())
	case ws.Signaled():
		s := "signal: " + ws.Signal().String()
		if ws.CoreDump() {
			s += " (core dumped)"
		}
		return s
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}

// procStat is what the runtime reads from /proc/<pid>/stat.
type procStat struct {
	state      byte
	session    int
	startTicks uint64
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

// parseStat reads "pid (comm) state ppid pgrp session ... starttime ...". comm
// may hold spaces and parentheses, so fields are counted from the last ')'.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed /proc stat")
	}
	// f[0] is field 3 (state); field n is f[n-3].
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, errors.New("malformed /proc stat")
	}
	sid, err1 := strconv.Atoi(f[6-3])
	ticks, err2 := strconv.ParseUint(f[22-3], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return procStat{}, fmt.Errorf("malformed /proc stat: %w", err)
	}
	return procStat{state: f[0][0], session: sid, startTicks: ticks}, nil
}

// findSessionLeader looks for the live session leader whose environment holds
// every entry of want: a replica started by a platform that died before it
// could record the pid (the replica's environment names it).
func findSessionLeader(want []string) (pid int, ticks uint64, ok bool) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.session != pid || st.state == 'Z' {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue // another user's process, or gone
		}
		if hasEnv(env, want) {
			return pid, st.startTicks, true
		}
	}
	return 0, 0, false
}

func hasEnv(environ []byte, want []string) bool {
	have := map[string]bool{}
	for _, kv := range bytes.Split(environ, []byte{0}) {
		have[string(kv)] = true
	}
	for _, w := range want {
		if !have[w] {
			return false
		}
	}
	return true
}
