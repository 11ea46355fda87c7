package kubenode

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Probes follow the kubelet's rules: the first probe after
// initialDelaySeconds, then one every periodSeconds, each bounded by
// timeoutSeconds; readiness turns true after successThreshold successes in a
// row and false after failureThreshold failures in a row; liveness reports
// once after failureThreshold failures, and the worker restarts the
// container. Startup probes are not run (the container counts as started
// when it runs).

func (w *podWorker) startProbes(ctx context.Context, p *proc, c *v1.Container, env []string) {
	if c.ReadinessProbe != nil {
		pr := w.prober(c, c.ReadinessProbe, env)
		go runProbe(ctx, c.ReadinessProbe, pr, false, func(ok bool, _ error) {
			select {
			case p.ready <- ok:
			case <-ctx.Done():
			}
		})
	}
	if c.LivenessProbe != nil {
		pr := w.prober(c, c.LivenessProbe, env)
		go runProbe(ctx, c.LivenessProbe, pr, true, func(ok bool, err error) {
			if ok {
				return
			}
			select {
			case p.unhealthy <- fmt.Sprint(err):
			case <-ctx.Done():
			}
		})
	}
}

// runProbe calls check on the probe's schedule and reports each change of
// its thresholded result, starting from initial, until ctx ends. A liveness
// probe (initial true) stops after its first failure report.
func runProbe(ctx context.Context, p *v1.Probe, check func(context.Context) error, initial bool, report func(bool, error)) {
	period := seconds(p.PeriodSeconds, 10)
	timeout := seconds(p.TimeoutSeconds, 1)
	successes, failures := max(int(p.SuccessThreshold), 1), max(int(p.FailureThreshold), 1)
	if p.InitialDelaySeconds > 0 {
		t := time.NewTimer(time.Duration(p.InitialDelaySeconds) * time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	state, run := initial, 0
	for {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := check(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		ok := err == nil
		if ok == state {
			run = 0
		} else {
			run++
		}
		if ok != state && ((ok && run >= successes) || (!ok && run >= failures)) {
			state, run = ok, 0
			report(ok, err)
			if initial && !ok {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func seconds(s, def int32) time.Duration {
	if s <= 0 {
		s = def
	}
	return time.Duration(s) * time.Second
}

// prober returns the check a probe describes, aimed at the pod's address.
func (w *podWorker) prober(c *v1.Container, p *v1.Probe, env []string) func(context.Context) error {
	ip := w.ip.String()
	switch {
	case p.HTTPGet != nil:
		g := p.HTTPGet
		return func(ctx context.Context) error { return w.httpProbe(ctx, c, g, ip) }
	case p.TCPSocket != nil:
		t := p.TCPSocket
		return func(ctx context.Context) error {
			port, err := probePort(c, t.Port)
			if err != nil {
				return err
			}
			conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(hostOr(t.Host, ip), strconv.Itoa(port)))
			if err != nil {
				return err
			}
			return conn.Close()
		}
	case p.Exec != nil:
		argv := p.Exec.Command
		return func(ctx context.Context) error {
			if len(argv) == 0 {
				return errors.New("exec probe without command")
			}
			cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
			cmd.Env, cmd.Dir = env, w.dir
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
			cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
			cmd.WaitDelay = time.Second
			return cmd.Run()
		}
	}
	return func(context.Context) error {
		return errors.New("kubenode supports httpGet, tcpSocket and exec probes only")
	}
}

// probeClient is shared by every HTTP probe: no keep-alive (as the kubelet),
// and no certificate check for HTTPS probes (as the kubelet).
var probeClient = &http.Client{Transport: &http.Transport{
	DisableKeepAlives: true,
	TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
}}

func (w *podWorker) httpProbe(ctx context.Context, c *v1.Container, g *v1.HTTPGetAction, ip string) error {
	port, err := probePort(c, g.Port)
	if err != nil {
		return err
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	url := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(hostOr(g.Host, ip), strconv.Itoa(port)), path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/1.34")
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	}
	return nil
}

// probePort resolves a probe's port: a number, or the name of a container port.
func probePort(c *v1.Container, p intstr.IntOrString) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("port %q not found among the container's ports", p.StrVal)
}

func hostOr(host, ip string) string {
	if host != "" {
		return host
	}
	return ip
}
