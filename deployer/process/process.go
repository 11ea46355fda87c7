// Package process is the embedded runtime: each replica is a local process of
// the revision's command, serving on a free loopback port. Replicas outlive the
// control plane (their identity and output live in a state directory, not in
// memory), and a restarted platform adopts the ones still running,
// health-checks them and reports how the ones that died meanwhile ended.
//
// # Supervisor
//
// Each replica runs under its own supervisor, a separate small program
// (cmd/discovery-supervisor, package supervisor), the role conmon plays for
// CRI-O. The platform writes a spec into the replica's state directory and
// starts the supervisor in a new session; the supervisor records its pid,
// starts the replica in its own process group with exactly the spec's
// environment and identity, copies the replica's output into the log, records
// how it exited, then kills whatever the replica left in the group. The pid
// the runtime tracks is the supervisor's: liveness, adoption and stop signals
// (sent to the whole group, so they reach the replica; the supervisor catches
// them and waits) all go through it, and the exit reason comes from the file
// it wrote, so a replica that crashed while no platform ran still reports its
// real status.
//
// The supervisor is its own binary, not the platform re-executed, because
// there is one per replica. Measured here (Go 1.26, linux/amd64): the
// platform binary, stopped at main.main (package initialisers done, nothing
// else), holds RssAnon 5.9 MB of private memory (VmRSS 43 MB, the rest being
// pages of its 106 MB executable); the stdlib-only supervisor, idle beside a
// running replica, RssAnon 0.76 MB (VmRSS 3.0 MB, of which 2.3 MB are pages of
// its 3.5 MB executable, shared by all supervisors: Pss 1.0 MB each with ten
// running).
//
// # Users
//
// Without Config.Users replicas run as the platform's own user. With it (the
// platform running as root), each runs as its tenant's uid and gid with no
// supplementary groups. Its work dir (<replica dir>/work, also its HOME and
// TMPDIR) is then its own, mode 0700; the replica dirs and the state dir are
// 0711 (traversable, not listable), and everything the platform and the
// supervisor keep there (meta.json, spec.json, pid, log, log.1, exit) is 0600
// and root's, so a replica cannot read its own spec or log, nor any other
// replica's files. Replicas of one tenant share a uid, so they can reach each
// other's work dirs; other tenants' they cannot.
//
// # Environment
//
// A replica's environment is Config.Env (default: a PATH only; never the
// platform's own, which may hold secrets), then its revision's env, then the
// runtime's own HOST, PORT, DISCOVERY_TENANT/APP/REVISION/REPLICA, HOME and
// TMPDIR; later entries replace earlier ones of the same name.
//
// # Logs
//
// The supervisor, the only writer, keeps the replica's stdout and stderr in
// log and log.1 of at most Config.LogLimit bytes each: when log would pass
// the limit it becomes log.1, so a replica's output never takes more than
// twice the limit on disk, at any moment, however fast it writes. A line
// longer than the limit is cut. Logs reads across both.
package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/deployer"
)

var (
	// ErrNotFound: the runtime knows no replica with this ID.
	ErrNotFound = errors.New("process: replica not found")
	// ErrRunning: the replica's process still runs (Remove needs it exited).
	ErrRunning = errors.New("process: replica still running")
	// ErrExited: Start of an ID whose replica exited and was not removed yet.
	ErrExited = errors.New("process: replica exited; remove it before reusing its id")
	// ErrClosed: the runtime was closed.
	ErrClosed = errors.New("process: runtime closed")
)

// Config configures a Runtime. Zero values take the defaults noted per field.
type Config struct {
	// StateDir holds one directory per replica (see state.go). Required;
	// pointing a new Runtime at the same directory adopts the replicas in it.
	StateDir string
	// Supervisor is the path of the discovery-supervisor binary that runs
	// beside each replica. Default: discovery-supervisor in the directory of
	// the running executable, else in $PATH; New fails if there is none.
	Supervisor string
	// Host is the loopback address replicas listen on; default 127.0.0.1.
	Host string
	// ProbeInterval is how often each replica is health-checked; default 1s.
	// Adopted replicas are also checked for exit this often.
	ProbeInterval time.Duration
	// ProbeTimeout bounds one health check; default 1s.
	ProbeTimeout time.Duration
	// LogLimit bounds each of a replica's two log files: at most twice this
	// is on disk per replica, at every moment. Logs returns this much by
	// default. Default 1 MiB.
	LogLimit int64
	// Env is the base environment of every replica; default DefaultEnv().
	// The platform's own environment is never passed on: it may hold secrets.
	Env []string
	// Users gives the uid and gid a tenant's replicas run as; nil runs them
	// as the platform's own user. Setting it needs a platform running as
	// root, and a StateDir whose ancestors others may traverse.
	Users Users
	// Logger receives state changes; default slog.Default().
	Logger *slog.Logger
}

