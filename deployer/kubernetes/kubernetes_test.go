package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/deployer"
	"github.com/discovery-platform/discovery/deployer/runtimetest"
	"github.com/discovery-platform/discovery/internal/testkit/kubetest"
	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
	"github.com/discovery-platform/discovery/tenants"
)

// The tests run against a real control plane (kube-apiserver, controller
// manager, scheduler) with a process node that runs pods as local
// processes; DISCOVERY_SKIP_KUBE=1 skips them on a developer's machine.

func TestMain(m *testing.M) {
	code := m.Run()
	kubetest.StopShared()
	build.Cleanup()
	os.Exit(code)
}

const testImage = "discovery/testapp:1"

// cluster is the shared cluster with the testapp image mapped to its binary.
func cluster(t *testing.T) *kubetest.Cluster {
	c := kubetest.Shared(t)
	c.SetImage(testImage, []string{build.Binary(t)})
	return c
}

// quotas is a fixed quota per tenant: test configuration, as a tenants
// store would answer (the real store is used end to end in test/e2e).
type quotas map[string]tenants.Quota

func (q quotas) Quota(_ context.Context, tenant string) (tenants.Quota, error) {
	if v, ok := q[tenant]; ok {
		return v, nil
	}
	return tenants.Quota{}, tenants.ErrNotFound
}

// uniq makes a namespace prefix of this run's own: a namespace deleted by a
// previous run (go test -count=N) may still be terminating.
func uniq(prefix string) string {
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b) + "-"
}

func open(t *testing.T, c *kubetest.Cluster, prefix string, q deployer.QuotaSource) *Runtime {
	t.Helper()
	rt, err := New(t.Context(), Config{Client: c.Client, NamespacePrefix: prefix, Quotas: q,
		Env: map[string]string{"DISCOVERY_API": "http://127.0.0.1:1"}, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close() })
	return rt
}

func spec(id apps.ReplicaID, env map[string]string) deployer.ReplicaSpec {
	return deployer.ReplicaSpec{ReplicaID: id, Image: testImage, Env: env, Port: 8080, ShutdownGrace: 5 * time.Second}
}

// TestContract holds the Kubernetes runtime to the contract every runtime keeps.
func TestContract(t *testing.T) {
	c := cluster(t)
	runtimetest.Run(t, runtimetest.Suite{
		Tenant: "contract",
		Within: 60 * time.Second,
		Runtime: func(t *testing.T) deployer.Runtime {
			return open(t, c, "rt-", nil)
		},
		Spec: func(_ *testing.T, id apps.ReplicaID, env map[string]string) deployer.ReplicaSpec {
			return spec(id, env)
		},
	})
}

func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

func waitReady(t *testing.T, rt *Runtime, id apps.ReplicaID) deployer.Observed {
	t.Helper()
	var got deployer.Observed
	t.Cleanup(func() {
		if t.Failed() {
			p, err := rt.client.CoreV1().Pods(rt.Namespace(id.Tenant)).Get(context.Background(), podName(id), metav1.GetOptions{})
			if err == nil {
				t.Logf("pod %s: phase %s, node %q, conditions %+v, statuses %+v", p.Name, p.Status.Phase, p.Spec.NodeName, p.Status.Conditions, p.Status.ContainerStatuses)
			} else {
				t.Logf("pod %s: %v", podName(id), err)
			}
		}
	})
	eventually(t, "replica "+id.Replica+" ready", 60*time.Second, func() bool {
		list, err := rt.List(t.Context(), id.Tenant, id.App)
		require.NoError(t, err)
		for _, o := range list {
			if o.ReplicaID == id && o.State == apps.ReplicaReady {
				got = o
				return true
			}
		}
		return false
	})
	return got
}

