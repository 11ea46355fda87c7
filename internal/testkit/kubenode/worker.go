package kubenode

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// podWorker owns one pod (one UID) from the moment it is bound to the node
// until its object is gone: it starts and restarts the process, runs its
// probes, writes its status and carries out its graceful deletion. All of
// that happens on its run goroutine; other goroutines only hand it the
// newest pod object (update) or read pid, restarts and the log store.
type podWorker struct {
	n         *Node
	uid       types.UID
	ns, name  string
	container string // the container it runs: the pod's first
	dir       string
	logs      *logStore
	ip        netip.Addr // invalid if no address could be had
	pooledIP  bool       // ip came from the pool (not hostNetwork)
	setupErr  error      // why the pod cannot run at all, if so
	log       *slog.Logger

	mu     sync.Mutex
	latest *v1.Pod
	gone   bool
	kick   chan struct{} // capacity 1: latest or gone changed

	pid      atomic.Int64
	restarts atomic.Int32

	// Owned by run.
	st      podState
	cur     *proc
	restart <-chan time.Time // next start attempt
	kill    <-chan time.Time // SIGKILL at the end of a grace period
	killAt  time.Time
	retry   <-chan time.Time // retry of a failed status write or delete
	written *v1.PodStatus    // the node-owned part of the last status written
	since   map[v1.PodConditionType]condState
}

type condState struct {
	status v1.ConditionStatus
	since  metav1.Time
}

// podState is what the node knows about the pod, from which its status is
// computed.
type podState struct {
	adopted     bool // terminal before this node saw it: leave its status alone
	phase       v1.PodPhase
	reason      string
	message     string
	startTime   metav1.Time
	waiting     *v1.ContainerStateWaiting
	running     *v1.ContainerStateRunning
	terminated  *v1.ContainerStateTerminated
	last        *v1.ContainerStateTerminated
	containerID string
	attempts    int  // start attempts so far
	failures    int  // consecutive short-lived runs, for the back-off
	ready       bool // readiness probe (or none) says ready
	terminating bool // deletionTimestamp seen
	deleted     bool // the object's final delete succeeded
}

func newPodWorker(n *Node, pod *v1.Pod) *podWorker {
	w := &podWorker{
		n: n, uid: pod.UID, ns: pod.Namespace, name: pod.Name,
		kick:  make(chan struct{}, 1),
		since: map[v1.PodConditionType]condState{},
		log:   n.log.With("namespace", pod.Namespace, "pod", pod.Name),
	}
	if len(pod.Spec.Containers) > 0 {
		w.container = pod.Spec.Containers[0].Name
	}
	w.dir = filepath.Join(n.opts.Dir, fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		w.setupErr = err
	}
	logs, err := newLogStore(filepath.Join(w.dir, "output.log"), n.opts.MaxLogBytes)
	if err != nil {
		// A store that is never written still serves an empty log.
		w.setupErr = err
		logs = &logStore{path: filepath.Join(w.dir, "output.log"), max: n.opts.MaxLogBytes, changed: make(chan struct{})}
	}
	w.logs = logs
	if pod.Spec.HostNetwork {
		w.ip = netip.MustParseAddr("127.0.0.1")
	} else if ip, err := n.opts.IPs.Get(); err == nil {
		w.ip, w.pooledIP = ip, true
	} else {
		w.setupErr = err
	}
	return w
}

// update hands the worker the newest pod object; gone means it was deleted.
func (w *podWorker) update(pod *v1.Pod, gone bool) {
	w.mu.Lock()
	w.latest = pod
	w.gone = w.gone || gone
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *podWorker) snapshot() (*v1.Pod, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.latest, w.gone
}