// Users maps a tenant to the unprivileged identity its replicas run as. Start
// calls it outside the runtime's lock; an error fails the Start as
// deployer.ErrRuntimeUnavailable (retried, not counted as a crash).
type Users interface {
	User(ctx context.Context, tenant string) (uid, gid int, err error)
}

// DefaultEnv is the base environment replicas get when Config.Env is nil.
func DefaultEnv() []string { return []string{"PATH=/usr/local/bin:/usr/bin:/bin"} }

// supervisorName is the supervisor binary's name, as make build names it.
const supervisorName = "discovery-supervisor"

// Runtime runs replicas as local processes. It implements deployer.Runtime.
type Runtime struct {
	cfg     Config
	log     *slog.Logger
	client  *http.Client
	changes chan apps.Ref
	sigchld chan os.Signal

	// ctx is cancelled by Close; every goroutine of the runtime watches it and
	// is counted in wg.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	reps   map[apps.ReplicaID]*replica
}

var _ deployer.Runtime = (*Runtime)(nil)

// replica is the runtime's memory of one replica; its meta mirrors meta.json.
// All fields are guarded by Runtime.mu.
type replica struct {
	dir   string
	meta  meta
	state apps.ReplicaState
	// failures counts consecutive failed health checks.
	failures int
	// killAt is when a stopping replica gets SIGKILL; zero once sent.
	killAt time.Time
	// probeCtx is cancelled when the replica starts stopping, so an in-flight
	// health check never delays the stop.
	probeCtx  context.Context
	stopProbe context.CancelFunc
	// wake asks the monitor to look at the process now (SIGCHLD, Stop).
	wake chan struct{}
}