// TestTenantObjectsMirrorTheQuota: a tenant's pods live in its namespace
// only, beside a ResourceQuota and LimitRange that mirror its quota (and
// follow a change of it), an isolating NetworkPolicy and a replica
// ServiceAccount without an API token; deleting the tenant deletes it all.
func TestTenantObjectsMirrorTheQuota(t *testing.T) {
	c := cluster(t)
	q := quotas{
		"a": {MaxApps: 5, MaxReplicas: 4, MaxRevisions: 3, MaxCPUMillis: 500, MaxMemoryMB: 256},
		"b": {MaxApps: 5, MaxReplicas: 9, MaxRevisions: 3, MaxCPUMillis: 2000, MaxMemoryMB: 1024},
	}
	pfx := uniq("tq")
	rt := open(t, c, pfx, q)
	ctx := t.Context()
	ida := apps.ReplicaID{Tenant: "a", App: "arena", Revision: "9d00cc18", Replica: "aa0001"}
	idb := apps.ReplicaID{Tenant: "b", App: "arena", Revision: "1a2b3c4d", Replica: "bb0001"}
	sa := spec(ida, nil)
	sa.Resources = &apps.Resources{CPUMillis: 250, MemoryMB: 128}
	require.NoError(t, rt.Start(ctx, sa))
	require.NoError(t, rt.Start(ctx, spec(idb, nil)))
	waitReady(t, rt, ida)
	waitReady(t, rt, idb)

	core := c.Client.CoreV1()
	for tenant, ns := range map[string]string{"a": pfx + "a", "b": pfx + "b"} {
		n, err := core.Namespaces().Get(ctx, ns, metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, tenant, n.Labels[LabelTenant])
		pods, err := core.Pods(ns).List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		require.Len(t, pods.Items, 1, "each tenant's namespace holds its own pod only")
		assert.Equal(t, tenant, pods.Items[0].Labels[LabelTenant])

		rq, err := core.ResourceQuotas(ns).Get(ctx, QuotaName, metav1.GetOptions{})
		require.NoError(t, err)
		want := QuotaHard(q[tenant])
		for name, v := range want {
			got := rq.Spec.Hard[name]
			assert.Zero(t, v.Cmp(got), "%s %s: want %s, got %s", ns, name, v.String(), got.String())
		}
		np, err := c.Client.NetworkingV1().NetworkPolicies(ns).Get(ctx, NetworkPolicyName, metav1.GetOptions{})
		require.NoError(t, err)
		assert.Empty(t, np.Spec.PodSelector.MatchLabels, "the policy covers every pod of the namespace")
		require.Len(t, np.Spec.Ingress, 1)
		require.Len(t, np.Spec.Ingress[0].From, 2, "from the namespace itself and from Discovery's, nothing else")
		acct, err := core.ServiceAccounts(ns).Get(ctx, ServiceAccount, metav1.GetOptions{})
		require.NoError(t, err)
		require.NotNil(t, acct.AutomountServiceAccountToken)
		assert.False(t, *acct.AutomountServiceAccountToken)
	}

	// A's pod asks for its resources as request and limit; the namespace's
	// LimitRange carries A's per-replica bound.
	p, err := core.Pods(pfx+"a").Get(ctx, podName(ida), metav1.GetOptions{})
	require.NoError(t, err)
	res := p.Spec.Containers[0].Resources
	assert.Equal(t, "250m", ptr(res.Requests[corev1.ResourceCPU]).String())
	assert.Equal(t, "128Mi", ptr(res.Limits[corev1.ResourceMemory]).String())
	lr, err := core.LimitRanges(pfx+"a").Get(ctx, LimitRangeName, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "500m", ptr(lr.Spec.Limits[0].Max[corev1.ResourceCPU]).String())

	// The cluster itself refuses a pod past A's per-replica bound.
	big := spec(apps.ReplicaID{Tenant: "a", App: "arena", Revision: "9d00cc18", Replica: "aa0002"}, nil)
	big.Resources = &apps.Resources{CPUMillis: 900}
	err = rt.Start(ctx, big)
	require.Error(t, err, "the LimitRange refuses 900m when the bound is 500m")

	// A's quota changes: the ResourceQuota follows.
	q2 := q["a"]
	q2.MaxReplicas = 7
	require.NoError(t, rt.SyncTenant(ctx, "a", &q2))
	rq, err := core.ResourceQuotas(pfx+"a").Get(ctx, QuotaName, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "7", ptr(rq.Spec.Hard[corev1.ResourcePods]).String())

	// Deleting tenant B deletes its namespace, with its pods.
	require.NoError(t, rt.Stop(ctx, idb, time.Second))
	require.NoError(t, rt.DeleteTenant(ctx, "b"))
	eventually(t, "namespace "+pfx+"b going", 30*time.Second, func() bool {
		n, err := core.Namespaces().Get(ctx, pfx+"b", metav1.GetOptions{})
		return apierrors.IsNotFound(err) || (err == nil && n.DeletionTimestamp != nil)
	})
	require.NoError(t, rt.Stop(ctx, ida, time.Second))
}

func ptr(q resource.Quantity) *resource.Quantity { return &q }

// TestRestartedRuntimeSeesRunningPods: a platform restart opens a new
// runtime, whose first List already shows the running replica (the pod
// outlived the old runtime, and New waits for the informer's first list).
func TestRestartedRuntimeSeesRunningPods(t *testing.T) {
	c := cluster(t)
	pfx := uniq("rs")
	first := open(t, c, pfx, nil)
	id := apps.ReplicaID{Tenant: "t", App: "arena", Revision: "9d00cc18", Replica: "r00001"}
	require.NoError(t, first.Start(t.Context(), spec(id, nil)))
	before := waitReady(t, first, id)
	require.NoError(t, first.Close())

	second := open(t, c, pfx, nil)
	list, err := second.List(t.Context(), id.Tenant, id.App)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, apps.ReplicaReady, list[0].State)
	assert.Equal(t, before.Address, list[0].Address)
	require.NoError(t, second.Stop(t.Context(), id, time.Second))
}

// TestStartWithoutImageIsRefused: the kubernetes runtime needs an image.
func TestStartWithoutImageIsRefused(t *testing.T) {
	c := cluster(t)
	rt := open(t, c, uniq("ni"), nil)
	s := spec(apps.ReplicaID{Tenant: "t", App: "x", Revision: "9d00cc18", Replica: "r1"}, nil)
	s.Image, s.Command = "", []string{"/bin/true"}
	require.ErrorIs(t, rt.Start(t.Context(), s), ErrNoImage)
}
