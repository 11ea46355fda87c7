// Package kubenode is a process node for a test Kubernetes cluster: an agent
// that registers a Node, keeps it Ready and its Lease renewed, and runs every
// pod bound to it as a local process on a loopback address of its own. It
// stands in for the kubelet where there is no container runtime (like kwok,
// but the pods really run): images map to commands through a Catalog, probes
// decide readiness, pods/log is served to the API server, and a deleted pod
// is stopped with SIGTERM, its grace period and SIGKILL before its object is
// removed.
//
// It runs pods of one container (a pod with more, or with init containers,
// fails with a message saying so) and ignores volumes, resource limits,
// security contexts, network policies and startup probes.
package kubenode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Options configure a node. Client, Catalog and Dir are required.
type Options struct {
	// Name of the Node object (default "node-1").
	Name string
	// Client talks to the API server with rights over nodes, leases, pods,
	// pods/status, configmaps and secrets.
	Client kubernetes.Interface
	// Catalog maps images to commands.
	Catalog *Catalog
	// Dir holds a working directory and a log file per pod.
	Dir string
	// IPs hands out pod addresses; share one between the nodes of a cluster.
	// Default: a pool of its own in 127.42.0.0/16.
	IPs *IPPool
	// Env is the environment every pod process starts from, before the
	// container's own env (e.g. PATH, HOME and a marker that finds strays).
	Env []string
	// Capacity of the node (default cpu 16, memory 32Gi, pods 110); also
	// its allocatable.
	Capacity v1.ResourceList
	// Labels added to the Node, beside kubernetes.io/hostname, os and arch.
	Labels map[string]string
	// LeaseDuration is the node Lease's duration (default 40s, the
	// kubelet's); it is renewed every RenewInterval (default 2s, more often
	// than the kubelet's 10s so tests see renewals quickly).
	LeaseDuration, RenewInterval time.Duration
	// StatusInterval is how often the Node's conditions are re-posted
	// (default 10s).
	StatusInterval time.Duration
	// MaxLogBytes bounds each pod's log file (default 1 MiB).
	MaxLogBytes int64
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL
	// (default 2s).
	StopGrace time.Duration
	// Logger receives the node's structured log (default slog.Default()).
	Logger *slog.Logger
}

// Node is a running process node.
type Node struct {
	name   string
	opts   Options
	client kubernetes.Interface
	log    *slog.Logger

	ctx    context.Context // cancelled by Stop
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine but the log server's

	logListener net.Listener
	logServer   *http.Server

	mu      sync.Mutex
	workers map[types.UID]*podWorker
	byName  map[string]*podWorker // namespace/name -> the newest worker of that name

	stopOnce sync.Once
}

// Start registers the node, starts its heartbeats, its log server and its
// pod watch, and returns once the Node object exists and the watch is synced.
// The Node is Ready from its first status; the control plane's node
// lifecycle controller then removes the not-ready taint it was created with.
func Start(ctx context.Context, opts Options) (*Node, error) {
	if opts.Client == nil || opts.Catalog == nil || opts.Dir == "" {
		return nil, errors.New("kubenode: Options.Client, Catalog and Dir are required")
	}
	if opts.Name == "" {
		opts.Name = "node-1"
	}
	if opts.IPs == nil {
		opts.IPs = NewIPPool(42)
	}
	if opts.Capacity == nil {
		opts.Capacity = v1.ResourceList{
			v1.ResourceCPU:    resource.MustParse("16"),
			v1.ResourceMemory: resource.MustParse("32Gi"),
			v1.ResourcePods:   resource.MustParse("110"),
		}
	}
	opts.LeaseDuration = orDefault(opts.LeaseDuration, 40*time.Second)
	opts.RenewInterval = orDefault(opts.RenewInterval, 2*time.Second)
	opts.StatusInterval = orDefault(opts.StatusInterval, 10*time.Second)
	opts.StopGrace = orDefault(opts.StopGrace, 2*time.Second)
	if opts.MaxLogBytes <= 0 {
		opts.MaxLogBytes = 1 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	dir := filepath.Join(opts.Dir, opts.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("kubenode: %w", err)
	}
	opts.Dir = dir

	nctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n := &Node{
		name: opts.Name, opts: opts, client: opts.Client,
		log: opts.Logger.With("node", opts.Name),
		ctx: nctx, cancel: cancel,
		workers: map[types.UID]*podWorker{}, byName: map[string]*podWorker{},
	}
	var err error
	if n.logListener, n.logServer, err = n.startLogServer(); err != nil {
		cancel()
		return nil, err
	}
	if err := n.register(ctx); err != nil {
		n.Stop()
		return nil, err
	}
	n.wg.Add(1)
	go n.heartbeat()
	if err := n.watchPods(ctx); err != nil {
		n.Stop()
		return nil, err
	}
	n.log.Info("node started", "logPort", n.logPort())
	return n, nil
}

// Name is the Node's name.
func (n *Node) Name() string { return n.name }

// Stop stops every pod process (SIGTERM, then SIGKILL after StopGrace) and
// every goroutine of the node. It leaves the API objects alone: the cluster
// is usually going away too. Safe to call more than once.
func (n *Node) Stop() {
	n.stopOnce.Do(func() {
		n.cancel()
		n.wg.Wait()
		if n.logServer != nil {
			_ = n.logServer.Close()
		}
		n.log.Info("node stopped")
	})
}

// Process describes a pod process running on the node.
type Process struct {
	Namespace, Name string
	UID             types.UID
	PID             int
	IP              string
	Restarts        int32
}

// PodPID returns the pid of the process running pod namespace/name (it leads
// its own process group), if one runs.
func (n *Node) PodPID(namespace, name string) (int, bool) {
	w := n.workerByName(namespace, name)
	if w == nil {
		return 0, false
	}
	pid := int(w.pid.Load())
	return pid, pid > 0
}

// Processes lists the pod processes running now.
func (n *Node) Processes() []Process {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Process
	for _, w := range n.workers {
		if pid := int(w.pid.Load()); pid > 0 {
			out = append(out, Process{Namespace: w.ns, Name: w.name, UID: w.uid, PID: pid, IP: w.ip.String(), Restarts: w.restarts.Load()})
		}
	}
	return out
}

// LogPath returns the file holding pod namespace/name's output, while the
// pod object exists.
func (n *Node) LogPath(namespace, name string) (string, bool) {
	w := n.workerByName(namespace, name)
	if w == nil {
		return "", false
	}
	return w.logs.path, true
}

func (n *Node) workerByName(namespace, name string) *podWorker {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.byName[namespace+"/"+name]
}

func (n *Node) logPort() int { return n.logListener.Addr().(*net.TCPAddr).Port }

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
