package kubetest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	kuberuntime "github.com/discovery-platform/discovery/deployer/kubernetes"
	"github.com/discovery-platform/discovery/internal/testkit/kubetest"
)

// The story of a Deployment on the test cluster: the controller manager
// makes a ReplicaSet and its pods, the scheduler binds them to the process
// node, which runs each on its own loopback address until the probe says
// ready; both answer HTTP on their pod IP.
func TestDeploymentBecomesReadyPods(t *testing.T) {
	c, ns := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t.Logf("cluster start to ready: %s", kubetest.SharedStartTime().Round(time.Millisecond))

	labels := map[string]string{"app": "web"}
	tmpl := testappPod("web").Spec
	tmpl.RestartPolicy = corev1.RestartPolicyAlways // the only policy a Deployment allows
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: tmpl},
		},
	}
	created := time.Now()
	_, err := c.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	require.NoError(t, err)

	_, err = c.WaitFor(ctx, c.Client.AppsV1().RESTClient(), "deployments", ns, fields.OneTermEqualSelector("metadata.name", "web"), &appsv1.Deployment{},
		func(ev watch.Event) (bool, error) {
			d, _ := ev.Object.(*appsv1.Deployment)
			return d != nil && d.Status.ReadyReplicas == 2 && d.Status.AvailableReplicas == 2, nil
		})
	require.NoError(t, err, "deployment never had 2 ready replicas")
	t.Logf("deployment create to 2 ready replicas: %s", time.Since(created).Round(time.Millisecond))

	pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	require.NoError(t, err)
	require.Len(t, pods.Items, 2)
	ips := map[string]bool{}
	pool := netip.MustParsePrefix("127.42.0.0/16")
	for _, p := range pods.Items {
		assert.Equal(t, corev1.PodRunning, p.Status.Phase)
		assert.True(t, kuberuntime.PodReady(&p), "pod %s not ready", p.Name)
		assert.Equal(t, "node-1", p.Spec.NodeName)
		assert.Equal(t, "127.0.0.1", p.Status.HostIP)
		ip, err := netip.ParseAddr(p.Status.PodIP)
		require.NoError(t, err)
		assert.True(t, pool.Contains(ip), "pod IP %s outside the node's pool", ip)
		ips[p.Status.PodIP] = true
		require.Len(t, p.Status.ContainerStatuses, 1)
		cs := p.Status.ContainerStatuses[0]
		assert.True(t, cs.Ready)
		assert.NotNil(t, cs.State.Running)
		assert.NotNil(t, p.Status.StartTime)

		// The pod answers on its own address, from the process the node runs.
		body := get(t, fmt.Sprintf("http://%s:8080/echo?msg=%s", p.Status.PodIP, p.Name))
		assert.Equal(t, p.Name, body)
		pid, ok := c.PodPID(ns, p.Name)
		require.True(t, ok, "no process for %s", p.Name)
		assert.Contains(t, get(t, fmt.Sprintf("http://%s:8080/", p.Status.PodIP)), fmt.Sprintf(`"pid":%d`, pid))
	}
	assert.Len(t, ips, 2, "pod IPs must differ: %v", ips)

	running := 0
	for _, proc := range c.Processes() {
		if proc.Namespace == ns {
			running++
		}
	}
	assert.Equal(t, 2, running, "processes of namespace %s", ns)
}

func get(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", url, b)
	return string(b)
}

// The node must never look unhealthy to the node lifecycle controller: its
// Lease is renewed (well within the grace period) and it carries no
// not-ready or unreachable taint. Waiting out the 40 s grace period would
// prove the same more slowly.
func TestNodeStaysReady(t *testing.T) {
	c := kubetest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leases := c.Client.CoordinationV1().Leases("kube-node-lease")
	first, err := leases.Get(ctx, "node-1", metav1.GetOptions{})
	require.NoError(t, err)
	require.NotNil(t, first.Spec.RenewTime)
	assert.Equal(t, "node-1", ptr.Deref(first.Spec.HolderIdentity, ""))
	assert.Equal(t, int32(40), ptr.Deref(first.Spec.LeaseDurationSeconds, 0))

	_, err = c.WaitFor(ctx, c.Client.CoordinationV1().RESTClient(), "leases", "kube-node-lease", fields.OneTermEqualSelector("metadata.name", "node-1"), &coordinationv1.Lease{},
		func(ev watch.Event) (bool, error) {
			l, _ := ev.Object.(*coordinationv1.Lease)
			return l != nil && l.Spec.RenewTime != nil && l.Spec.RenewTime.After(first.Spec.RenewTime.Time), nil
		})
	require.NoError(t, err, "the node's lease was not renewed")

	node, err := c.Client.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
	require.NoError(t, err)
	assert.True(t, kubetest.Schedulable(node), "node: %v %v", node.Spec.Taints, node.Status.Conditions)
	for _, taint := range node.Spec.Taints {
		assert.NotContains(t, []string{"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}, taint.Key)
	}
	for _, cond := range node.Status.Conditions {
		want := corev1.ConditionFalse
		if cond.Type == corev1.NodeReady {
			want = corev1.ConditionTrue
		}
		assert.Equal(t, want, cond.Status, "condition %s", cond.Type)
	}
	assert.Equal(t, []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: "node-1"}}, node.Status.Addresses)
	assert.NotZero(t, node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	assert.Equal(t, "110", node.Status.Allocatable.Pods().String())
}

// kubectl from bin/testcluster works against the kubeconfig the harness wrote.
func TestKubectl(t *testing.T) {
	c := kubetest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := c.Kubectl(ctx, "get", "nodes", "-o", "name")
	require.NoError(t, err)
	assert.Equal(t, "node/node-1", strings.TrimSpace(string(out)))
	_, err = c.Kubectl(ctx, "get", "no-such-resource")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no-such-resource")
}
