package rig

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/discovery-platform/discovery/internal/testkit/platformtest"
)

// Proc is one long-running platform process (a control plane or a gateway)
// that can be started, SIGKILLed and restarted on the same flags, data dir
// and ports, the way an operator's supervisor (systemd's Restart=always)
// treats it.
type Proc struct {
	Name string
	Path string
	Args []string
	// Env is the full environment; it must hold the run's marker.
	Env []string
	// Log collects stdout and stderr of every start, appended: a file, not a
	// pipe, so a killed process leaves nothing half-read behind.
	Log string

	mu     sync.Mutex
	run    *platformtest.Process // the current (or last) process
	starts int
	// started is when the current (or last) process was started.
	started time.Time
	// delay is how long the supervisor waits before restarting a process
	// that Kill stopped (killed is set); any other exit waits a second.
	delay  time.Duration
	killed bool
}

// Start runs the process once, in a process group of its own (a Ctrl-C at
// the terminal reaches the program, which then stops everything in order,
// not the platform behind its back); it does not wait for it to serve.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run != nil && !p.run.Exited() {
		return fmt.Errorf("%s already runs (pid %d)", p.Name, p.run.PID())
	}
	run, err := platformtest.Command{Path: p.Path, Args: p.Args, Env: p.Env, Log: p.Log, OwnGroup: true}.Start()
	if err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.run = run
	p.starts++
	p.started = time.Now()
	return nil
}

// PID is the running process's pid, 0 when it does not run.
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run == nil || p.run.Exited() {
		return 0
	}
	return p.run.PID()
}

// Starts counts how many times the process was started.
func (p *Proc) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// StartedAt is when the process was last started.
func (p *Proc) StartedAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.started
}

// Kill SIGKILLs the process and waits until it is gone; the supervisor, if
// one runs, starts it again after restartIn.
func (p *Proc) Kill(restartIn time.Duration) {
	p.mu.Lock()
	run := p.run
	p.delay, p.killed = restartIn, true
	p.mu.Unlock()
	if run != nil {
		run.Kill()
	}
}

// Stop sends SIGTERM and waits up to grace for a clean exit, then SIGKILLs.
func (p *Proc) Stop(grace time.Duration) {
	p.mu.Lock()
	run := p.run
	p.mu.Unlock()
	if run != nil {
		_ = run.Stop(grace)
	}
}

// Supervise keeps the process running until ctx ends: whenever it exits (a
// Kill, or a start that failed because etcd was away) it is started again,
// after the delay the Kill asked for or after a second. It returns once ctx
// ends, leaving the process as it is; Stop or Kill it afterwards.
func (p *Proc) Supervise(ctx context.Context) {
	for ctx.Err() == nil {
		p.mu.Lock()
		run := p.run
		p.mu.Unlock()
		if run == nil {
			if err := p.Start(); err != nil {
				Sleep(ctx, time.Second)
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-run.Done():
		}
		p.mu.Lock()
		d := time.Second
		if p.killed {
			d, p.killed = p.delay, false
		}
		p.mu.Unlock()
		if !Sleep(ctx, d) {
			return
		}
		if err := p.Start(); err != nil {
			Sleep(ctx, time.Second)
		}
	}
}

// LogTail returns the last n bytes of the process's log, for an error message.
func (p *Proc) LogTail(n int) string { return platformtest.LogTail(p.Log, n) }
