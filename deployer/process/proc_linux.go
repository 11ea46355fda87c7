package process

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/discovery-platform/discovery/deployer/process/supervisor"
)

// This file is the runtime's view of processes: starting a replica's
// supervisor in its own session, recognising processes in /proc (a pid alone
// can be reused; pid plus start time cannot), signalling their process group,
// and reaping the ones this OS process is the parent of.

// startTimeout bounds the wait for a supervisor to report that its replica
// started: a fork and two execs.
const startTimeout = 10 * time.Second

// children is the set of supervisor processes this OS process started and
// has not reaped yet. It is process-wide, not per Runtime, because parenthood
// is: a Runtime closed and reopened within one process (tests, an in-process
// restart) still has to reap what the first one started, and only the parent
// may wait for a process. A process we did not start is never waited for, so
// a reused pid can never make us steal another child's exit status.
var children = struct {
	sync.Mutex
	pids map[int]bool
}{pids: map[int]bool{}}

// startSupervisor starts the supervisor binary on a replica's state dir in a
// new session (setsid), with none of the platform's environment, and waits
// until it reports the replica started. Its own session keeps it and the
// replica (which stays in its process group) out of the platform's process
// group, so a Ctrl-C or a SIGKILL of the platform's group does not reach
// them, and makes it the leader of a group that Stop can signal as a whole.
func startSupervisor(bin, dir string) (int, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer pr.Close()
	cmd := exec.Command(bin, dir)
	// Nothing of the platform's environment. One P is all a supervisor
	// needs and saves ~0.1 MB per replica; the replica gets only its spec's
	// environment.
	cmd.Env = []string{"GOMAXPROCS=1"}
	cmd.ExtraFiles = []*os.File{pw} // supervisor.StatusFD
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var pid int
	children.Lock()
	err = cmd.Start()
	if err == nil {
		pid = cmd.Process.Pid
		children.pids[pid] = true
		// We wait with wait4 on the pid ourselves (see processGone), without
		// a goroutine blocked in cmd.Wait that Close could not stop.
		_ = cmd.Process.Release()
	}
	children.Unlock()
	_ = pw.Close()
	if err != nil {
		return 0, fmt.Errorf("supervisor: %w", err)
	}

	_ = pr.SetReadDeadline(time.Now().Add(startTimeout))
	b, err := io.ReadAll(io.LimitReader(pr, 4<<10))
	msg := strings.TrimSpace(string(b))
	if err == nil && msg == "ok" {
		return pid, nil
	}
	killAndReap(pid)
	switch {
	case err != nil:
		return 0, fmt.Errorf("supervisor: %w", err)
	case msg == "":
		return 0, errors.New("supervisor exited before starting the replica")
	}
	return 0, errors.New(strings.TrimPrefix(msg, "error: "))
}

// killAndReap ends a child this process just started and could not record.
func killAndReap(pid int) {
	if pid <= 0 {
		return // never kill(-pid) a group that is not one of ours
	}
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
			return true, supervisor.DescribeWait(ws)
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

// procStat is what the runtime reads from /proc/<pid>/stat.
type procStat struct {
	state           byte
	ppid, pgrp, sid int
	startTicks      uint64
	// cpuTicks is user + system time; rssPages the resident set.
	cpuTicks uint64
	rssPages int64
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
	if len(f) < 22 || len(f[0]) != 1 {
		return procStat{}, errors.New("malformed /proc stat")
	}
	ppid, err1 := strconv.Atoi(f[4-3])
	pgrp, err2 := strconv.Atoi(f[5-3])
	sid, err3 := strconv.Atoi(f[6-3])
	ticks, err4 := strconv.ParseUint(f[22-3], 10, 64)
	utime, err5 := strconv.ParseUint(f[14-3], 10, 64)
	stime, err6 := strconv.ParseUint(f[15-3], 10, 64)
	rss, err7 := strconv.ParseInt(f[24-3], 10, 64)
	if err := errors.Join(err1, err2, err3, err4, err5, err6, err7); err != nil {
		return procStat{}, fmt.Errorf("malformed /proc stat: %w", err)
	}
	return procStat{state: f[0][0], ppid: ppid, pgrp: pgrp, sid: sid, startTicks: ticks, cpuTicks: utime + stime, rssPages: rss}, nil
}
