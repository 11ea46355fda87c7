// Package process is the embedded runtime: each replica is a local process of
// the revision's command, in its own session, serving on a free loopback port.
// Replicas outlive the control plane (their identity and output live in a state
// directory, not in memory), and a restarted platform adopts the ones still
// running, health-checks them and reports the ones that died meanwhile.
package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
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
	// StateDir holds one directory per replica (meta.json and log). Required;
	// pointing a new Runtime at the same directory adopts the replicas in it.
	StateDir string
	// Host is the loopback address replicas listen on; default 127.0.0.1.
	Host string
	// ProbeInterval is how often each replica is health-checked and its log
	// trimmed; default 1s. Adopted replicas are also checked for exit this often.
	ProbeInterval time.Duration
	// ProbeTimeout bounds one health check; default 1s.
	ProbeTimeout time.Duration
	// LogLimit is how many bytes of output are kept per replica; the file may
	// reach twice that between trims. Default 1 MiB.
	LogLimit int64
	// Env is the base environment of every replica; default os.Environ().
	Env []string
	// Logger receives state changes; default slog.Default().
	Logger *slog.Logger
}

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
	reps   map[deployer.ReplicaID]*replica
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
		cfg.Env = os.Environ()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("process: state dir: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runtime{
		cfg:     cfg,
		log:     cfg.Logger,
		client:  newProbeClient(),
		changes: make(chan apps.Ref, 256),
		sigchld: make(chan os.Signal, 1),
		ctx:     ctx,
		cancel:  cancel,
		reps:    map[deployer.ReplicaID]*replica{},
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

// Start launches a replica of spec.Command with its output in a log file in
// the replica's state dir. Starting an ID that already runs does nothing.
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
	// The lock is held across the launch (a fork/exec and two small writes) so
	// two Starts of one ID can never both launch.
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if rep, ok := r.reps[spec.ReplicaID]; ok {
		if rep.state == apps.ReplicaExited {
			return fmt.Errorf("start %s: %w", idString(spec.ReplicaID), ErrExited)
		}
		return nil
	}
	rep, err := r.launch(spec)
	if err != nil {
		return fmt.Errorf("start %s: %w", idString(spec.ReplicaID), err)
	}
	r.reps[spec.ReplicaID] = rep
	r.log.Info("replica started", logAttrs(rep.meta.id(), "pid", rep.meta.PID, "address", rep.meta.Address)...)
	r.notify(rep.meta.id())
	r.wg.Go(func() { r.monitor(rep) })
	return nil
}

// launch writes the replica's state, then starts its process. meta.json is
// written before the process exists (without a pid) so a platform that dies
// in between leaves a trace the next one can match against /proc.
func (r *Runtime) launch(spec deployer.ReplicaSpec) (*replica, error) {
	dir := filepath.Join(r.cfg.StateDir, dirName(spec.ReplicaID))
	// Private to the platform's user: logs and commands may hold secrets.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	fail := func(err error) (*replica, error) {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	port, err := freePort(r.cfg.Host)
	if err != nil {
		return fail(err)
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
	// The replica writes to a file, never to a pipe to the platform: a pipe
	// would break (and SIGPIPE the replica) when the platform dies. O_APPEND
	// lets boundLog cut the file under the replica's feet.
	logf, err := os.OpenFile(filepath.Join(dir, logFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fail(err)
	}
	defer logf.Close()

	pid, err := startChild(spec.Command, r.env(spec, port), logf)
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
// variables; os/exec keeps the last of duplicate keys, so they win in that order.
func (r *Runtime) env(spec deployer.ReplicaSpec, port int) []string {
	env := slices.Clone(r.cfg.Env)
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		env = append(env, k+"="+spec.Env[k])
	}
	return append(env,
		"HOST="+r.cfg.Host,
		"PORT="+strconv.Itoa(port),
		"DISCOVERY_TENANT="+spec.Tenant,
		"DISCOVERY_APP="+spec.App,
		"DISCOVERY_REVISION="+spec.Revision,
		"DISCOVERY_REPLICA="+spec.Replica,
	)
}

// Stop sends SIGTERM to the replica's process group and SIGKILL after grace.
// It returns at once. Stopping a stopping replica again keeps the earlier of
// the two kill deadlines; stopping an unknown or exited one does nothing.
func (r *Runtime) Stop(ctx context.Context, id deployer.ReplicaID, grace time.Duration) error {
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
func (r *Runtime) Remove(ctx context.Context, id deployer.ReplicaID) error {
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
		return fmt.Errorf("remove %s: %w", idString(id), ErrRunning)
	}
	if err := os.RemoveAll(rep.dir); err != nil {
		return fmt.Errorf("remove %s: %w", idString(id), err)
	}
	delete(r.reps, id)
	return nil
}

// Logs returns the last tail bytes of the replica's output (LogLimit bytes
// when tail <= 0). Exited replicas keep their log until removed.
func (r *Runtime) Logs(ctx context.Context, id deployer.ReplicaID, tail int) ([]byte, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	rep := r.reps[id]
	r.mu.Unlock()
	if rep == nil {
		return nil, fmt.Errorf("logs %s: %w", idString(id), ErrNotFound)
	}
	n := int64(tail)
	if n <= 0 {
		n = r.cfg.LogLimit
	}
	b, err := tailFile(filepath.Join(rep.dir, logFile), n)
	if err != nil {
		return nil, fmt.Errorf("logs %s: %w", idString(id), err)
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
func (r *Runtime) notify(id deployer.ReplicaID) {
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

func idString(id deployer.ReplicaID) string {
	return id.Tenant + "/" + id.App + "/" + id.Revision + "/" + id.Replica
}

func logAttrs(id deployer.ReplicaID, kv ...any) []any {
	return append([]any{"tenant", id.Tenant, "app", id.App, "revision", id.Revision, "replica", id.Replica}, kv...)
}
