package platformtest

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Command is a program to run as a separate process: the platform, a
// gateway, or anything a bench program compares it with.
type Command struct {
	Path string
	Args []string
	// Env is the process's whole environment (nil: this process's own). Put
	// the run's marker in it, so that proctest.KillAll finds the process.
	Env []string
	// Log is the file the process's stdout and stderr are appended to: a
	// file, not a pipe, so that a process it hands its sockets to (the
	// platform's in-place upgrade) cannot hold the pipe and keep Wait from
	// returning, and a killed process leaves nothing half-read behind.
	Log string
	// OwnGroup runs the process in a process group of its own: a Ctrl-C at
	// the terminal then reaches only the program that started it, which
	// stops the process in order, not behind its back.
	OwnGroup bool
}

// Start runs the command; it does not wait for the process to serve.
func (c Command) Start() (*Process, error) {
	f, err := os.OpenFile(c.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own copy
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Env = c.Env
	cmd.Stdout, cmd.Stderr = f, f
	if c.OwnGroup {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }() // ends with the process
	return p, nil
}

// Process is one started process; it is waited for as soon as it exits.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// PID is the process's pid (which it keeps once exited).
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Cmd is the started command, for what the methods here do not cover; read
// its ProcessState only once Done is closed.
func (p *Process) Cmd() *exec.Cmd { return p.cmd }

// Signal sends sig to the process (SIGHUP: the platform's in-place upgrade).
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Done is closed once the process has exited and been waited for.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill SIGKILLs the process (not its children) and waits until it is gone.
func (p *Process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits up to grace for the process to exit; past
// grace it SIGKILLs it. The error says it had to be killed or did not exit
// 0 (a SIGTERM it does not handle is an error too).
func (p *Process) Stop(grace time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Kill()
		return fmt.Errorf("%s did not stop within %s of SIGTERM", p.cmd.Path, grace)
	}
	if st := p.cmd.ProcessState; !st.Success() {
		return fmt.Errorf("%s on SIGTERM: %s", p.cmd.Path, st)
	}
	return nil
}

// LogTail returns the last n bytes of a log file, for a failure message
// (the error's text when it cannot be read).
func LogTail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
