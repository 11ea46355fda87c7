package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/deployer"
)

func TestPodSpec(t *testing.T) {
	id := apps.ReplicaID{Tenant: "acme", App: "arena", Revision: "9d00cc18", Replica: "4f1a2b"}
	p := pod(deployer.ReplicaSpec{ReplicaID: id, Image: "example/arena:1", Port: 9000, HealthPath: "/healthz",
		Env: map[string]string{"RESPAWN": "false"}, ShutdownGrace: 2500 * time.Millisecond,
		Resources: &apps.Resources{CPUMillis: 250, MemoryMB: 64}}, "discovery-acme", map[string]string{"DISCOVERY_API": "http://api"})

	assert.Equal(t, "arena-9d00cc18-4f1a2b", p.Name)
	assert.Equal(t, "discovery-acme", p.Namespace)
	got, ok := idOf(p)
	require.True(t, ok)
	assert.Equal(t, id, got, "the labels name the replica")
	assert.Equal(t, corev1.RestartPolicyNever, p.Spec.RestartPolicy)
	assert.Equal(t, int64(3), *p.Spec.TerminationGracePeriodSeconds, "grace rounds up to whole seconds")
	assert.False(t, *p.Spec.AutomountServiceAccountToken)
	c := p.Spec.Containers[0]
	assert.Equal(t, "/healthz", c.ReadinessProbe.HTTPGet.Path)
	assert.Equal(t, int32(9000), c.ReadinessProbe.HTTPGet.Port.IntVal)
	assert.Equal(t, "250m", ptr(c.Resources.Requests[corev1.ResourceCPU]).String())
	assert.Equal(t, "64Mi", ptr(c.Resources.Limits[corev1.ResourceMemory]).String())

	env := map[string]corev1.EnvVar{}
	var order []string
	for _, e := range c.Env {
		env[e.Name] = e
		order = append(order, e.Name)
	}
	assert.Equal(t, "false", env["RESPAWN"].Value)
	assert.Equal(t, "9000", env["PORT"].Value)
	assert.Equal(t, "status.podIP", env["POD_IP"].ValueFrom.FieldRef.FieldPath)
	assert.Equal(t, "$(POD_IP)", env["HOST"].Value)
	assert.Equal(t, "4f1a2b", env["DISCOVERY_REPLICA"].Value)
	assert.Equal(t, "http://api", env["DISCOVERY_API"].Value)
	assert.Less(t, index(order, "POD_IP"), index(order, "HOST"), "$(POD_IP) expands only after POD_IP is defined")

	tcp := pod(deployer.ReplicaSpec{ReplicaID: id, Image: "x:1"}, "ns", nil)
	assert.NotNil(t, tcp.Spec.Containers[0].ReadinessProbe.TCPSocket, "no health path: a TCP connect")
	assert.Equal(t, int32(DefaultPort), tcp.Spec.Containers[0].Ports[0].ContainerPort)
	assert.Equal(t, int64(1), *tcp.Spec.TerminationGracePeriodSeconds, "never 0: that would force-delete")
	assert.Empty(t, tcp.Spec.Containers[0].Resources.Requests, "no resources: the namespace's defaults")
}

func index(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

func TestObserve(t *testing.T) {
	id := apps.ReplicaID{Tenant: "t", App: "a", Revision: "9d00cc18", Replica: "r1"}
	now := metav1.Now()
	ready := []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	notReady := []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
	term := func(code, sig int32) []corev1.ContainerStatus {
		return []corev1.ContainerStatus{{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Signal: sig}}}}
	}
	for _, tc := range []struct {
		name     string
		status   corev1.PodStatus
		deleting bool
		wasReady bool
		want     apps.ReplicaState
		exit     string
	}{
		{name: "pending", status: corev1.PodStatus{Phase: corev1.PodPending}, want: apps.ReplicaStarting},
		{name: "running, not ready yet", status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: notReady}, want: apps.ReplicaStarting},
		{name: "running and ready", status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: ready, PodIP: "10.0.0.7"}, want: apps.ReplicaReady},
		{name: "was ready, failing its probe", status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: notReady}, wasReady: true, want: apps.ReplicaUnhealthy},
		{name: "being deleted", status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: ready}, deleting: true, want: apps.ReplicaStopping},
		{name: "exited 3", status: corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: term(3, 0)}, want: apps.ReplicaExited, exit: "exit status 3"},
		{name: "killed", status: corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: term(137, 9)}, want: apps.ReplicaExited, exit: "signal: killed"},
		{name: "finished while deleting", status: corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: term(0, 0)}, deleting: true, want: apps.ReplicaExited, exit: "exit status 0"},
		{name: "evicted", status: corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted", Message: "low on memory"}, want: apps.ReplicaExited, exit: "pod Failed: Evicted low on memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: now}, Status: tc.status,
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Ports: []corev1.ContainerPort{{ContainerPort: 9000}}}}}}
			if tc.deleting {
				p.DeletionTimestamp = &now
			}
			o := observe(p, id, tc.wasReady)
			assert.Equal(t, tc.want, o.State)
			assert.Equal(t, tc.exit, o.Exit)
			if tc.status.PodIP != "" {
				assert.Equal(t, "10.0.0.7:9000", o.Address)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	gr := schema.GroupResource{Resource: "pods"}
	for _, tc := range []struct {
		name      string
		err       error
		transient bool
	}{
		{"invalid pod: the revision's fault", apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, "x", nil), false},
		{"quota full", apierrors.NewForbidden(gr, "x", errors.New("exceeded quota: discovery-quota")), true},
		{"throttled", apierrors.NewTooManyRequests("slow down", 1), true},
		{"api server down", &url.Error{Op: "Post", URL: "https://127.0.0.1:6443", Err: syscall.ECONNREFUSED}, true},
		{"deadline", fmt.Errorf("create: %w", context.DeadlineExceeded), true},
		{"internal", apierrors.NewInternalError(errors.New("etcd")), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.transient, errors.Is(classify(tc.err), deployer.ErrRuntimeUnavailable))
		})
	}
}
