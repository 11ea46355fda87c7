package kubetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SkipEnv names the developer opt-out: DISCOVERY_SKIP_KUBE=1 skips every
// test that needs the cluster. CI never sets it.
const SkipEnv = "DISCOVERY_SKIP_KUBE"

// Skip skips t when DISCOVERY_SKIP_KUBE=1.
func Skip(t testing.TB) {
	t.Helper()
	if os.Getenv(SkipEnv) == "1" {
		t.Skip(SkipEnv + "=1: skipping a test that needs the Kubernetes test cluster")
	}
}

// StartTimeout bounds Shared's start of the cluster.
const StartTimeout = 3 * time.Minute

var shared struct {
	mu      sync.Mutex
	started bool
	c       *Cluster
	err     error
	took    time.Duration
}

// Shared returns the test binary's one cluster (one node), starting it on
// first use; a failed start fails every caller. Call StopShared from
// TestMain after m.Run. It skips t when DISCOVERY_SKIP_KUBE=1.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	Skip(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.started {
		shared.started = true
		ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
		start := time.Now()
		// Warnings only: a node's failed status write or start is worth
		// seeing next to the test that tripped on it.
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		shared.c, shared.err = Start(ctx, Options{Logger: log})
		shared.took = time.Since(start)
		cancel()
		if shared.err == nil {
			t.Logf("kubetest: cluster started in %s (dir %s)", shared.took.Round(time.Millisecond), shared.c.Dir)
		}
	}
	if shared.err != nil {
		t.Fatalf("kubetest: start cluster: %v", shared.err)
	}
	return shared.c
}

// SharedStartTime is how long the shared cluster took to start (0 if it
// has not been started).
func SharedStartTime() time.Duration {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	return shared.took
}

// StopShared stops the shared cluster, if one was started.
func StopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.c != nil {
		shared.c.Stop()
	}
}

var nonDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// Namespace creates a namespace for t (named after the test, with a random
// suffix), waits until its default ServiceAccount exists, and deletes it
// when t ends (not waiting: the namespace controller and the nodes finish
// the job in the background).
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	base := strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(base) > 50 {
		base = strings.TrimRight(base[:50], "-")
	}
	name := base + "-" + hex.EncodeToString(suffix)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubetest": "true"}}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("kubetest: create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	})
	if err := c.waitServiceAccount(ctx, name, "default"); err != nil {
		t.Fatalf("kubetest: namespace %s: %v", name, err)
	}
	return name
}
