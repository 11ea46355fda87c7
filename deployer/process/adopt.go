package process

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/deployer"
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

// adopt rebuilds one replica from its directory.
func (r *Runtime) adopt(id deployer.ReplicaID, dir string) *replica {
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
	case m.PID == 0:
		// The platform died between writing meta.json and recording the pid:
		// the process, if it started, is a session leader whose environment
		// names the replica. The port (chosen before the start) tells it from
		// a namesake run by another platform with another state dir.
		pid, ticks, ok := findSessionLeader([]string{
			"DISCOVERY_TENANT=" + id.Tenant, "DISCOVERY_APP=" + id.App,
			"DISCOVERY_REVISION=" + id.Revision, "DISCOVERY_REPLICA=" + id.Replica,
			"PORT=" + strconv.Itoa(m.Port),
		})
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
	default:
		if gone, how := processGone(m.PID, m.StartTicks); gone {
			exit = how
			if exit == "" {
				exit = "exited while the platform was down"
			}
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
