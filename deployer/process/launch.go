package process

import (
	"context"
	"fmt"
	"maps"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/deployer"
	"github.com/discovery-platform/discovery/deployer/process/supervisor"
)

// Start launches a replica of spec.Command under its supervisor, as its
// tenant's user when Config.Users is set, and returns once the process runs.
// Starting an ID that already runs does nothing.
func (r *Runtime) Start(ctx context.Context, spec deployer.ReplicaSpec) error {
	if len(spec.Command) == 0 {
		return fmt.Errorf("process runtime needs a command; image %q has no command", spec.Image)
	}
	if err := checkID(spec.ReplicaID); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	running, err := r.known(spec.ReplicaID)
	r.mu.Unlock()
	if running || err != nil {
		return err
	}
	// Looked up before taking the lock: it may ask a store.
	var user *supervisor.User
	if r.cfg.Users != nil {
		uid, gid, err := r.cfg.Users.User(ctx, spec.Tenant)
		if err == nil && (uid < 0 || gid < 0 || int64(uid) > math.MaxUint32 || int64(gid) > math.MaxUint32) {
			err = fmt.Errorf("invalid uid %d, gid %d", uid, gid)
		}
		if err != nil {
			// Nothing is wrong with the replica: the reconciler retries.
			return fmt.Errorf("start %s: user of tenant %s: %w: %w", spec.ReplicaID.String(), spec.Tenant, deployer.ErrRuntimeUnavailable, err)
		}
		user = &supervisor.User{UID: uint32(uid), GID: uint32(gid)}
	}
	// The lock is held across the launch (two fork/execs and small writes)
	// so two Starts of one ID can never both launch.
	r.mu.Lock()
	defer r.mu.Unlock()
	if running, err := r.known(spec.ReplicaID); running || err != nil {
		return err
	}
	rep, err := r.launch(spec, user)
	if err != nil {
		return fmt.Errorf("start %s: %w", spec.ReplicaID.String(), err)
	}
	r.reps[spec.ReplicaID] = rep
	r.log.Info("replica started", logAttrs(rep.meta.id(), "pid", rep.meta.PID, "address", rep.meta.Address)...)
	r.notify(rep.meta.id())
	r.wg.Go(func() { r.monitor(rep) })
	return nil
}

// known reports whether Start has nothing to do for id (it runs), or must
// fail (the runtime closed, or the replica exited and was not removed).
// r.mu must be held.
func (r *Runtime) known(id apps.ReplicaID) (running bool, err error) {
	if r.closed {
		return false, ErrClosed
	}
	if rep, ok := r.reps[id]; ok {
		if rep.state == apps.ReplicaExited {
			return false, fmt.Errorf("start %s: %w", id.String(), ErrExited)
		}
		return true, nil
	}
	return false, nil
}

// launch writes the replica's state, then starts its supervisor, which
// starts the replica. meta.json is written before the supervisor exists
// (without a pid) so a platform that dies in between leaves a trace the next
// one can match with the pid the supervisor records itself.
func (r *Runtime) launch(spec deployer.ReplicaSpec, user *supervisor.User) (*replica, error) {
	dir := filepath.Join(r.cfg.StateDir, dirName(spec.ReplicaID))
	work := filepath.Join(dir, workDir)
	port, err := freePort(r.cfg.Host)
	if err != nil {
		return nil, err
	}
	env := r.env(spec, port, work)
	path, err := resolveCommand(spec.Command[0], env)
	if err != nil {
		return nil, err
	}

	// The state dir is private to the platform's user: logs and the spec
	// hold the replica's output and environment. A replica running as its
	// tenant's uid may only traverse it (0711) to reach its work dir, which
	// is its own and nobody else's.
	dirMode := os.FileMode(0o700)
	if user != nil {
		dirMode = 0o711
	}
	if err := mkdirMode(dir, dirMode); err != nil {
		return nil, err
	}
	fail := func(err error) (*replica, error) {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := mkdirMode(work, 0o700); err != nil {
		return fail(err)
	}
	if user != nil {
		if err := os.Chown(work, int(user.UID), int(user.GID)); err != nil {
			return fail(err)
		}
	}
	m := meta{
		Tenant: spec.Tenant, App: spec.App, Revision: spec.Revision, Replica: spec.Replica,
		Command:       spec.Command,
		Port:          port,
		Address:       net.JoinHostPort(r.cfg.Host, strconv.Itoa(port)),
		HealthPath:    spec.HealthPath,
		ShutdownGrace: apps.Duration(spec.ShutdownGrace),
	}
	if err := writeMeta(dir, m); err != nil {
		return fail(err)
	}
	err = supervisor.WriteSpec(dir, supervisor.Spec{
		Path: path, Argv: spec.Command, Env: env, Dir: work, User: user, LogLimit: r.cfg.LogLimit,
	})
	if err != nil {
		return fail(fmt.Errorf("write spec: %w", err))
	}
	// The replica's output goes to the supervisor, never to a pipe to the
	// platform: a pipe would break (and SIGPIPE the replica) when the
	// platform dies.
	pid, err := startSupervisor(r.cfg.Supervisor, dir)
	if err != nil {
		return fail(err)
	}
	st, err := readStat(pid)
	if err == nil {
		m.PID, m.StartTicks, m.StartedAt = pid, st.startTicks, time.Now().UTC()
		err = writeMeta(dir, m)
	}
	if err != nil {
		// Without its pid on disk the replica could not be told apart from a
		// reused pid later; undo the start so Start stays retryable.
		killAndReap(pid)
		return fail(err)
	}
	probeCtx, stopProbe := context.WithCancel(r.ctx)
	return &replica{
		dir: dir, meta: m, state: apps.ReplicaStarting,
		probeCtx: probeCtx, stopProbe: stopProbe,
		wake: make(chan struct{}, 1),
	}, nil
}

// env is the base environment, then the revision's, then the platform's own
// variables, later ones replacing earlier ones of the same name: the whole
// environment the replica gets, and nothing else.
func (r *Runtime) env(spec deployer.ReplicaSpec, port int, work string) []string {
	env := slices.Clone(r.cfg.Env)
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		env = append(env, k+"="+spec.Env[k])
	}
	env = append(env,
		"HOST="+r.cfg.Host,
		"PORT="+strconv.Itoa(port),
		"DISCOVERY_TENANT="+spec.Tenant,
		"DISCOVERY_APP="+spec.App,
		"DISCOVERY_REVISION="+spec.Revision,
		"DISCOVERY_REPLICA="+spec.Replica,
		"HOME="+work,
		"TMPDIR="+work,
	)
	return dedupEnv(env)
}
