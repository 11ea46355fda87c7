package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	kuberuntime "github.com/discovery-platform/discovery/deployer/kubernetes"
	"github.com/discovery-platform/discovery/internal/testkit/kubetest"
	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
)

// The stories below run the real platform binary on the kubernetes runtime
// against a real control plane (internal/testkit/kubetest) whose process node runs
// pods as local processes. The platform runs outside the cluster with a
// kubeconfig holding a token of the `discovery` ServiceAccount bound to
// deploy/base/rbac.yaml's ClusterRole: the least privilege it ships with.

const (
	testappImage = "discovery/testapp:1"
	arenaImage   = "example/arena:1"
)

var (
	rbacOnce sync.Once
	rbacErr  error
)

// kube is a platform installation on the kubernetes runtime.
type kube struct {
	*Framework
	c *kubetest.Cluster
	// Prefix is this installation's namespace prefix: tests share the
	// cluster, each with its own tenant namespaces.
	Prefix string
}

func newKube(t *testing.T) *kube {
	c := kubetest.Shared(t)
	c.SetImage(testappImage, []string{build.Binary(t)})
	c.SetImage(arenaImage, []string{arenaBinary(t)})
	rbacOnce.Do(func() { rbacErr = applyRBAC(t.Context(), c) })
	require.NoError(t, rbacErr)
	kubeconfig := serviceAccountKubeconfig(t, c)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	k := &kube{Framework: New(t), c: c, Prefix: "e2e-" + hex.EncodeToString(b) + "-"}
	k.Args = append(k.Args, "--runtime", "kubernetes", "--kubeconfig", kubeconfig, "--namespace-prefix", k.Prefix)
	t.Cleanup(func() {
		if t.Failed() {
			pods, _ := c.Client.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
			for _, p := range pods.Items {
				if strings.HasPrefix(p.Namespace, k.Prefix) {
					t.Logf("pod %s/%s: %s ready=%v node=%q", p.Namespace, p.Name, p.Status.Phase, kuberuntime.PodReady(&p), p.Spec.NodeName)
				}
			}
		}
	})
	return k
}

// applyRBAC creates the platform's namespace, ServiceAccount and
// ClusterRole exactly as deploy/base ships them.
func applyRBAC(ctx context.Context, c *kubetest.Cluster) error {
	base := filepath.Join("..", "..", "deploy", "base")
	for _, f := range []string{"namespace.yaml", "rbac.yaml"} {
		if out, err := c.Kubectl(ctx, "-n", "discovery", "apply", "-f", filepath.Join(base, f)); err != nil {
			return fmt.Errorf("kubectl apply %s: %v\n%s", f, err, out)
		}
	}
	return nil
}

// serviceAccountKubeconfig writes a kubeconfig that authenticates as the
// discovery ServiceAccount with a fresh token.
func serviceAccountKubeconfig(t *testing.T, c *kubetest.Cluster) string {
	ttl := int64(3600)
	tok, err := c.Client.CoreV1().ServiceAccounts("discovery").CreateToken(t.Context(), "discovery",
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &ttl}}, metav1.CreateOptions{})
	require.NoError(t, err)
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: c.Config.Host, CertificateAuthorityData: c.Config.CAData, InsecureSkipTLSVerify: len(c.Config.CAData) == 0}
	cfg.AuthInfos["discovery"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts["discovery"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "discovery"}
	cfg.CurrentContext = "discovery"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*cfg, path))
	return path
}

// pods lists the pods of a revision of the default tenant, by replica id.
func (k *kube) pods(rev string) map[string]corev1.Pod {
	return k.tenantPods("default", rev)
}

func (k *kube) tenantPods(tenant, rev string) map[string]corev1.Pod {
	list, err := k.c.Client.CoreV1().Pods(k.Prefix+tenant).List(context.Background(), metav1.ListOptions{LabelSelector: "discovery/revision=" + rev})
	require.NoError(k.t, err)
	out := map[string]corev1.Pod{}
	for _, p := range list.Items {
		out[p.Labels["discovery/replica"]] = p
	}
	return out
}

// deployImage deploys image with env and returns the revision id.
func (k *kube) deployImage(app, image string, env map[string]string) string {
	var rev Revision
	require.Equal(k.t, 202, k.Call("POST", "/apps/"+app+"/revisions", map[string]any{"image": image, "env": env}, &rev))
	return rev.ID
}

// TestOriginalDemoReplayOnKubernetes is the original demo on pods: arena v1
// runs, v2 is deployed beside it, the players on v1 keep playing by v1's
// rules, and v1's pod is deleted only once its players have left.
func TestOriginalDemoReplayOnKubernetes(t *testing.T) {
	k := newKube(t)
	k.Start()
	replayOriginalDemo(t, k.Framework, map[string]any{"image": arenaImage}, func(rev string) int {
		n := 0
		for _, p := range k.pods(rev) {
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
				n++
			}
		}
		return n
	})
}

