package process

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/deployer/process/supervisor"
)

// adoptAll loads every replica directory of the state dir: a replica whose
// process still runs is adopted (and health-checked once, all in parallel,
// before New returns); one whose process is gone is recorded as exited, so the
// reconciler sees that it crashed while the platform was down.
func (r *Runtime) adoptAll() error {
	entries, err := os.ReadDir(r.cfg.StateDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		id, ok := parseDirName(e.Name())
		if !ok {
			r.log.Warn("ignoring unexpected directory in state dir", "dir", e.Name())
			continue
		}
		r.reps[id] = r.adopt(id, filepath.Join(r.cfg.StateDir, e.Name()))
	}
	var wg sync.WaitGroup
	for _, rep := range r.reps {
		if rep.state == apps.ReplicaStarting {
			wg.Go(func() { r.probe(rep) })
		}
	}
	wg.Wait()
	return nil
}

// claimSupervisor returns the pid a supervisor recorded in dir, for a replica
// whose platform died before recording it. The supervisor writes its pid
// before it reads its spec, so when there is no pid yet, removing the spec
// settles the race with a supervisor still starting: either its pid shows up
// on the second look (and it is adopted), or it will find no spec and start
// nothing.
func claimSupervisor(dir string) (pid int, ticks uint64, ok bool) {
	if pid, ticks, err := supervisor.ReadPID(dir); err == nil {
		return pid, ticks, true
	}
	_ = os.Remove(filepath.Join(dir, supervisor.SpecFile))
	pid, ticks, err := supervisor.ReadPID(dir)
	return pid, ticks, err == nil
}

// adopt rebuilds one replica from its directory.
func (r *Runtime) adopt(id apps.ReplicaID, dir string) *replica {
	const lostMsg = "lost: the platform stopped before the replica started"
	m, err := readMeta(dir)
	lost := false
	if err != nil || m.id() != id {
		if !errors.Is(err, fs.ErrNotExist) {
			r.log.Warn("replica state unreadable", logAttrs(id, "err", err)...)
		}
		// meta.json is written before the process starts, so without a
		// readable one nothing was started.
		m = meta{Tenant: id.Tenant, App: id.App, Revision: id.Revision, Replica: id.Replica}
		lost = true
	}
	probeCtx, stopProbe := context.WithCancel(r.ctx)
	rep := &replica{dir: dir, meta: m, state: apps.ReplicaStarting,
		probeCtx: probeCtx, stopProbe: stopProbe, wake: make(chan struct{}, 1)}

	exit := m.Exit
	switch {
	case exit != "":
	case lost:
		exit = lostMsg
	default:
		if m.PID == 0 {
			// The platform died between writing meta.json and recording the
			// pid: the supervisor, if it started, recorded its own.
			pid, ticks, ok := claimSupervisor(dir)
			if !ok {
				exit = lostMsg
				break
			}
			rep.meta.PID, rep.meta.StartTicks = pid, ticks
			if rep.meta.StartedAt.IsZero() {
				rep.meta.StartedAt = time.Now().UTC()
			}
			if err := writeMeta(dir, rep.meta); err != nil {
				r.log.Warn("replica state not saved", logAttrs(id, "err", err)...)
			}
		}
		if gone, status := processGone(rep.meta.PID, rep.meta.StartTicks); gone {
			exit = exitReason(dir, status, "exited while the platform was down")
		}
	}
	if exit != "" {
		if m.Exit == "" {
			r.markExited(rep, exit) // newly found dead: record and announce it
		}
		rep.state = apps.ReplicaExited
		rep.stopProbe()
		return rep
	}

	r.log.Info("replica adopted", logAttrs(id, "pid", rep.meta.PID, "address", rep.meta.Address)...)
	if rep.meta.StopRequested {
		// The previous platform was stopping it: finish the stop. SIGTERM is
		// sent again in case the platform died before sending it.
		rep.state = apps.ReplicaStopping
		rep.stopProbe()
		rep.killAt = time.Now()
		if rep.meta.KillAt != nil {
			rep.killAt = *rep.meta.KillAt
		}
		if err := signalGroup(rep.meta.PID, rep.meta.StartTicks, syscall.SIGTERM); err != nil {
			r.log.Warn("replica SIGTERM failed", logAttrs(id, "err", err)...)
		}
	}
	return rep
}
