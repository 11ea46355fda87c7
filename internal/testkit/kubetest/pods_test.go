package kubetest_test

import (
	"bufio"
	"context"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kuberuntime "github.com/discovery-platform/discovery/deployer/kubernetes"
	"github.com/discovery-platform/discovery/internal/testkit/proctest"
)

// A pod's output is readable through the API server (pods/log, proxied to
// the node's log server), whole or by tailLines, with kubectl too.
func TestPodLogsThroughAPIServer(t *testing.T) {
	c, ns := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	created := time.Now()
	createPod(t, c, ns, testappPod("logs"))
	p := waitPod(t, c, ns, "logs", kuberuntime.PodReady)
	t.Logf("pod create to Ready: %s", time.Since(created).Round(time.Millisecond))

	// The testapp prints one line when it listens, nothing per request.
	all, err := c.Client.CoreV1().Pods(ns).GetLogs("logs", &corev1.PodLogOptions{}).DoRaw(ctx)
	require.NoError(t, err)
	assert.Equal(t, "listening on "+p.Status.PodIP+":8080\n", string(all))

	tail, err := c.Client.CoreV1().Pods(ns).GetLogs("logs", &corev1.PodLogOptions{TailLines: ptr.To[int64](1)}).DoRaw(ctx)
	require.NoError(t, err)
	assert.Equal(t, string(all), string(tail))
	none, err := c.Client.CoreV1().Pods(ns).GetLogs("logs", &corev1.PodLogOptions{TailLines: ptr.To[int64](0)}).DoRaw(ctx)
	require.NoError(t, err)
	assert.Empty(t, string(none))
	limited, err := c.Client.CoreV1().Pods(ns).GetLogs("logs", &corev1.PodLogOptions{LimitBytes: ptr.To[int64](9)}).DoRaw(ctx)
	require.NoError(t, err)
	assert.Equal(t, "listening", string(limited))

	out, err := c.Kubectl(ctx, "logs", "-n", ns, "logs", "--tail=1")
	require.NoError(t, err)
	assert.Equal(t, string(all), string(out))
}

// Deleting a pod with a grace period is what the kubelet does with it:
// SIGTERM (the testapp says "got SIGTERM" and exits 0), the final status,
// then the object removed for good. A follow stream of its log sees the end.
func TestGracefulDeletion(t *testing.T) {
	c, ns := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	createPod(t, c, ns, testappPod("graceful"))
	waitPod(t, c, ns, "graceful", kuberuntime.PodReady)
	pid, ok := c.PodPID(ns, "graceful")
	require.True(t, ok)

	stream, err := c.Client.CoreV1().Pods(ns).GetLogs("graceful", &corev1.PodLogOptions{Follow: true}).Stream(ctx)
	require.NoError(t, err)
	defer stream.Close()
	lines := bufio.NewScanner(stream)
	require.True(t, lines.Scan())
	assert.True(t, strings.HasPrefix(lines.Text(), "listening on "), lines.Text())

	var final *corev1.Pod // the last version before the object went
	gone := watchPod(t, c, ns, "graceful", func(p *corev1.Pod) bool {
		if p != nil {
			final = p
		}
		return p == nil
	})
	require.NoError(t, c.Client.CoreV1().Pods(ns).Delete(ctx, "graceful", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](20)}))

	rest, err := io.ReadAll(stream) // ends when the process does
	require.NoError(t, err)
	assert.Equal(t, "got SIGTERM\n", string(rest))
	gone()
	require.NotNil(t, final)
	require.Len(t, final.Status.ContainerStatuses, 1)
	term := final.Status.ContainerStatuses[0].State.Terminated
	require.NotNil(t, term, "final status: %s", describe(final))
	assert.Equal(t, int32(0), term.ExitCode)
	assert.Equal(t, "Completed", term.Reason)
	assert.Equal(t, corev1.PodSucceeded, final.Status.Phase)
	assert.False(t, proctest.Alive(pid), "process %d still runs", pid)
	_, ok = c.PodPID(ns, "graceful")
	assert.False(t, ok)
}

