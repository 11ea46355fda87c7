package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// App-held leases keep a revision (or one of its replicas) open while
// nobody is connected: while one lives, the revision counts as having a
// session, so it is neither retired nor scaled down. A server that
// simulates alone takes one and keeps it alive; one not kept alive expires
// by itself after its TTL.

// LeaseSpec asks for a lease.
type LeaseSpec struct {
	// TTL is how long the lease lives without a keep-alive: 1 s to 1 h;
	// zero means the platform's default (30 s).
	TTL time.Duration
	// Replica, if set, also keeps that replica of the revision from being
	// scaled down (usually the replica's own Name).
	Replica string
}

// Lease is an app-held lease as the platform tells it.
type Lease struct {
	// ID is the holder's handle, to keep and release the lease: the lease
	// number and a secret. Only the answer to TakeLease carries it.
	ID string `json:"id,omitempty"`
	// Lease is the lease number, by which the tenant's members list it.
	Lease    string `json:"lease"`
	Tenant   string `json:"tenant"`
	App      string `json:"app"`
	Revision string `json:"revision"`
	Replica  string `json:"replica,omitempty"`
	// TTL is the time to live each keep-alive renews.
	TTL       time.Duration `json:"-"`
	CreatedAt time.Time     `json:"created_at"`
}

// UnmarshalJSON reads the platform's "ttl" ("30s").
func (l *Lease) UnmarshalJSON(b []byte) error {
	type plain Lease
	var v struct {
		plain
		TTL string `json:"ttl"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*l = Lease(v.plain)
	if v.TTL != "" {
		d, err := time.ParseDuration(v.TTL)
		if err != nil {
			return fmt.Errorf("lease ttl %q: %w", v.TTL, err)
		}
		l.TTL = d
	}
	return nil
}

// TakeLease takes an app-held lease on the replica's revision with its
// capability. Keep the answer's ID: KeepLease and ReleaseLease need it.
// 409 (ErrConflict) when the revision no longer serves; 403
// (ErrUnauthorized) also when the revision holds its tenant's maximum of
// leases.
func (r *Replica) TakeLease(ctx context.Context, spec LeaseSpec) (Lease, error) {
	req := struct {
		TTL     string `json:"ttl,omitempty"`
		Replica string `json:"replica,omitempty"`
	}{Replica: spec.Replica}
	if spec.TTL > 0 {
		req.TTL = spec.TTL.String()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return Lease{}, err
	}
	var l Lease
	err = r.do(ctx, call{op: "take lease", method: http.MethodPost, path: r.revisionPath("leases"),
		header: http.Header{"Content-Type": {"application/json"}}, body: body,
		capability: true, ok: []int{http.StatusCreated, http.StatusOK}, out: &l})
	return l, err
}

// KeepLease renews the lease with handle id (Lease.ID) for another TTL.
// ErrNotFound means it has expired: take a new one.
func (r *Replica) KeepLease(ctx context.Context, id string) (Lease, error) {
	var l Lease
	err := r.do(ctx, call{op: "keep lease", method: http.MethodPut, path: "/api/v1/leases/" + url.PathEscape(id),
		ok: []int{http.StatusOK}, out: &l})
	return l, err
}

// ReleaseLease ends the lease with handle id now. A lease already expired
// counts as released.
func (r *Replica) ReleaseLease(ctx context.Context, id string) error {
	err := r.do(ctx, call{op: "release lease", method: http.MethodDelete, path: "/api/v1/leases/" + url.PathEscape(id),
		ok: []int{http.StatusNoContent, http.StatusOK}})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// HoldLease takes a lease and keeps it alive (every third of its TTL)
// until ctx ends, then releases it. A lease that expired meanwhile (the
// process was paused, the API unreachable for a TTL) is taken anew. It
// returns nil once released, or the error of the first TakeLease.
func (r *Replica) HoldLease(ctx context.Context, spec LeaseSpec) error {
	l, err := r.TakeLease(ctx, spec)
	if err != nil {
		return err
	}
	for {
		every := l.TTL / 3
		if every <= 0 {
			every = 10 * time.Second
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			err := r.ReleaseLease(rctx, l.ID)
			cancel()
			return err
		case <-t.C:
		}
		kept, err := r.KeepLease(ctx, l.ID)
		switch {
		case err == nil:
			kept.ID = l.ID // the keep-alive's answer does not repeat the handle
			l = kept
		case errors.Is(err, ErrNotFound):
			r.logger().Warn("discovery: lease expired; taking a new one", "lease", l.Lease)
			if nl, terr := r.TakeLease(ctx, spec); terr == nil {
				l = nl
			} else if ctx.Err() == nil {
				r.logger().Warn("discovery: take lease", "err", terr)
			}
		case ctx.Err() == nil:
			r.logger().Warn("discovery: keep lease", "lease", l.Lease, "err", err)
		}
	}
}
