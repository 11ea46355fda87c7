package discovery

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// leasePlatform plays the lease routes; ttl is the TTL it grants and
// expireKeeps how many keep-alives answer 404 (expired) first.
type leasePlatform struct {
	t           *testing.T
	ttl         string
	expireKeeps int

	mu       sync.Mutex
	calls    []string // "POST <body>", "PUT id", "DELETE id"
	released chan struct{}
}

func (p *leasePlatform) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case r.Method == "POST" && r.URL.Path == "/api/v1/tenants/acme/apps/arena/revisions/9d00cc18/leases":
		if r.Header.Get(LeaseTokenHeader) != "cap-secret" {
			http.Error(w, `{"error":{"code":"forbidden","message":"no capability"}}`, http.StatusForbidden)
			return
		}
		b, _ := io.ReadAll(r.Body)
		p.calls = append(p.calls, "POST "+string(b))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":"7-secret","lease":"7","tenant":"acme","app":"arena","revision":"9d00cc18","replica":"r-0","ttl":"`+p.ttl+`","holder":"revision capability","created_at":"2026-12-02T17:00:00Z"}`)
	case r.Method == "PUT" && r.URL.Path == "/api/v1/leases/7-secret":
		assert.Empty(p.t, r.Header.Get(LeaseTokenHeader), "the handle is its own secret: no capability sent")
		p.calls = append(p.calls, "PUT 7-secret")
		if p.expireKeeps > 0 {
			p.expireKeeps--
			http.Error(w, `{"error":{"code":"not_found","message":"no such lease"}}`, http.StatusNotFound)
			return
		}
		_, _ = io.WriteString(w, `{"lease":"7","tenant":"acme","app":"arena","revision":"9d00cc18","ttl":"`+p.ttl+`","created_at":"2026-12-02T17:00:00Z"}`)
	case r.Method == "DELETE" && r.URL.Path == "/api/v1/leases/7-secret":
		p.calls = append(p.calls, "DELETE 7-secret")
		w.WriteHeader(http.StatusNoContent)
		if p.released != nil {
			close(p.released)
			p.released = nil
		}
	default:
		http.Error(w, `{"error":{"code":"not_found","message":"no route"}}`, http.StatusNotFound)
	}
}

func (p *leasePlatform) log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

func TestTakeKeepReleaseLease(t *testing.T) {
	p := &leasePlatform{t: t, ttl: "1m0s"}
	srv := httptest.NewServer(p)
	defer srv.Close()
	r := testReplica(t, srv.URL)
	ctx := context.Background()

	l, err := r.TakeLease(ctx, LeaseSpec{TTL: time.Minute, Replica: r.Name})
	require.NoError(t, err)
	assert.Equal(t, Lease{ID: "7-secret", Lease: "7", Tenant: "acme", App: "arena", Revision: "9d00cc18", Replica: "r-0",
		TTL: time.Minute, CreatedAt: time.Date(2026, 12, 2, 17, 0, 0, 0, time.UTC)}, l)

	kept, err := r.KeepLease(ctx, l.ID)
	require.NoError(t, err)
	assert.Equal(t, time.Minute, kept.TTL)
	require.NoError(t, r.ReleaseLease(ctx, l.ID))

	_, err = r.KeepLease(ctx, "8-other")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.NoError(t, r.ReleaseLease(ctx, "8-other"), "a lease already gone counts as released")

	calls := p.log()
	require.Len(t, calls, 3)
	var body map[string]string
	require.NoError(t, json.Unmarshal([]byte(calls[0][len("POST "):]), &body))
	assert.Equal(t, map[string]string{"ttl": "1m0s", "replica": "r-0"}, body)
	assert.Equal(t, []string{"PUT 7-secret", "DELETE 7-secret"}, calls[1:])
}

func TestTakeLeaseWithoutTheCapabilityIsRefused(t *testing.T) {
	srv := httptest.NewServer(&leasePlatform{t: t, ttl: "30s"})
	defer srv.Close()
	r := testReplica(t, srv.URL)
	r.LeaseToken = "stolen"
	_, err := r.TakeLease(context.Background(), LeaseSpec{})
	assert.ErrorIs(t, err, ErrUnauthorized)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "forbidden", e.Code)
	assert.Equal(t, "no capability", e.Message)
}

func TestHoldLeaseKeepsItAliveAndReleasesIt(t *testing.T) {
	released := make(chan struct{})
	// Renewed every 30 ms; the first keep-alive finds the lease expired.
	p := &leasePlatform{t: t, ttl: "90ms", expireKeeps: 1, released: released}
	srv := httptest.NewServer(p)
	defer srv.Close()
	r := testReplica(t, srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	held := make(chan error, 1)
	go func() { held <- r.HoldLease(ctx, LeaseSpec{}) }()

	require.Eventually(t, func() bool {
		n := 0
		for _, c := range p.log() {
			if c == "PUT 7-secret" {
				n++
			}
		}
		return n >= 3
	}, 5*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-held)
	<-released

	calls := p.log()
	assert.Equal(t, []string{"POST {}", "PUT 7-secret", "POST {}", "PUT 7-secret"}, calls[:4], "an expired lease is taken anew")
	assert.Equal(t, "DELETE 7-secret", calls[len(calls)-1])
}