// A process that ignores SIGTERM gets SIGKILL when the grace period ends.
func TestDeletionKillsAfterGrace(t *testing.T) {
	c, ns := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pod := testappPod("stubborn", corev1.EnvVar{Name: "IGNORE_SIGTERM", Value: "1"})
	createPod(t, c, ns, pod)
	waitPod(t, c, ns, "stubborn", kuberuntime.PodReady)
	var final *corev1.Pod
	gone := watchPod(t, c, ns, "stubborn", func(p *corev1.Pod) bool {
		if p != nil {
			final = p
		}
		return p == nil
	})
	start := time.Now()
	require.NoError(t, c.Client.CoreV1().Pods(ns).Delete(ctx, "stubborn", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](1)}))
	gone()
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "deleted before its grace period ended")
	require.NotNil(t, final)
	require.Len(t, final.Status.ContainerStatuses, 1)
	term := final.Status.ContainerStatuses[0].State.Terminated
	require.NotNil(t, term, "final status: %s", describe(final))
	assert.Equal(t, int32(syscall.SIGKILL), term.Signal)
	assert.Equal(t, int32(128+9), term.ExitCode)
	assert.Equal(t, corev1.PodFailed, final.Status.Phase)
}

// A crash (SIGKILL from outside) of a restartPolicy Never pod fails it with
// the signal recorded, and its log stays readable.
func TestKilledPodFails(t *testing.T) {
	c, ns := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	createPod(t, c, ns, testappPod("crash"))
	waitPod(t, c, ns, "crash", kuberuntime.PodReady)
	pid, ok := c.PodPID(ns, "crash")
	require.True(t, ok)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))

	p := waitPod(t, c, ns, "crash", func(p *corev1.Pod) bool { return p != nil && p.Status.Phase == corev1.PodFailed })
	cs := p.Status.ContainerStatuses[0]
	require.NotNil(t, cs.State.Terminated, "status: %s", describe(p))
	assert.Equal(t, int32(137), cs.State.Terminated.ExitCode)
	assert.Equal(t, int32(9), cs.State.Terminated.Signal)
	assert.Equal(t, "Error", cs.State.Terminated.Reason)
	assert.False(t, cs.Ready)
	assert.Equal(t, int32(0), cs.RestartCount)
	assert.False(t, kuberuntime.PodReady(p))
	logs, err := c.Client.CoreV1().Pods(ns).GetLogs("crash", &corev1.PodLogOptions{}).DoRaw(ctx)
	require.NoError(t, err)
	assert.Contains(t, string(logs), "listening on ")
}

// restartPolicy Always restarts a failing container, counting restarts and
// keeping the last termination.
func TestRestartAlways(t *testing.T) {
	c, ns := cluster(t)
	pod := testappPod("flaky", corev1.EnvVar{Name: "FAIL_START", Value: "1"})
	pod.Spec.RestartPolicy = corev1.RestartPolicyAlways
	createPod(t, c, ns, pod)
	p := waitPod(t, c, ns, "flaky", func(p *corev1.Pod) bool {
		return p != nil && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 2
	})
	cs := p.Status.ContainerStatuses[0]
	assert.Equal(t, corev1.PodRunning, p.Status.Phase)
	require.NotNil(t, cs.LastTerminationState.Terminated, "status: %s", describe(p))
	assert.Equal(t, int32(3), cs.LastTerminationState.Terminated.ExitCode)
}

// Env values come from literals, $(VAR) expansion of earlier variables and
// the downward API; args are appended to the image's command and expanded
// too. A container that exits 0 under restartPolicy Never succeeds.
func TestEnvAndArgs(t *testing.T) {
	c, ns := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The script's positional parameters are the container's args, so the
	// shell prints them without interpreting them.
	c.SetImage("example/shell:1", []string{"/bin/sh", "-c",
		`echo "B=$B NAME=$NAME NS=$NS IP=$IP HOSTIP=$HOSTIP UIDSET=${UID_:+yes} ARGS=$*"`, "sh"})
	field := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "env"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "sh", Image: "example/shell:1",
				Args: []string{"$(A)", "$(UNSET)", "$$(A)"},
				Env: []corev1.EnvVar{
					{Name: "A", Value: "x"},
					{Name: "B", Value: "$(A)-y-$(LATER)"},
					{Name: "LATER", Value: "z"},
					{Name: "NAME", ValueFrom: field("metadata.name")},
					{Name: "NS", ValueFrom: field("metadata.namespace")},
					{Name: "UID_", ValueFrom: field("metadata.uid")},
					{Name: "IP", ValueFrom: field("status.podIP")},
					{Name: "HOSTIP", ValueFrom: field("status.hostIP")},
				},
			}},
		},
	}
	createPod(t, c, ns, pod)
	p := waitPod(t, c, ns, "env", func(p *corev1.Pod) bool { return p != nil && p.Status.Phase == corev1.PodSucceeded })
	logs, err := c.Client.CoreV1().Pods(ns).GetLogs("env", &corev1.PodLogOptions{}).DoRaw(ctx)
	require.NoError(t, err)
	want := "B=x-y-$(LATER) NAME=env NS=" + ns + " IP=" + p.Status.PodIP + " HOSTIP=127.0.0.1 UIDSET=yes ARGS=x $(UNSET) $(A)\n"
	assert.Equal(t, want, string(logs))
	assert.Equal(t, "Completed", p.Status.ContainerStatuses[0].State.Terminated.Reason)
}

