package kubenode

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	certutil "k8s.io/client-go/util/cert"
)

// The log server is the part of the kubelet's API the API server proxies
// pods/log to: GET /containerLogs/{namespace}/{pod}/{container}. It speaks
// HTTPS with a self-signed certificate because the API server dials kubelets
// over TLS and, without --kubelet-certificate-authority, does not verify them
// (k8s.io/kubernetes pkg/kubelet/client: no CA means Insecure). It asks for
// no credentials: it listens on loopback only and serves test pods.

func (n *Node) startLogServer() (net.Listener, *http.Server, error) {
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("127.0.0.1", nil, []string{"localhost", n.name})
	if err != nil {
		return nil, nil, fmt.Errorf("kubenode: log server certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("kubenode: log server certificate: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("kubenode: log server: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", n.handleLogs)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := srv.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("log server stopped", "err", err)
		}
	}()
	return l, srv, nil
}

// handleLogs serves a container's log with the kubelet's query parameters
// tailLines, limitBytes and follow; timestamps, sinceSeconds, sinceTime,
// previous and stream are accepted and ignored (one stream of every run).
func (n *Node) handleLogs(w http.ResponseWriter, r *http.Request) {
	ns, name, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	pw := n.workerByName(ns, name)
	if pw == nil {
		http.Error(w, fmt.Sprintf("pod %s/%s is not on node %s", ns, name, n.name), http.StatusNotFound)
		return
	}
	if container != pw.container {
		http.Error(w, fmt.Sprintf("container %q is not in pod %s/%s (kubenode runs %q)", container, ns, name, pw.container), http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	tail, err := optionalInt(q.Get("tailLines"))
	if err != nil {
		http.Error(w, "tailLines: "+err.Error(), http.StatusBadRequest)
		return
	}
	limit, err := optionalInt(q.Get("limitBytes"))
	if err != nil {
		http.Error(w, "limitBytes: "+err.Error(), http.StatusBadRequest)
		return
	}
	follow := q.Get("follow") == "true"

	c, err := pw.logs.readFrom(0)
	if err != nil {
		http.Error(w, "log: "+err.Error(), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	out := &limitedWriter{w: w, left: limit}
	data := c.data
	if tail >= 0 {
		data = tailLines(data, tail)
	}
	if _, err := out.Write(data); err != nil || !follow || !c.open {
		return
	}
	n.followLogs(r.Context(), w, out, pw.logs, c)
}

// followLogs streams what the current run writes until it ends, the client
// goes, the byte limit is reached or the node stops.
func (n *Node) followLogs(ctx context.Context, w http.ResponseWriter, out *limitedWriter, s *logStore, c logChunk) {
	rc := http.NewResponseController(w)
	instance := c.instance
	for {
		_ = rc.Flush()
		select {
		case <-ctx.Done():
			return
		case <-n.ctx.Done():
			return
		case <-c.changed:
		}
		next, err := s.readFrom(c.next)
		if err != nil {
			return
		}
		if _, err := out.Write(next.data); err != nil {
			return
		}
		if !next.open || next.instance != instance {
			_ = rc.Flush()
			return
		}
		c = next
	}
}

// tailLines returns the last n lines of b (a final line without newline counts).
func tailLines(b []byte, n int64) []byte {
	if n == 0 {
		return nil
	}
	end := len(b)
	if end > 0 && b[end-1] == '\n' {
		end--
	}
	for i := end - 1; i >= 0; i-- {
		if b[i] == '\n' {
			n--
			if n == 0 {
				return b[i+1:]
			}
		}
	}
	return b
}

// limitedWriter writes at most left bytes (no limit when left < 0) and then
// fails, which ends the response like the kubelet's limitBytes.
type limitedWriter struct {
	w    io.Writer
	left int64
}

var errLimit = errors.New("limitBytes reached")

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.left < 0 {
		return l.w.Write(p)
	}
	if l.left == 0 {
		return 0, errLimit
	}
	cut := p
	if int64(len(cut)) > l.left {
		cut = cut[:l.left]
	}
	n, err := l.w.Write(cut)
	l.left -= int64(n)
	if err == nil && len(cut) < len(p) {
		err = errLimit
	}
	return n, err
}

// optionalInt parses a non-negative integer parameter; "" is -1 (unset).
func optionalInt(s string) (int64, error) {
	if s == "" {
		return -1, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("want a non-negative integer, got %q", s)
	}
	return v, nil
}
