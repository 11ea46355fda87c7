package process

import (
	"syscall"
	"time"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/deployer/process/supervisor"
)

// firstProbe is the pause before a starting replica's second health check;
// each failed check doubles it, up to ProbeInterval. An app ready a few
// milliseconds after exec is seen ready a few milliseconds later, while an
// app that takes seconds costs a handful of checks, and a ready replica is
// checked every ProbeInterval.
const firstProbe = 2 * time.Millisecond

// monitor is the one goroutine per live replica: it notices the exit, sends
// the SIGKILL a Stop scheduled and health-checks the replica: quickly while
// it starts, every ProbeInterval once it is ready. (Its log needs no care:
// the supervisor bounds it.) It returns when the process is gone or the
// runtime closes.
func (r *Runtime) monitor(rep *replica) {
	next := firstProbe
	probe := time.NewTimer(time.Hour) // reset after the first check
	defer probe.Stop()
	probeDue := true
	for {
		if r.observeExit(rep) {
			return
		}
		if probeDue {
			r.probe(rep)
			probeDue = false
			r.mu.Lock()
			starting := rep.state == apps.ReplicaStarting
			r.mu.Unlock()
			d := r.cfg.ProbeInterval
			if starting {
				d, next = min(next, d), min(2*next, d)
			}
			probe.Reset(d)
		}

		r.mu.Lock()
		killAt := rep.killAt
		r.mu.Unlock()
		var killC <-chan time.Time
		var killTimer *time.Timer
		if !killAt.IsZero() {
			killTimer = time.NewTimer(time.Until(killAt))
			killC = killTimer.C
		}
		select {
		case <-r.ctx.Done():
		case <-probe.C:
			probeDue = true
		case <-rep.wake:
		case <-killC:
			r.kill(rep)
		}
		if killTimer != nil {
			killTimer.Stop()
		}
		if r.ctx.Err() != nil {
			return
		}
	}
}

// observeExit checks whether the replica's supervisor is gone and, if so,
// records the replica as exited. It reports whether it did.
func (r *Runtime) observeExit(rep *replica) bool {
	r.mu.Lock()
	pid, ticks := rep.meta.PID, rep.meta.StartTicks
	r.mu.Unlock()
	gone, status := processGone(pid, ticks)
	if !gone {
		return false
	}
	exit := exitReason(rep.dir, status, "exited (status unknown: adopted process)")
	r.mu.Lock()
	defer r.mu.Unlock()
	r.markExited(rep, exit)
	return true
}

// exitReason is how a replica whose supervisor is gone ended: what the
// supervisor recorded, else the supervisor's own wait status (ours to reap: a
// supervisor killed with its group by a stop's SIGKILL records nothing), else
// fallback.
func exitReason(dir, status, fallback string) string {
	if exit := supervisor.ReadExit(dir); exit != "" {
		return exit
	}
	if status != "" {
		return status
	}
	return fallback
}

// markExited records the exit in memory and on disk. r.mu must be held (or
// the replica not yet shared).
func (r *Runtime) markExited(rep *replica, exit string) {
	now := time.Now().UTC()
	rep.meta.Exit, rep.meta.ExitedAt = exit, &now
	rep.killAt = time.Time{}
	rep.stopProbe()
	if err := writeMeta(rep.dir, rep.meta); err != nil {
		r.log.Warn("replica state not saved", logAttrs(rep.meta.id(), "err", err)...)
	}
	if rep.state != apps.ReplicaExited {
		r.log.Info("replica exited", logAttrs(rep.meta.id(), "exit", exit, "stop_requested", rep.meta.StopRequested)...)
		rep.state = apps.ReplicaExited
		r.notify(rep.meta.id())
	}
}

// kill sends the SIGKILL that ends a stop's grace period.
func (r *Runtime) kill(rep *replica) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rep.state != apps.ReplicaStopping || rep.killAt.IsZero() {
		return
	}
	rep.killAt = time.Time{}
	r.log.Info("replica grace expired, sending SIGKILL", logAttrs(rep.meta.id(), "pid", rep.meta.PID)...)
	if err := signalGroup(rep.meta.PID, rep.meta.StartTicks, syscall.SIGKILL); err != nil {
		r.log.Warn("replica SIGKILL failed", logAttrs(rep.meta.id(), "err", err)...)
	}
	wake(rep)
}
