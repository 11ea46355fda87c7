package kubetest_test

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kuberuntime "github.com/discovery-platform/discovery/deployer/kubernetes"
	"github.com/discovery-platform/discovery/internal/testkit/kubetest"
	"github.com/discovery-platform/discovery/internal/testkit/proctest"
	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
)

// Without the binaries, Start says how to build them.
func TestStartWithoutBinariesSaysHowToBuildThem(t *testing.T) {
	_, err := kubetest.Start(context.Background(), kubetest.Options{BinDir: t.TempDir()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "make testcluster-bin")
	assert.Contains(t, err.Error(), "kube-apiserver")
}

// A cluster of its own, with two nodes: a pod bound to the second runs
// there, and Stop (twice) leaves no process of the cluster and no directory.
// The port first picked for its API server is taken before it binds (CI
// saw this race), so the API server starts again on a fresh one.
func TestStopLeavesNothingBehind(t *testing.T) {
	kubetest.Skip(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	restore := kubetest.HandOutTakenPort(taken)
	c, err := kubetest.Start(ctx, kubetest.Options{Nodes: 2})
	restore()
	require.NoError(t, err)
	t.Cleanup(c.Stop)
	assert.NotContains(t, c.Config.Host, taken.Addr().String(), "the API server moved off the taken port")
	require.Len(t, c.Nodes, 2)
	for _, n := range []string{"node-1", "node-2"} {
		node, err := c.Client.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
		require.NoError(t, err)
		assert.True(t, kubetest.Schedulable(node), "node %s", n)
	}

	c.SetImage(testappImage, []string{build.Binary(t)})
	pod := testappPod("pinned")
	pod.Spec.NodeName = "node-2" // bound without the scheduler, as a DaemonSet's would be
	createPod(t, c, "default", pod)
	p := waitPod(t, c, "default", "pinned", kuberuntime.PodReady)
	assert.Equal(t, "node-2", p.Spec.NodeName)
	pid, ok := c.Nodes[1].PodPID("default", "pinned")
	require.True(t, ok)
	_, onFirst := c.Nodes[0].PodPID("default", "pinned")
	assert.False(t, onFirst)

	procs := proctest.Find(c.Marker())
	assert.Contains(t, procs, pid, "the pod carries the cluster's marker")
	assert.GreaterOrEqual(t, len(procs), 4, "API server, controller manager, scheduler and the pod: %v", procs)

	c.Stop()
	c.Stop()
	assert.Empty(t, proctest.Find(c.Marker()), "processes left after Stop")
	_, err = os.Stat(c.Dir)
	assert.True(t, os.IsNotExist(err), "cluster dir left: %v", err)
}