func (w *podWorker) run(ctx context.Context) {
	defer w.n.wg.Done()
	defer w.cleanup()
	pod, _ := w.snapshot()
	w.st.startTime = metav1.Now()
	switch {
	case pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed:
		w.st.adopted, w.st.phase = true, pod.Status.Phase
	case pod.DeletionTimestamp == nil:
		w.st.phase = v1.PodPending
		w.start(ctx)
	}
	w.onPod(ctx)
	for {
		var exited <-chan exitInfo
		var ready <-chan bool
		var unhealthy <-chan string
		if w.cur != nil {
			exited, ready, unhealthy = w.cur.exited, w.cur.ready, w.cur.unhealthy
		}
		select {
		case <-ctx.Done():
			w.stopProcess(w.n.opts.StopGrace)
			return
		case <-w.kick:
			if _, gone := w.snapshot(); gone {
				w.stopProcess(0)
				return
			}
			w.onPod(ctx)
		case ex := <-exited:
			w.onExit(ctx, ex)
		case r := <-ready:
			w.st.ready = r
			w.writeStatus(ctx)
		case why := <-unhealthy:
			w.log.Info("liveness probe failed, restarting container", "reason", why)
			w.signal(syscall.SIGTERM)
			w.armKill(w.graceOf(w.latestPod()))
		case <-w.restart:
			w.restart = nil
			w.start(ctx)
		case <-w.kill:
			w.kill = nil
			w.signal(syscall.SIGKILL)
		case <-w.retry:
			w.retry = nil
			if w.st.terminating && w.cur == nil && !w.st.deleted {
				w.finish(ctx)
			} else {
				w.writeStatus(ctx)
			}
		}
	}
}

func (w *podWorker) latestPod() *v1.Pod {
	pod, _ := w.snapshot()
	return pod
}

// onPod reacts to a new version of the pod: a deletionTimestamp starts the
// graceful stop (and a shorter grace period shortens it, as in the kubelet);
// anything else may change the Ready condition (readiness gates).
func (w *podWorker) onPod(ctx context.Context) {
	pod := w.latestPod()
	if pod.DeletionTimestamp == nil {
		w.writeStatus(ctx)
		return
	}
	grace := w.graceOf(pod)
	if w.st.terminating {
		if w.cur != nil && time.Now().Add(grace).Before(w.killAt) {
			w.armKill(grace)
		}
		return
	}
	w.st.terminating = true
	w.restart = nil
	if w.cur == nil {
		w.finish(ctx)
		return
	}
	w.log.Info("stopping pod", "grace", grace)
	w.signal(syscall.SIGTERM)
	w.armKill(grace)
}