// TestKubernetesNeverDeletesABusyPod: a scale-down deletes only empty pods,
// and a draining revision loses its empty pods after reconnect_grace while
// the pod with a player stays, serving, until the player leaves.
func TestKubernetesNeverDeletesABusyPod(t *testing.T) {
	k := newKube(t)
	k.Start()
	require.Equal(t, 201, k.Call("POST", "/apps", map[string]any{"name": "busy", "replicas": 3, "health_path": "/healthz",
		"reconnect_grace": "1s", "shutdown_grace": "2s"}, nil))
	v1 := k.deployImage("busy", testappImage, nil)
	k.Eventually("v1 active with 3 ready pods", 90*time.Second, func() bool {
		r := k.Revisions("busy")[v1]
		return r.State == "active" && k.readyReplicas("busy") == 3
	})
	s, err := open(t, k.Framework, "busy")
	require.NoError(t, err)
	// Scale down to 1: the two pods without a player go, never the busy one.
	busy := busyReplica(t, k, "busy")
	require.Equal(t, 200, k.Call("PATCH", "/apps/busy", map[string]any{"replicas": 1}, nil))
	k.Eventually("v1 down to its busy pod", 60*time.Second, func() bool {
		pods := k.pods(v1)
		_, kept := pods[busy]
		return len(pods) == 1 && kept
	})

	// Deploy v2 with 2 replicas: v1 drains. Scale v1's share back up first so
	// it has an empty pod next to the busy one while it drains.
	require.Equal(t, 200, k.Call("PATCH", "/apps/busy", map[string]any{"replicas": 2}, nil))
	k.Eventually("v1 back to 2 pods", 60*time.Second, func() bool { return len(k.pods(v1)) == 2 && k.readyReplicas("busy") == 2 })
	v2 := k.deployImage("busy", testappImage, map[string]string{"VERSION": "2"})
	k.WaitState("busy", v2, "active", 90*time.Second)
	k.WaitState("busy", v1, "draining", 10*time.Second)
	// The empty v1 pod goes after reconnect_grace; the busy one stays.
	k.Eventually("v1's empty pod deleted", 60*time.Second, func() bool {
		pods := k.pods(v1)
		_, kept := pods[busy]
		return len(pods) == 1 && kept
	})
	assert.Equal(t, "draining", k.Revisions("busy")[v1].State, "a revision with a player is not retired")
	p := k.pods(v1)[busy]
	assert.Nil(t, p.DeletionTimestamp, "the busy pod is not being deleted")

	// The player leaves: v1 is retired and its last pod deleted.
	require.NoError(t, s.close(), "the session was never cut")
	k.WaitState("busy", v1, "retired", 60*time.Second)
	k.Eventually("v1's last pod gone", 60*time.Second, func() bool { return len(k.pods(v1)) == 0 })
}

// busyReplica is the one replica of app with a session.
func busyReplica(t *testing.T, k *kube, app string) string {
	var id string
	k.Eventually("one replica with a session", 10*time.Second, func() bool {
		var out struct{ Replicas map[string]int }
		if k.Call("GET", "/apps/"+app+"/sessions", nil, &out) != 200 {
			return false
		}
		id = ""
		for r, n := range out.Replicas {
			if n > 0 {
				if id != "" {
					return false
				}
				id = r
			}
		}
		return id != ""
	})
	return id
}

// TestKubernetesReplacesACrashedPod: the process of the active revision's
// pod is killed; the platform records the crash (with its output), deletes
// the failed pod and starts a new replica; the revision stays active.
func TestKubernetesReplacesACrashedPod(t *testing.T) {
	k := newKube(t)
	k.Start()
	require.Equal(t, 201, k.Call("POST", "/apps", map[string]any{"name": "crashy", "replicas": 1, "health_path": "/healthz"}, nil))
	// A command alone runs only on the process runtime: refused, nothing made.
	require.Equal(t, 400, k.Call("POST", "/apps/crashy/revisions", map[string]any{"command": []string{"/bin/true"}}, nil))
	require.Empty(t, k.Revisions("crashy"))
	v1 := k.deployImage("crashy", testappImage, nil)
	k.WaitState("crashy", v1, "active", 90*time.Second)
	pods := k.pods(v1)
	require.Len(t, pods, 1)
	var first string
	var pod corev1.Pod
	for id, p := range pods {
		first, pod = id, p
	}
	// The replica's log is served through the API from pods/log.
	k.Eventually("the replica's log through the API", 10*time.Second, func() bool {
		req, err := newRequest("GET", k.APIURL()+"/api/v1/tenants/default/apps/crashy/revisions/"+v1+"/replicas/"+first+"/logs?tail=4096", "", k.Token)
		require.NoError(t, err)
		return strings.Contains(doBody(t, req), "listening on "+pod.Status.PodIP)
	})

	pid, ok := k.c.PodPID(pod.Namespace, pod.Name)
	require.True(t, ok, "the node runs the pod's process")
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))

	k.Eventually("a new replica ready in place of the crashed one", 60*time.Second, func() bool {
		r := k.Revisions("crashy")[v1]
		return r.State == "active" && len(r.Replicas) == 1 && r.Replicas[0].ID != first && r.Replicas[0].State == "ready"
	})
	k.Eventually("the failed pod deleted", 30*time.Second, func() bool {
		_, still := k.pods(v1)[first]
		return !still
	})
	var evs struct {
		Events []struct{ Type, Message string }
	}
	require.Equal(t, 200, k.Call("GET", "/apps/crashy/events", nil, &evs))
	found := false
	for _, e := range evs.Events {
		found = found || (strings.Contains(e.Message, "replica "+first+" exited unexpectedly") && strings.Contains(e.Message, "signal: killed"))
	}
	assert.True(t, found, "a crash event names the replica and how it ended: %+v", evs.Events)
}

