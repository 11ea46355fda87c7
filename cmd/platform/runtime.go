package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/discovery-platform/discovery/api"
	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/deployer"
	kuberuntime "github.com/discovery-platform/discovery/deployer/kubernetes"
	"github.com/discovery-platform/discovery/deployer/process"
	"github.com/discovery-platform/discovery/tenants"
)

// runtime is what the leader drives: a deployer.Runtime it closes when it
// stops leading. Replicas outlive it either way.
type runtime interface {
	deployer.Runtime
	Close() error
}

// tenantRuntime is a runtime with objects per tenant (Kubernetes: the
// namespace, its quota and network policy).
type tenantRuntime interface {
	SyncTenant(ctx context.Context, tenant string, q *tenants.Quota) error
	DeleteTenant(ctx context.Context, tenant string) error
}

// kubeClient connects to the cluster once, at start, so a bad kubeconfig
// fails the start rather than the first rollout.
func (m *Main) kubeClient() (kubernetes.Interface, error) {
	if m.kube != nil {
		return m.kube, nil
	}
	var cfg *rest.Config
	var err error
	if m.Config.Kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", m.Config.Kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("--runtime kubernetes: %w (set --kubeconfig outside a cluster)", err)
	}
	// client-go's default 5 requests/s would throttle a rollout of many pods.
	cfg.QPS, cfg.Burst = 50, 100
	cfg.UserAgent = "discovery-platform/" + version
	m.kube, err = kubernetes.NewForConfig(cfg)
	return m.kube, err
}

// openRuntime opens the configured runtime for a new leader term.
func (m *Main) openRuntime(ctx context.Context, apiURL string, quotas deployer.QuotaSource, seqs tenantSeqs) (runtime, error) {
	c := m.Config
	if c.Runtime == "kubernetes" {
		cli, err := m.kubeClient()
		if err != nil {
			return nil, err
		}
		return kuberuntime.New(ctx, kuberuntime.Config{
			Client: cli, NamespacePrefix: c.NamespacePrefix, Quotas: quotas,
			Env:    map[string]string{"DISCOVERY_API": apiURL},
			Logger: m.Log.With("part", "runtime"),
		})
	}
	cfg := process.Config{
		StateDir:      c.ReplicaDir,
		Supervisor:    c.Supervisor,
		ProbeInterval: c.ProbeInterval,
		// Never the platform's own environment: it may hold secrets.
		Env:    append(append(process.DefaultEnv(), c.ReplicaEnv...), "DISCOVERY_API="+apiURL),
		Logger: m.Log.With("part", "runtime"),
	}
	if c.ReplicaUIDs.on() {
		cfg.Users = tenantUsers{uids: c.ReplicaUIDs, seqs: seqs}
	}
	return process.New(cfg)
}

// logReader serves replica logs on every API instance, leader or not.
func (m *Main) logReader() (apps.LogReader, error) {
	if m.Config.Runtime == "kubernetes" {
		cli, err := m.kubeClient()
		if err != nil {
			return nil, err
		}
		return kuberuntime.LogReader{Client: cli, NamespacePrefix: m.Config.NamespacePrefix}, nil
	}
	return process.LogReader{StateDir: m.Config.ReplicaDir}, nil
}

// usageReader measures replicas' CPU and memory: from /proc on the process
// runtime; nil on Kubernetes (its metrics API is not read yet).
func (m *Main) usageReader() api.UsageSource {
	if m.Config.Runtime == "kubernetes" {
		return nil
	}
	return &process.UsageReader{StateDir: m.Config.ReplicaDir}
}

