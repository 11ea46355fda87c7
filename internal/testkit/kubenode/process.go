package kubenode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// proc is one run of a pod's container: a process leading its own session,
// so signals reach everything it started, with Pdeathsig so it dies with the
// node's process even when nobody gets to call Stop.
type proc struct {
	pid        int
	started    time.Time
	exited     chan exitInfo // receives once, when the process has ended
	ready      chan bool     // readiness changes
	unhealthy  chan string   // a liveness failure
	stopProbes context.CancelFunc
}

type exitInfo struct {
	code, signal int32
	at           time.Time
}

// start makes one attempt to run the pod's container.
func (w *podWorker) start(ctx context.Context) {
	pod := w.latestPod()
	if msg := unsupported(pod); msg != "" {
		w.failPod(ctx, "Unsupported", msg)
		return
	}
	if w.setupErr != nil {
		w.failPod(ctx, "NodeSetupError", w.setupErr.Error())
		return
	}
	c := &pod.Spec.Containers[0]
	image, ok := w.n.opts.Catalog.Lookup(c.Image)
	if !ok {
		msg := fmt.Sprintf("image %q is not in the kubenode catalog (map it to a command with Catalog.Set)", c.Image)
		if pod.Spec.RestartPolicy == v1.RestartPolicyNever {
			w.failPod(ctx, "ErrImagePull", msg)
			return
		}
		reason := "ErrImagePull"
		if w.st.waiting != nil && (w.st.waiting.Reason == "ErrImagePull" || w.st.waiting.Reason == "ImagePullBackOff") {
			reason = "ImagePullBackOff"
		}
		w.waitAndRetry(ctx, reason, msg)
		return
	}
	env, vars, err := w.containerEnv(ctx, pod, c)
	if err != nil {
		w.waitAndRetry(ctx, "CreateContainerConfigError", err.Error())
		return
	}
	argv := containerArgv(image, c, vars)

	w.st.attempts++
	if w.st.attempts > 1 {
		w.restarts.Add(1)
	}
	p, err := w.spawn(argv, env, c)
	if err != nil {
		// As the kubelet reports a container its runtime could not start.
		now := time.Now()
		w.log.Warn("container start failed", "argv", argv, "err", err)
		w.recordEnd(&v1.ContainerStateTerminated{ExitCode: 128, Reason: "StartError", Message: err.Error(),
			StartedAt: metav1.NewTime(now), FinishedAt: metav1.NewTime(now)}, 0)
		if w.st.phase == v1.PodPending {
			w.st.phase = v1.PodRunning // a container was tried: no longer Pending, as in the kubelet
		}
		w.afterRun(ctx)
		return
	}
	w.cur = p
	w.pid.Store(int64(p.pid))
	w.st.containerID = fmt.Sprintf("kubenode://%d", p.pid)
	w.st.phase = v1.PodRunning
	w.st.waiting, w.st.terminated = nil, nil
	w.st.running = &v1.ContainerStateRunning{StartedAt: metav1.NewTime(p.started)}
	w.st.ready = c.ReadinessProbe == nil
	w.log.Info("container started", "pid", p.pid, "ip", w.ip.String(), "argv", argv)
	w.writeStatus(ctx)
}

// containerArgv applies a container's command and args to an image's argv
// the way Kubernetes applies them to an image's entrypoint, with $(VAR)
// expanded from the container's environment.
func containerArgv(image []string, c *v1.Container, vars map[string]string) []string {
	mapping := mappingFuncFor(vars)
	argv := image
	if len(c.Command) > 0 {
		argv = nil
		for _, a := range c.Command {
			argv = append(argv, expand(a, mapping))
		}
	}
	for _, a := range c.Args {
		argv = append(argv, expand(a, mapping))
	}
	return argv
}

// spawn starts argv with its output going to the pod's log and its probes
// running.
func (w *podWorker) spawn(argv, env []string, c *v1.Container) (*proc, error) {
	if len(argv) == 0 {
		return nil, errors.New("empty command")
	}
	dir := w.dir
	if c.WorkingDir != "" {
		if fi, err := os.Stat(c.WorkingDir); err == nil && fi.IsDir() {
			dir = c.WorkingDir
		}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = env, dir, pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = pr.Close()
		_ = pw.Close()
		return nil, err
	}
	_ = pw.Close() // the child holds the write end now
	p := &proc{
		pid: cmd.Process.Pid, started: time.Now(),
		exited: make(chan exitInfo, 1), ready: make(chan bool), unhealthy: make(chan string),
	}
	instance := w.logs.begin()
	go func() {
		// Ends at EOF, when the process and whatever inherited its output
		// have exited; the process group is killed on every way out.
		_, _ = io.Copy(w.logs, pr)
		_ = pr.Close()
		w.logs.end(instance)
	}()
	go func() {
		_ = cmd.Wait()
		ex := exitInfo{at: time.Now()}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			ex.signal = int32(ws.Signal())
			ex.code = 128 + ex.signal
		} else {
			ex.code = int32(cmd.ProcessState.ExitCode())
		}
		p.exited <- ex
	}()
	probeCtx, cancel := context.WithCancel(w.n.ctx)
	p.stopProbes = cancel
	w.startProbes(probeCtx, p, c, env)
	return p, nil
}
