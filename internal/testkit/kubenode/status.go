package kubenode

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// The node owns part of a pod's status (phase, IPs, start time, container
// status and the Initialized/ContainersReady/Ready conditions) and leaves the
// rest as others wrote it (PodScheduled from the scheduler, QOS class from
// the API server, conditions of readiness gates). It writes only when its
// part changed since its last write; the informer's copy may lag behind that
// write, so the comparison is with what it wrote, not with the cache.

var ownedConditions = []v1.PodConditionType{v1.PodInitialized, v1.ContainersReady, v1.PodReady}

// writeStatus brings the pod's status in line with the worker's state.
// A failed write is retried a second later; a gone pod is not an error.
func (w *podWorker) writeStatus(ctx context.Context) {
	if w.st.adopted || w.st.deleted || ctx.Err() != nil {
		return
	}
	pods := w.n.client.CoreV1().Pods(w.ns)
	base := w.latestPod()
	var written v1.PodStatus
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		status := w.statusFor(base)
		written = owned(status)
		if w.written != nil && equality.Semantic.DeepEqual(*w.written, written) {
			return nil
		}
		p := base.DeepCopy()
		p.Status = status
		_, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			fresh, gerr := pods.Get(ctx, w.name, metav1.GetOptions{})
			if gerr != nil {
				return gerr
			}
			base = fresh
		}
		return err
	})
	switch {
	case err == nil:
		w.written = &written
	case apierrors.IsNotFound(err), ctx.Err() != nil:
	default:
		w.log.Warn("pod status update failed, retrying", "err", err)
		w.retry = time.After(time.Second)
	}
}

// owned is the part of s the node decides, for comparing writes.
func owned(s v1.PodStatus) v1.PodStatus {
	o := v1.PodStatus{Phase: s.Phase, Reason: s.Reason, Message: s.Message, HostIP: s.HostIP, HostIPs: s.HostIPs,
		PodIP: s.PodIP, PodIPs: s.PodIPs, StartTime: s.StartTime, ContainerStatuses: s.ContainerStatuses}
	for _, c := range s.Conditions {
		for _, t := range ownedConditions {
			if c.Type == t {
				o.Conditions = append(o.Conditions, c)
			}
		}
	}
	return o
}

// statusFor is base's status with the node's part replaced by its state.
func (w *podWorker) statusFor(base *v1.Pod) v1.PodStatus {
	s := *base.Status.DeepCopy()
	st := &w.st
	s.Phase, s.Reason, s.Message = st.phase, st.reason, st.message
	s.HostIP, s.HostIPs = "127.0.0.1", []v1.HostIP{{IP: "127.0.0.1"}}
	if w.ip.IsValid() {
		s.PodIP, s.PodIPs = w.ip.String(), []v1.PodIP{{IP: w.ip.String()}}
	}
	s.StartTime = &st.startTime

	if w.container != "" && (st.waiting != nil || st.running != nil || st.terminated != nil) {
		cs := v1.ContainerStatus{
			Name:         w.container,
			Image:        base.Spec.Containers[0].Image,
			ImageID:      "kubenode://" + base.Spec.Containers[0].Image,
			ContainerID:  st.containerID,
			Ready:        st.ready && st.running != nil,
			Started:      ptr.To(st.running != nil),
			RestartCount: w.restarts.Load(),
		}
		cs.State = v1.ContainerState{Waiting: st.waiting, Running: st.running, Terminated: st.terminated}
		if st.last != nil {
			cs.LastTerminationState = v1.ContainerState{Terminated: st.last}
		}
		s.ContainerStatuses = []v1.ContainerStatus{cs}
	}

	terminal := st.phase == v1.PodSucceeded || st.phase == v1.PodFailed
	containersReady := st.ready && st.running != nil && !terminal
	gatesReady := true
	for _, g := range base.Spec.ReadinessGates {
		found := false
		for _, c := range base.Status.Conditions {
			found = found || (c.Type == g.ConditionType && c.Status == v1.ConditionTrue)
		}
		gatesReady = gatesReady && found
	}
	notReady := func(reason string) (string, string) {
		if terminal {
			return "PodCompleted", ""
		}
		return reason, fmt.Sprintf("containers with unready status: [%s]", w.container)
	}
	w.setCondition(&s, v1.PodInitialized, true, "", "")
	r, m := notReady("ContainersNotReady")
	w.setCondition(&s, v1.ContainersReady, containersReady, r, m)
	if containersReady && !gatesReady {
		r, m = "ReadinessGatesNotReady", "the status of pod readiness gate is not True"
	}
	w.setCondition(&s, v1.PodReady, containersReady && gatesReady, r, m)
	if !hasCondition(&s, v1.PodScheduled) {
		// A pod created with spec.nodeName never saw the scheduler.
		w.setCondition(&s, v1.PodScheduled, true, "", "")
	}
	return s
}

// setCondition sets a condition, with its lastTransitionTime kept by the
// worker (stable across writes, so equal states compare equal).
func (w *podWorker) setCondition(s *v1.PodStatus, t v1.PodConditionType, ok bool, reason, msg string) {
	status := v1.ConditionFalse
	if ok {
		status, reason, msg = v1.ConditionTrue, "", ""
	}
	cs, seen := w.since[t]
	if !seen || cs.status != status {
		cs = condState{status: status, since: metav1.NewTime(time.Now().Truncate(time.Second))}
		w.since[t] = cs
	}
	c := v1.PodCondition{Type: t, Status: status, Reason: reason, Message: msg, LastTransitionTime: cs.since}
	for i := range s.Conditions {
		if s.Conditions[i].Type == t {
			s.Conditions[i] = c
			return
		}
	}
	s.Conditions = append(s.Conditions, c)
}

func hasCondition(s *v1.PodStatus, t v1.PodConditionType) bool {
	for _, c := range s.Conditions {
		if c.Type == t {
			return true
		}
	}
	return false
}
