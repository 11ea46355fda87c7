package supervisor

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// drainTimeout bounds how long the output of an exited replica is still read:
// a grandchild it left behind may hold the pipe open indefinitely.
const drainTimeout = 200 * time.Millisecond

// Main runs the supervisor with the command line args (args[0] is the
// program name, args[1] the replica's state directory) and returns the exit
// code. When the replica ends, the supervisor SIGKILLs its own process group,
// so it only returns on a failure.
func Main(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: discovery-supervisor STATE_DIR")
		return 2
	}
	status := statusPipe()
	if err := run(args[1], status); err != nil {
		report(status, err)
		fmt.Fprintln(os.Stderr, "discovery-supervisor:", err)
		return 1
	}
	return 0
}

// statusPipe returns StatusFD if it is an open pipe, else nil. It is marked
// close-on-exec so the replica never inherits it (the platform waits for its
// end of file).
func statusPipe() *os.File {
	var st syscall.Stat_t
	if err := syscall.Fstat(StatusFD, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		return nil
	}
	syscall.CloseOnExec(StatusFD)
	return os.NewFile(StatusFD, "status")
}

// report writes the start's outcome to the status pipe, once.
func report(status *os.File, err error) {
	if status == nil {
		return
	}
	msg := "ok\n"
	if err != nil {
		msg = "error: " + strings.ReplaceAll(err.Error(), "\n", " ") + "\n"
	}
	_, _ = status.WriteString(msg) // the platform may be gone: nothing to do
	_ = status.Close()
}

func run(dir string, status *os.File) error {
	// The pid goes first, before the spec is even read: a platform that died
	// between starting us and recording our pid finds it here. A platform
	// that finds no pid removes the spec, so a supervisor that writes its pid
	// after that looks finds no spec and starts nothing.
	ticks, err := startTicks()
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, PIDFile), fmt.Appendf(nil, "%d %d\n", os.Getpid(), ticks)); err != nil {
		return fmt.Errorf("record pid: %w", err)
	}
	spec, err := readSpec(dir)
	if err == nil {
		err = supervise(dir, spec, status)
	} else {
		err = fmt.Errorf("read spec: %w", err)
	}
	if err != nil {
		// Recorded so a platform that adopts the directory later learns why.
		_ = writeAtomic(filepath.Join(dir, ExitFile), []byte(err.Error()+"\n"))
	}
	return err
}

// supervise starts the replica, copies its output into the log until it
// exits, records the exit and ends the process group.
func supervise(dir string, spec Spec, status *os.File) error {
	log, err := OpenLog(dir, spec.LogLimit)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer log.Close()

	// Caught, not ignored: an ignored disposition would be inherited by the
	// replica. A stop signals the whole process group, so the replica gets
	// its own SIGTERM; the supervisor keeps waiting for it to end.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)

	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := &exec.Cmd{
		Path: spec.Path, Args: spec.Argv, Env: spec.Env, Dir: spec.Dir,
		Stdout: pw, Stderr: pw,
		// No Setsid or Setpgid: the replica stays in our process group.
		SysProcAttr: &syscall.SysProcAttr{},
	}
	if u := spec.User; u != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: []uint32{}}
	}
	err = cmd.Start()
	_ = pw.Close() // the replica has its own copy
	if err != nil {
		_ = pr.Close()
		return fmt.Errorf("start %s: %w", spec.Path, err)
	}
	report(status, nil)

	copied := make(chan struct{})
	go func() {
		defer close(copied)
		buf := make([]byte, 64<<10)
		for {
			n, err := pr.Read(buf)
			if n > 0 {
				// A failed write (disk full) loses this output; the pipe
				// is still read, so the replica never blocks on it.
				_, _ = log.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()

	_ = cmd.Wait()
	_ = pr.SetReadDeadline(time.Now().Add(drainTimeout))
	<-copied
	_ = pr.Close()
	_ = log.Close()

	exit := DescribeWait(cmd.ProcessState.Sys().(syscall.WaitStatus))
	if err := writeAtomic(filepath.Join(dir, ExitFile), []byte(exit+"\n")); err != nil {
		fmt.Fprintln(os.Stderr, "discovery-supervisor: record exit:", err)
	}
	// Whatever the replica left behind in the group dies with it, as a
	// container's processes do, and so do we. Only when we lead our group:
	// run by hand from a shell, the group would be the shell's.
	if syscall.Getpgrp() == os.Getpid() {
		_ = syscall.Kill(0, syscall.SIGKILL)
	}
	return nil
}