// graceOf is the pod's grace period: the deletion's, else the spec's, else 30s.
func (w *podWorker) graceOf(pod *v1.Pod) time.Duration {
	switch {
	case pod.DeletionGracePeriodSeconds != nil:
		return time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		return time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return 30 * time.Second
}

func (w *podWorker) armKill(grace time.Duration) {
	w.killAt = time.Now().Add(grace)
	w.kill = time.After(grace)
}

func (w *podWorker) signal(sig syscall.Signal) {
	if w.cur != nil {
		// The process leads its own session and group: signal all of it.
		_ = syscall.Kill(-w.cur.pid, sig)
	}
}

// onExit records a finished run and restarts it if the restart policy says so.
func (w *podWorker) onExit(ctx context.Context, ex exitInfo) {
	p := w.cur
	w.cur = nil
	w.pid.Store(0)
	w.kill = nil // a pending SIGKILL was meant for this process, not the next
	p.stopProbes()
	reason := "Completed"
	if ex.code != 0 {
		reason = "Error"
	}
	w.log.Info("container exited", "exitCode", ex.code, "signal", ex.signal)
	w.recordEnd(&v1.ContainerStateTerminated{
		ExitCode: ex.code, Signal: ex.signal, Reason: reason,
		StartedAt: metav1.NewTime(p.started), FinishedAt: metav1.NewTime(ex.at), ContainerID: w.st.containerID,
	}, ex.at.Sub(p.started))
	if w.st.terminating {
		w.finish(ctx)
		return
	}
	w.afterRun(ctx)
}

// recordEnd makes term the container's state after a run (or a failed start).
func (w *podWorker) recordEnd(term *v1.ContainerStateTerminated, ran time.Duration) {
	w.st.running, w.st.waiting, w.st.terminated = nil, nil, term
	w.st.ready = false
	if ran > 10*time.Second {
		w.st.failures = 0 // a run that lasted resets the back-off, like the kubelet's
	} else {
		w.st.failures++
	}
}

// afterRun applies the restart policy to the run that just ended.
func (w *podWorker) afterRun(ctx context.Context) {
	pod := w.latestPod()
	term := w.st.terminated
	policy := pod.Spec.RestartPolicy
	if policy == v1.RestartPolicyNever || (policy == v1.RestartPolicyOnFailure && term.ExitCode == 0) {
		w.st.phase = v1.PodFailed
		if term.ExitCode == 0 {
			w.st.phase = v1.PodSucceeded
		}
		w.writeStatus(ctx)
		return
	}
	d := w.backoff()
	w.st.last, w.st.terminated = term, nil
	w.st.waiting = &v1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
		Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", d, w.container, w.name, w.ns, w.uid)}
	w.restart = time.After(d)
	w.writeStatus(ctx)
}

// backoff is the wait before the next start: 0.5s doubling to 10s (the
// kubelet's is 10s doubling to 5min; tests want restarts soon).
func (w *podWorker) backoff() time.Duration {
	d := 500 * time.Millisecond
	for i := 1; i < w.st.failures && d < 10*time.Second; i++ {
		d *= 2
	}
	return min(d, 10*time.Second)
}

// failPod ends a pod that cannot run here, with a reason and a message.
func (w *podWorker) failPod(ctx context.Context, reason, msg string) {
	w.log.Info("pod failed", "reason", reason, "message", msg)
	w.st.phase, w.st.reason, w.st.message = v1.PodFailed, reason, msg
	w.st.waiting = &v1.ContainerStateWaiting{Reason: reason, Message: msg}
	w.writeStatus(ctx)
}

// waitAndRetry leaves the container waiting with reason and msg and tries
// again after the back-off (a missing image or ConfigMap may appear).
func (w *podWorker) waitAndRetry(ctx context.Context, reason, msg string) {
	w.st.failures++
	w.st.waiting, w.st.running = &v1.ContainerStateWaiting{Reason: reason, Message: msg}, nil
	w.restart = time.After(w.backoff())
	w.writeStatus(ctx)
}

// finish ends a deleted pod: its final status, then the removal of its
// object for good (grace 0, this UID only), as the kubelet does.
func (w *podWorker) finish(ctx context.Context) {
	// A pod that never started is just deleted; one that ran records how.
	if !w.st.adopted && w.st.attempts > 0 && w.st.phase != v1.PodSucceeded && w.st.phase != v1.PodFailed {
		w.st.phase = v1.PodFailed
		if t := w.st.terminated; t != nil && t.ExitCode == 0 {
			w.st.phase = v1.PodSucceeded
		}
		w.writeStatus(ctx)
	}
	err := w.n.client.CoreV1().Pods(w.ns).Delete(ctx, w.name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &w.uid},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		if ctx.Err() == nil {
			w.log.Warn("deleting pod failed, retrying", "err", err)
			w.retry = time.After(time.Second)
		}
		return
	}
	w.st.deleted = true
	w.log.Info("pod deleted")
}

// stopProcess stops the running process: SIGTERM, then SIGKILL after grace
// (at once when grace is 0), and waits for it to end.
func (w *podWorker) stopProcess(grace time.Duration) {
	if w.cur == nil {
		return
	}
	p := w.cur
	if grace > 0 {
		w.signal(syscall.SIGTERM)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-p.exited:
			w.endProcess()
			return
		case <-t.C:
		}
	}
	w.signal(syscall.SIGKILL)
	<-p.exited
	w.endProcess()
}

func (w *podWorker) endProcess() {
	w.cur.stopProbes()
	w.cur = nil
	w.pid.Store(0)
}

// cleanup releases what the pod held once its object is gone or the node stops.
func (w *podWorker) cleanup() {
	w.stopProcess(0)
	w.logs.remove()
	if w.pooledIP {
		w.n.opts.IPs.Put(w.ip)
	}
	_ = os.RemoveAll(w.dir)
	w.n.forget(w)
}

// unsupported says why kubenode cannot run pod, or "".
func unsupported(pod *v1.Pod) string {
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	switch {
	case len(pod.Spec.Containers) != 1:
		return fmt.Sprintf("kubenode runs pods of exactly one container; this pod has %d (%s)", len(names), strings.Join(names, ", "))
	case len(pod.Spec.InitContainers) > 0:
		return "kubenode does not run init containers"
	}
	return ""
}