// What the node cannot run fails clearly: an image missing from the catalog
// and a pod of two containers.
func TestUnrunnablePodsFail(t *testing.T) {
	c, ns := cluster(t)
	unknown := testappPod("unknown")
	unknown.Spec.Containers[0].Image = "example/nowhere:1"
	createPod(t, c, ns, unknown)
	p := waitPod(t, c, ns, "unknown", func(p *corev1.Pod) bool { return p != nil && p.Status.Phase == corev1.PodFailed })
	assert.Equal(t, "ErrImagePull", p.Status.Reason)
	assert.Contains(t, p.Status.Message, "example/nowhere:1")
	require.Len(t, p.Status.ContainerStatuses, 1)
	require.NotNil(t, p.Status.ContainerStatuses[0].State.Waiting)
	assert.Equal(t, "ErrImagePull", p.Status.ContainerStatuses[0].State.Waiting.Reason)

	two := testappPod("two")
	side := corev1.Container{Name: "sidecar", Image: testappImage}
	two.Spec.Containers = append(two.Spec.Containers, side)
	createPod(t, c, ns, two)
	p = waitPod(t, c, ns, "two", func(p *corev1.Pod) bool { return p != nil && p.Status.Phase == corev1.PodFailed })
	assert.Equal(t, "Unsupported", p.Status.Reason)
	assert.Contains(t, p.Status.Message, "exactly one container")
	_, ok := c.PodPID(ns, "two")
	assert.False(t, ok)
}

// Readiness comes from the probe: a running container whose health check
// fails at first is Running but not Ready, then Ready once it passes.
func TestReadinessFollowsProbe(t *testing.T) {
	c, ns := cluster(t)
	createPod(t, c, ns, testappPod("slow", corev1.EnvVar{Name: "HEALTH_DELAY", Value: "2s"}))
	sawUnready := false
	p := waitPod(t, c, ns, "slow", func(p *corev1.Pod) bool {
		if p == nil || len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Running == nil {
			return false
		}
		if !kuberuntime.PodReady(p) {
			sawUnready = true
			assert.False(t, p.Status.ContainerStatuses[0].Ready)
			assert.True(t, *p.Status.ContainerStatuses[0].Started)
		}
		return kuberuntime.PodReady(p)
	})
	assert.True(t, sawUnready, "the pod was never seen running but unready")
	assert.True(t, p.Status.ContainerStatuses[0].Ready)
	var containersReady bool
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.ContainersReady {
			containersReady = cond.Status == corev1.ConditionTrue
		}
	}
	assert.True(t, containersReady)
}

// A failing liveness probe restarts the container (restartPolicy Always).
func TestLivenessProbeRestarts(t *testing.T) {
	c, ns := cluster(t)
	pod := testappPod("unlive", corev1.EnvVar{Name: "NEVER_HEALTHY", Value: "1"})
	pod.Spec.RestartPolicy = corev1.RestartPolicyAlways
	ctr := &pod.Spec.Containers[0]
	ctr.LivenessProbe, ctr.ReadinessProbe = ctr.ReadinessProbe, nil
	ctr.LivenessProbe.FailureThreshold = 2
	p := createPod(t, c, ns, pod)
	p = waitPod(t, c, ns, p.Name, func(p *corev1.Pod) bool {
		return p != nil && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated
	require.NotNil(t, last, "status: %s", describe(p))
	assert.Equal(t, int32(0), last.ExitCode, "the testapp exits 0 on SIGTERM")
}