// TestKubernetesTenantsStayInTheirNamespaces: each tenant's pods live in its
// own namespace beside a ResourceQuota mirroring its quota (and following a
// change of it); deleting a tenant deletes its namespace.
func TestKubernetesTenantsStayInTheirNamespaces(t *testing.T) {
	k := newKube(t)
	k.Start()
	admin := func(method, path, body string) int {
		req, err := newRequest(method, k.APIURL()+"/api/v1"+path, body, k.Token)
		require.NoError(t, err)
		return do(t, req)
	}
	quota := map[string]int{"acme": 3, "globex": 5}
	for tenant, replicas := range quota {
		require.Equal(t, 201, admin("POST", "/tenants", `{"name":"`+tenant+`"}`))
		require.Equal(t, 200, admin("PUT", "/tenants/"+tenant+"/quota",
			fmt.Sprintf(`{"max_apps":2,"max_replicas":%d,"max_revisions":3,"max_cpu_millis":500,"max_memory_mb":256}`, replicas)))
		require.Equal(t, 201, admin("POST", "/tenants/"+tenant+"/apps", `{"name":"game","replicas":1,"health_path":"/healthz"}`))
		require.Equal(t, 202, admin("POST", "/tenants/"+tenant+"/apps/game/revisions", `{"image":"`+testappImage+`","resources":{"cpu_millis":200,"memory_mb":64}}`))
	}
	core := k.c.Client.CoreV1()
	ctx := t.Context()
	for tenant, replicas := range quota {
		ns := k.Prefix + tenant
		k.Eventually(tenant+"'s pod ready in "+ns, 90*time.Second, func() bool {
			list, err := core.Pods(ns).List(ctx, metav1.ListOptions{})
			return err == nil && len(list.Items) == 1 && kuberuntime.PodReady(&list.Items[0])
		})
		list, err := core.Pods(ns).List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		assert.Equal(t, tenant, list.Items[0].Labels["discovery/tenant"])
		assert.Equal(t, "game", list.Items[0].Labels["discovery/app"])
		rq, err := core.ResourceQuotas(ns).Get(ctx, "discovery-quota", metav1.GetOptions{})
		require.NoError(t, err)
		pods := rq.Spec.Hard[corev1.ResourcePods]
		assert.Equal(t, int64(replicas), pods.Value(), "%s's ResourceQuota mirrors its max_replicas", tenant)
		cpu := rq.Spec.Hard[corev1.ResourceRequestsCPU]
		assert.Equal(t, int64(500*replicas), cpu.MilliValue())
	}
	// No tenant's pod lives anywhere but its own namespace.
	all, err := core.Pods("").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=discovery"})
	require.NoError(t, err)
	for _, p := range all.Items {
		if strings.HasPrefix(p.Namespace, k.Prefix) {
			assert.Equal(t, k.Prefix+p.Labels["discovery/tenant"], p.Namespace)
		}
	}

	// acme's quota changes: its ResourceQuota follows; globex's does not move.
	require.Equal(t, 200, admin("PUT", "/tenants/acme/quota", `{"max_apps":2,"max_replicas":4,"max_revisions":3,"max_cpu_millis":500,"max_memory_mb":256}`))
	k.Eventually("acme's ResourceQuota at 4 pods", 30*time.Second, func() bool {
		rq, err := core.ResourceQuotas(k.Prefix+"acme").Get(ctx, "discovery-quota", metav1.GetOptions{})
		if err != nil {
			return false
		}
		pods := rq.Spec.Hard[corev1.ResourcePods]
		return pods.Value() == 4
	})
	rq, err := core.ResourceQuotas(k.Prefix+"globex").Get(ctx, "discovery-quota", metav1.GetOptions{})
	require.NoError(t, err)
	pods := rq.Spec.Hard[corev1.ResourcePods]
	assert.Equal(t, int64(5), pods.Value())

	// globex is deleted: its app retires, then its namespace goes.
	require.Equal(t, 202, admin("DELETE", "/tenants/globex", ""))
	k.Eventually("globex's namespace deleted", 90*time.Second, func() bool {
		n, err := core.Namespaces().Get(ctx, k.Prefix+"globex", metav1.GetOptions{})
		return apierrors.IsNotFound(err) || (err == nil && n.DeletionTimestamp != nil)
	})
	_, err = core.Namespaces().Get(ctx, k.Prefix+"acme", metav1.GetOptions{})
	require.NoError(t, err, "acme's namespace stays")
}
