package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/cloudflare/tableflip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

var leaderChanges = promauto.NewCounter(prometheus.CounterOpts{
	Name: "discovery_leader_changes_total", Help: "Times this instance became the reconciler's leader.",
})

// lead campaigns for leadership (an etcd election with a 5 s session) and runs
// work while this instance leads; when the session is lost (this instance was
// cut off from etcd for longer than its TTL) work is cancelled and it campaigns
// again. Another instance takes over within about the TTL after a leader dies.
func (m *Main) lead(ctx context.Context, cli *clientv3.Client, work func(context.Context)) {
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(cli, concurrency.WithTTL(5), concurrency.WithContext(ctx))
		if err != nil {
			if ctx.Err() == nil {
				m.Log.Warn("leader election: no session; retrying", "err", err)
				pause(ctx, time.Second)
			}
			continue
		}
		el := concurrency.NewElection(sess, m.Config.EtcdPrefix+"/leader")
		if err := el.Campaign(ctx, m.Config.Instance); err != nil {
			_ = sess.Close()
			continue
		}
		leaderChanges.Inc()
		m.Log.Info("became the reconciler's leader", "instance", m.Config.Instance)
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-sess.Done():
				m.Log.Warn("lost leadership (etcd session ended)", "instance", m.Config.Instance)
			case <-lctx.Done():
			}
			cancel()
		}()
		work(lctx)
		cancel()
		rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = el.Resign(rctx)
		rcancel()
		_ = sess.Close()
	}
}

// listen opens a listening socket, inherited from the previous process
// after an in-place upgrade.
func (m *Main) listen(addr string) (net.Listener, error) {
	if m.Upg != nil {
		return m.Upg.Listen("tcp", addr)
	}
	return net.Listen("tcp", addr)
}

// listenGateway opens the gateway's socket; with several gateway processes
// it has SO_REUSEPORT (see gateways.go).
func (m *Main) listenGateway(addr string) (net.Listener, error) {
	if m.Config.GatewayProcs <= 1 {
		return m.listen(addr)
	}
	if m.Upg != nil {
		if ln, err := m.Upg.Fds.Listener("tcp", addr); err != nil || ln != nil {
			return ln, err // inherited from the previous process
		}
		lc := net.ListenConfig{Control: reusePort}
		ln, err := lc.Listen(context.Background(), "tcp", addr)
		if err != nil {
			return nil, err
		}
		if err := m.Upg.Fds.AddListener("tcp", addr, ln.(tableflip.Listener)); err != nil {
			ln.Close()
			return nil, err
		}
		return ln, nil
	}
	lc := net.ListenConfig{Control: reusePort}
	return lc.Listen(context.Background(), "tcp", addr)
}

// StopAccepting closes the API and the gateway to new connections; sessions
// already upgraded stay with the relay.
func (m *Main) StopAccepting() {
	m.stopOnce.Do(func() {
		if m.server != nil {
			// Idle keep-alive clients would hold the shutdown to its bound;
			// past it they are simply closed, which is fine.
			_ = m.server.App().ShutdownWithTimeout(5 * time.Second)
		}
		if m.gateway != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = m.gateway.Shutdown(sctx)
			cancel()
		}
	})
}

// startMetrics serves /metrics on --metrics-addr. It keeps serving while a
// stopping process drains its sessions, so their count stays visible.
func (m *Main) startMetrics() {
	if m.metricsLn == nil {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	if m.Config.Pprof {
		// Profiles, not the command line (it may name key files).
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	m.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: m.Config.HeaderTimeout, MaxHeaderBytes: 64 << 10}
	srv, ln := m.metrics, m.metricsLn
	m.goRun(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Log.Error("metrics stopped", "err", err)
		}
	})
}

func (m *Main) stopMetrics() {
	if m.metrics != nil {
		_ = m.metrics.Close()
	} else if m.metricsLn != nil {
		_ = m.metricsLn.Close() // Run failed before serving
	}
}

// Drain waits until the relay holds no session, or the bound passes; the
// gateway workers drain theirs meanwhile, within the same bound.
func (m *Main) Drain(bound time.Duration) {
	deadline := time.Now().Add(bound)
	var wg sync.WaitGroup
	if m.workers != nil {
		wg.Go(func() {
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			defer cancel()
			m.workers.stop(ctx)
		})
	}
	defer wg.Wait()
	if m.relay == nil {
		return
	}
	for m.relay.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := m.relay.Len(); n > 0 {
		m.Log.Warn("drain bound reached: closing the sessions still open", "sessions", n)
	}
}

// Handoff runs in the old process once the new one is ready: stop serving,
// let go of etcd (the new process opens the same data dir and ports), keep
// relaying and counting the sessions already open until they end.
func (m *Main) Handoff() {
	m.StopAccepting()
	m.stopMetrics() // the new process serves them now
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	if m.etcd != nil {
		m.etcd.Close()
		<-m.etcd.Server.StopNotify()
		m.etcd = nil
	}
	m.Drain(m.Config.DrainTimeout)
}

// Close stops everything: the API, the gateway (closing any session still
// open), the reconciler, the session counter and etcd. Replicas keep running.
func (m *Main) Close() error {
	m.StopAccepting()
	if m.workers != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		m.workers.stop(ctx)
		cancel()
	}
	var errs []error
	if m.relay != nil {
		errs = append(errs, m.relay.Close())
	}
	m.stopMetrics()
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	if m.keep != nil {
		m.keep()
	}
	m.keepWG.Wait()
	if m.client != nil {
		errs = append(errs, m.client.Close())
	}
	if m.etcd != nil {
		m.etcd.Close()
		<-m.etcd.Server.StopNotify()
	}
	return errors.Join(errs...)
}

// pause waits d, or less if ctx ends first.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
