package process

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/discovery-platform/discovery/apps"
)

// unhealthyAfter is how many consecutive failed checks turn a ready replica
// unhealthy; one success makes it ready again.
const unhealthyAfter = 3

// newProbeClient returns the client for HTTP health checks: no proxy from the
// environment, one kept-alive connection per replica (a probe on it costs a
// request, not a TCP handshake and a new goroutine pair: at a probe a second
// per replica that is most of the probe's CPU), and redirects count as
// healthy rather than being followed. idle is how long a connection may rest
// between probes.
func newProbeClient(idle time.Duration) *http.Client {
	return &http.Client{
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, IdleConnTimeout: idle},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// probe health-checks a replica once and moves it between starting, ready and
// unhealthy. Stopping and exited replicas are left alone.
func (r *Runtime) probe(rep *replica) {
	r.mu.Lock()
	if !probed(rep.state) {
		r.mu.Unlock()
		return
	}
	ctx, addr, path := rep.probeCtx, rep.meta.Address, rep.meta.HealthPath
	r.mu.Unlock()

	err := r.check(ctx, addr, path)

	r.mu.Lock()
	defer r.mu.Unlock()
	if ctx.Err() != nil || !probed(rep.state) {
		return // stopped or closed meanwhile: the result means nothing
	}
	if err == nil {
		rep.failures = 0
		r.setState(rep, apps.ReplicaReady)
		return
	}
	rep.failures++
	r.log.Debug("replica health check failed", logAttrs(rep.meta.id(), "failures", rep.failures, "err", err)...)
	if rep.state == apps.ReplicaReady && rep.failures >= unhealthyAfter {
		r.setState(rep, apps.ReplicaUnhealthy)
	}
}

func probed(s apps.ReplicaState) bool {
	return s == apps.ReplicaStarting || s == apps.ReplicaReady || s == apps.ReplicaUnhealthy
}

// check is one health check: HTTP GET of healthPath answering 2xx or 3xx, or,
// without a path, a TCP connect.
func (r *Runtime) check(ctx context.Context, addr, healthPath string) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ProbeTimeout)
	defer cancel()
	if healthPath == "" {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	if !strings.HasPrefix(healthPath, "/") {
		healthPath = "/" + healthPath
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+healthPath, nil)
	if err != nil {
		return err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %s", healthPath, resp.Status)
	}
	return nil
}
