// Package kubetest starts a real Kubernetes control plane for tests and by
// hand: an embedded etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler as child processes on loopback ports, and process nodes
// (internal/kubenode) whose pods run as local processes. Nothing is mocked:
// Deployments make ReplicaSets make pods, the scheduler binds them, probes
// decide readiness, pods/log goes through the API server.
//
// The binaries come from deploy/testcluster (`make testcluster-bin`). Tests
// share one cluster per test binary (Shared, StopShared) and isolate by
// namespace (Cluster.Namespace); DISCOVERY_SKIP_KUBE=1 skips them.
package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
	"github.com/discovery-platform/discovery/internal/testkit/kubenode"
	"github.com/discovery-platform/discovery/internal/testkit/proctest"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Options configure a cluster; the zero value is one node in a temp dir.
type Options struct {
	// Nodes is the number of process nodes, named node-1, node-2, … (default 1).
	Nodes int
	// Dir holds etcd's data, certificates, the kubeconfig, component logs
	// and pod logs. Default: a new temp dir, removed by Stop.
	Dir string
	// KeepDir keeps a temp Dir after Stop (for reading the logs).
	KeepDir bool
	// BinDir holds the binaries (default $DISCOVERY_KUBE_BIN, else
	// <repository root>/bin/testcluster).
	BinDir string
	// Logger receives the harness's and the nodes' logs (default: discard).
	Logger *slog.Logger
}

// Cluster is a running control plane with its nodes.
type Cluster struct {
	// Config is an admin client configuration (group system:masters).
	Config *rest.Config
	// Client is a clientset on Config.
	Client kubernetes.Interface
	// Kubeconfig is the path of an admin kubeconfig file.
	Kubeconfig string
	// Dir is the cluster's directory: <component>.log files are there.
	Dir string
	// Nodes are the process nodes.
	Nodes []*kubenode.Node
	// Catalog maps images to commands on every node (see SetImage).
	Catalog *kubenode.Catalog

	bin     string
	marker  string
	tempDir bool
	keepDir bool
	log     *slog.Logger
	etcd    *etcdtest.Etcd
	procs   []*child // in start order

	stopOnce sync.Once
}

// Start starts a cluster and returns once it can run pods: the API server
// is ready, every node is Ready without the not-ready taint, and the default
// ServiceAccount exists (the controller manager works). ctx bounds the
// start; the cluster runs until Stop. On error nothing is left running.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	bin, err := findBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	if opts.Nodes <= 0 {
		opts.Nodes = 1
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c = &Cluster{bin: bin, log: log, keepDir: opts.KeepDir, Catalog: kubenode.NewCatalog(),
		marker: "DISCOVERY_KUBETEST_RUN=" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	c.Dir = opts.Dir
	if c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "kubetest-"); err != nil {
			return nil, fmt.Errorf("kubetest: %w", err)
		}
		c.tempDir = true
	} else if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	defer func() {
		if err != nil {
			c.Stop()
			c = nil
		}
	}()
	started := time.Now()

	if c.etcd, err = etcdtest.StartAt(filepath.Join(c.Dir, "etcd")); err != nil {
		return nil, fmt.Errorf("kubetest: etcd: %w", err)
	}
	s, err := writeSecrets(c.Dir)
	if err != nil {
		return nil, fmt.Errorf("kubetest: certificates: %w", err)
	}
	// The API server binds its port seconds after it was found free, time
	// enough for a parallel test to take it: then it starts on a fresh one.
	for attempt := 1; ; attempt++ {
		err = c.startAPIServer(ctx, s)
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return nil, err
		}
		log.Info("kube-apiserver's port was taken; starting it on a fresh one", "attempt", attempt)
	}
	log.Info("kube-apiserver ready", "url", c.Config.Host, "after", time.Since(started))
	if _, err := c.start("kube-controller-manager", controllerManagerArgs(c.Dir, c.Kubeconfig, s)); err != nil {
		return nil, err
	}
	if _, err := c.start("kube-scheduler", schedulerArgs(c.Kubeconfig)); err != nil {
		return nil, err
	}

	ips := kubenode.NewIPPool(42)
	for i := 1; i <= opts.Nodes; i++ {
		n, err := kubenode.Start(ctx, kubenode.Options{
			Name: "node-" + strconv.Itoa(i), Client: c.Client, Catalog: c.Catalog, IPs: ips,
			Dir: filepath.Join(c.Dir, "nodes"), Env: c.podBaseEnv(), Logger: log,
		})
		if err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	if err := c.waitSchedulable(ctx); err != nil {
		return nil, err
	}
	log.Info("cluster ready", "after", time.Since(started), "dir", c.Dir)
	return c, nil
}