// New opens the state directory, adopts every replica whose process still
// runs (health-checking each once, so a restart does not flap them to
// starting), records the ones that died meanwhile as exited, and starts
// watching them.
func New(cfg Config) (*Runtime, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("process: Config.StateDir is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = time.Second
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = time.Second
	}
	if cfg.LogLimit <= 0 {
		cfg.LogLimit = 1 << 20
	}
	if cfg.Env == nil {
		cfg.Env = DefaultEnv()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	sup, err := findSupervisor(cfg.Supervisor)
	if err != nil {
		return nil, err
	}
	cfg.Supervisor = sup
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("process: state dir: %w", err)
	}
	if cfg.Users != nil {
		if err := openStateDir(cfg.StateDir); err != nil {
			return nil, err
		}
		if uid := os.Geteuid(); uid != 0 {
			return nil, fmt.Errorf("process: Config.Users needs the platform to run as root to switch replicas to their tenant's uid (it runs as uid %d)", uid)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runtime{
		cfg:     cfg,
		log:     cfg.Logger,
		client:  newProbeClient(3 * cfg.ProbeInterval),
		changes: make(chan apps.Ref, 256),
		sigchld: make(chan os.Signal, 1),
		ctx:     ctx,
		cancel:  cancel,
		reps:    map[apps.ReplicaID]*replica{},
	}
	if err := r.adoptAll(); err != nil {
		cancel()
		return nil, err
	}
	// A child's exit raises SIGCHLD: it wakes the monitors so exits of the
	// replicas this process started are seen at once rather than at the next
	// tick. Adopted replicas are not our children and rely on the tick.
	signal.Notify(r.sigchld, syscall.SIGCHLD)
	r.wg.Go(r.forwardSIGCHLD)
	for _, rep := range r.reps {
		if rep.state != apps.ReplicaExited {
			r.wg.Go(func() { r.monitor(rep) })
		}
	}
	return r, nil
}

// Close stops the runtime's goroutines. It never stops a replica: replicas
// outlive the control plane, and the next Runtime on the same StateDir adopts
// them.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	signal.Stop(r.sigchld)
	r.cancel()
	r.wg.Wait()
	r.client.CloseIdleConnections()
	return nil
}

// Changes names an app each time one of its replicas changes state. The
// channel is never closed; sends are dropped when it is full.
func (r *Runtime) Changes() <-chan apps.Ref { return r.changes }

// Stop sends SIGTERM to the replica's process group and SIGKILL after grace.
// It returns at once. Stopping a stopping replica again keeps the earlier of
// the two kill deadlines; stopping an unknown or exited one does nothing.
func (r *Runtime) Stop(ctx context.Context, id apps.ReplicaID, grace time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	rep := r.reps[id]
	if rep == nil || rep.state == apps.ReplicaExited {
		return nil
	}
	killAt := time.Now().Add(grace).UTC()
	if rep.state == apps.ReplicaStopping {
		if rep.killAt.IsZero() || !killAt.Before(rep.killAt) {
			return nil
		}
	} else {
		if err := signalGroup(rep.meta.PID, rep.meta.StartTicks, syscall.SIGTERM); err != nil {
			r.log.Warn("replica SIGTERM failed", logAttrs(id, "err", err)...)
		}
		rep.stopProbe()
		r.setState(rep, apps.ReplicaStopping)
	}
	rep.killAt = killAt
	rep.meta.StopRequested, rep.meta.KillAt = true, &killAt
	// The stop is under way whatever the disk says; a failed write only means
	// a restarted platform re-sends SIGTERM when the reconciler stops it again.
	if err := writeMeta(rep.dir, rep.meta); err != nil {
		r.log.Warn("replica state not saved", logAttrs(id, "err", err)...)
	}
	wake(rep)
	return nil
}

// List returns the replicas of one app, exited ones included until removed,
// ordered by revision then replica.
func (r *Runtime) List(ctx context.Context, tenant, app string) ([]deployer.Observed, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	var out []deployer.Observed
	for id, rep := range r.reps {
		if id.Tenant != tenant || id.App != app {
			continue
		}
		out = append(out, deployer.Observed{
			ReplicaID: id,
			State:     rep.state,
			Address:   rep.meta.Address,
			StartedAt: rep.meta.StartedAt,
			Exit:      rep.meta.Exit,
		})
	}
	slices.SortFunc(out, func(a, b deployer.Observed) int {
		return strings.Compare(a.Revision+"."+a.Replica, b.Revision+"."+b.Replica)
	})
	return out, nil
}

// Remove deletes an exited replica's state dir and log. Removing an unknown
// replica does nothing; removing one that still runs is ErrRunning.
func (r *Runtime) Remove(ctx context.Context, id apps.ReplicaID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	rep := r.reps[id]
	if rep == nil {
		return nil
	}
	if rep.state != apps.ReplicaExited {
		return fmt.Errorf("remove %s: %w", id.String(), ErrRunning)
	}
	if err := os.RemoveAll(rep.dir); err != nil {
		return fmt.Errorf("remove %s: %w", id.String(), err)
	}
	delete(r.reps, id)
	return nil
}

// Logs returns the last tail bytes of the replica's output, across both log
// files (LogLimit bytes when tail <= 0). Exited replicas keep their log until
// removed.
func (r *Runtime) Logs(ctx context.Context, id apps.ReplicaID, tail int) ([]byte, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	rep := r.reps[id]
	r.mu.Unlock()
	if rep == nil {
		return nil, fmt.Errorf("logs %s: %w", id.String(), ErrNotFound)
	}
	n := int64(tail)
	if n <= 0 {
		n = r.cfg.LogLimit
	}
	b, err := tailLog(rep.dir, n)
	if err != nil {
		return nil, fmt.Errorf("logs %s: %w", id.String(), err)
	}
	return b, nil
}

// setState records a state change, logs it and announces it on Changes.
// r.mu must be held.
func (r *Runtime) setState(rep *replica, s apps.ReplicaState) {
	if rep.state == s {
		return
	}
	id := rep.meta.id()
	r.log.Info("replica "+string(s), logAttrs(id, "from", string(rep.state), "pid", rep.meta.PID)...)
	rep.state = s
	r.notify(id)
}

// notify sends without blocking: a reader that falls behind misses changes,
// which its periodic resync covers.
func (r *Runtime) notify(id apps.ReplicaID) {
	select {
	case r.changes <- apps.Ref{Tenant: id.Tenant, App: id.App}:
	default:
	}
}

func wake(rep *replica) {
	select {
	case rep.wake <- struct{}{}:
	default:
	}
}

// forwardSIGCHLD wakes every live replica's monitor when some child exits;
// signals coalesce, so one wake-up may stand for several exits.
func (r *Runtime) forwardSIGCHLD() {
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.sigchld:
			r.mu.Lock()
			for _, rep := range r.reps {
				if rep.state != apps.ReplicaExited {
					wake(rep)
				}
			}
			r.mu.Unlock()
		}
	}
}

// freePort asks the kernel for a free port on host. Another process may take
// it before the replica binds it; the replica then fails to start and shows
// as exited, which the reconciler handles like any crash.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func logAttrs(id apps.ReplicaID, kv ...any) []any {
	return append([]any{"tenant", id.Tenant, "app", id.App, "revision", id.Revision, "replica", id.Replica}, kv...)
}
