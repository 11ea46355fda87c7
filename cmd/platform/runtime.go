package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/discovery-platform/discovery/api"
	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/deployer"
	kuberuntime "github.com/discovery-platform/discovery/deployer/kubernetes"
	"github.com/discovery-platform/discovery/deployer/process"
	"github.com/discovery-platform/discovery/internal/etcdmirror"
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
func (m *Main) openRuntime(ctx context.Context, apiURL string, quotas deployer.QuotaSource) (runtime, error) {
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
	return process.New(process.Config{
		StateDir:      c.ReplicaDir,
		ProbeInterval: c.ProbeInterval,
		Env:           append(os.Environ(), "DISCOVERY_API="+apiURL),
		Logger:        m.Log.With("part", "runtime"),
	})
}

// logReader serves replica logs on every API instance, leader or not.
func (m *Main) logReader() (api.Logs, error) {
	if m.Config.Runtime == "kubernetes" {
		cli, err := m.kubeClient()
		if err != nil {
			return nil, err
		}
		return kuberuntime.LogReader{Client: cli, NamespacePrefix: m.Config.NamespacePrefix}, nil
	}
	return process.LogReader{StateDir: m.Config.ReplicaDir}, nil
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
	go func() {
		for {
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
			if !etcdmirror.Sleep(ctx, 5*time.Second) {
				return
			}
		}
	}()
	return &wrapped
}