// startAPIServer runs kube-apiserver on a free port, with the kubeconfig and
// client for it, and waits until it is ready.
func (c *Cluster) startAPIServer(ctx context.Context, s *secrets) error {
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("kubetest: %w", err)
	}
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	if c.Config, err = writeKubeconfig(c.Kubeconfig, "https://127.0.0.1:"+strconv.Itoa(port), s); err != nil {
		return fmt.Errorf("kubetest: kubeconfig: %w", err)
	}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return fmt.Errorf("kubetest: %w", err)
	}
	apiserver, err := c.start("kube-apiserver", apiServerArgs(c.Dir, s, c.etcd.Endpoint, port))
	if err != nil {
		return err
	}
	if err := waitReady(ctx, c.Client, apiserver); err != nil {
		apiserver.stop(10 * time.Second)
		c.procs = c.procs[:len(c.procs)-1]
		return err
	}
	return nil
}

// start runs a component with its log in <Dir>/<name>.log.
func (c *Cluster) start(name string, args []string) (*child, error) {
	env := append(os.Environ(), c.marker)
	ch, err := startChild(name, filepath.Join(c.bin, name), args, filepath.Join(c.Dir, name+".log"), env)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, ch)
	return ch, nil
}

// podBaseEnv is what every pod process starts from: enough of this
// process's environment to find programs, plus the marker.
func (c *Cluster) podBaseEnv() []string {
	env := []string{c.marker}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "GOCOVERDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// SetImage maps image to argv on every node: a pod whose container has that
// image runs argv (with the container's command replacing it and its args
// appended, as for an image's entrypoint).
func (c *Cluster) SetImage(image string, argv []string) { c.Catalog.Set(image, argv) }

// PodPID returns the pid of the process of pod namespace/name, on whichever
// node runs it.
func (c *Cluster) PodPID(namespace, name string) (int, bool) {
	for _, n := range c.Nodes {
		if pid, ok := n.PodPID(namespace, name); ok {
			return pid, true
		}
	}
	return 0, false
}

// Processes lists the pod processes running on every node.
func (c *Cluster) Processes() []kubenode.Process {
	var out []kubenode.Process
	for _, n := range c.Nodes {
		out = append(out, n.Processes()...)
	}
	return out
}

// Marker is the KEY=VALUE every process of the cluster (components and
// pods) carries in its environment; proctest.Find(c.Marker()) finds them.
func (c *Cluster) Marker() string { return c.marker }

// Kubectl runs bin/testcluster/kubectl against the cluster and returns its
// standard output; a failure's error holds its standard error.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) ([]byte, error) {
	full := append([]string{"--kubeconfig=" + c.Kubeconfig, "--cache-dir=" + filepath.Join(c.Dir, "kubectl-cache")}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "kubectl"), full...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("kubectl %v: %w: %s", args, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// Stop tears the cluster down: nodes and their pods, scheduler, controller
// manager, API server, etcd, then anything left carrying the marker, then the
// temp dir. Safe to call more than once.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		for _, n := range c.Nodes {
			n.Stop()
		}
		for i := len(c.procs) - 1; i >= 0; i-- {
			c.procs[i].stop(5 * time.Second)
		}
		if c.etcd != nil {
			c.etcd.Stop()
		}
		proctest.KillAll(c.marker)
		if c.tempDir && !c.keepDir {
			if err := os.RemoveAll(c.Dir); err != nil && !errors.Is(err, os.ErrNotExist) {
				c.log.Warn("remove cluster dir", "dir", c.Dir, "err", err)
			}
		}
		c.log.Info("cluster stopped")
	})
}