// syncTenants keeps every tenant's runtime objects in line with its quota
// (a changed quota reaches the namespace's ResourceQuota within a pass), and
// wraps ops so a deleted tenant's namespace goes with its last app.
func (m *Main) syncTenants(ctx context.Context, rt runtime, ts *tenants.Store, ops *apps.TenantService) *apps.TenantService {
	tr, ok := rt.(tenantRuntime)
	if !ok {
		return ops
	}
	wrapped := *ops
	wrapped.OnGone = func(tenant string) error {
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := tr.DeleteTenant(dctx, tenant); err != nil {
			return err
		}
		if ops.OnGone != nil {
			return ops.OnGone(tenant)
		}
		return nil
	}
	go wait.UntilWithContext(ctx, func(ctx context.Context) {
		list, err := ts.List(ctx)
		for _, t := range list {
			if t.Deleting {
				continue
			}
			q := t.Quota
			if err := tr.SyncTenant(ctx, t.Name, &q); err != nil && ctx.Err() == nil {
				m.Log.Warn("tenant namespace not in sync; will retry", "tenant", t.Name, "err", err)
			}
		}
		if err != nil && ctx.Err() == nil {
			m.Log.Warn("listing tenants for the runtime", "err", err)
		}
	}, 5*time.Second)
	return &wrapped
}

// uidRange is a range of uids for tenants' replicas.
type uidRange struct{ First, Last int }

func (r uidRange) on() bool { return r.Last > 0 }

// parseUIDRange reads --replica-uids: FIRST-LAST, off, or auto (a default
// range when the platform runs as root, off otherwise: switching uid needs
// root).
func parseUIDRange(s string, root bool) (uidRange, error) {
	switch s {
	case "off", "":
		return uidRange{}, nil
	case "auto":
		if !root {
			return uidRange{}, nil
		}
		return uidRange{First: 600000, Last: 699999}, nil
	}
	a, b, ok := strings.Cut(s, "-")
	first, err1 := strconv.Atoi(a)
	last, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || first < 1000 || last <= first || last > 1<<31-2 {
		return uidRange{}, fmt.Errorf("--replica-uids %q: want FIRST-LAST with 1000 <= FIRST < LAST, off or auto", s)
	}
	if !root {
		return uidRange{}, fmt.Errorf("--replica-uids %s: switching replicas to other uids needs the platform to run as root; use off", s)
	}
	return uidRange{First: first, Last: last}, nil
}

// tenantSeqs gives a tenant's number (tenants.Store).
type tenantSeqs interface {
	Seq(ctx context.Context, tenant string) (int, error)
}

// tenantUsers maps a tenant to its replicas' uid and gid: the first of the
// range plus the tenant's number, which is never reused, so no two tenants
// ever share a uid.
type tenantUsers struct {
	uids uidRange
	seqs tenantSeqs
}

func (u tenantUsers) User(ctx context.Context, tenant string) (int, int, error) {
	seq, err := u.seqs.Seq(ctx, tenant)
	if err != nil {
		return 0, 0, fmt.Errorf("uid of tenant %s: %w", tenant, err)
	}
	uid := u.uids.First + seq
	if uid > u.uids.Last {
		return 0, 0, fmt.Errorf("tenant %s is number %d: past the end of --replica-uids %d-%d", tenant, seq, u.uids.First, u.uids.Last)
	}
	return uid, uid, nil
}

// privateDataDir makes the data dir the platform's alone: mode 0700, and
// nothing in it readable by others. When replicas run as other uids in a
// replica dir inside it, the data dir is 0711 instead (they must traverse it
// to reach their working directories) and everything else in it stays
// private.
func privateDataDir(c Config) error {
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return err
	}
	inside := false
	if rel, err := filepath.Rel(c.DataDir, c.ReplicaDir); err == nil && !strings.HasPrefix(rel, "..") && rel != "." {
		inside = c.Runtime == "process" && c.ReplicaUIDs.on()
	}
	mode := os.FileMode(0o700)
	if inside {
		mode = 0o711
	}
	if err := os.Chmod(c.DataDir, mode); err != nil {
		return err
	}
	entries, err := os.ReadDir(c.DataDir)
	if err != nil {
		return err
	}
	replicaTop := ""
	if inside {
		rel, _ := filepath.Rel(c.DataDir, c.ReplicaDir)
		replicaTop = strings.Split(rel, string(filepath.Separator))[0]
	}
	for _, e := range entries {
		if e.Name() == replicaTop || e.Type()&os.ModeSymlink != 0 {
			continue
		}
		p := filepath.Join(c.DataDir, e.Name())
		info, err := e.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, info.Mode().Perm()&0o700); err != nil {
				return err
			}
		}
	}
	return nil
}
