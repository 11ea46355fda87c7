package apps

import (
	"context"
	"fmt"
	"time"

	"github.com/discovery-platform/discovery/tenants"
)

// Limits of an app-held lease's time to live.
const (
	MinLeaseTTL = time.Second
	MaxLeaseTTL = time.Hour
	// DefaultLeaseTTL is a lease's TTL when the request names none.
	DefaultLeaseTTL = 30 * time.Second
)

// Lease is an app-held lease: while it lives, its revision (and replica, if
// named) counts as having a session, so it is neither retired nor scaled
// down. Apps that simulate with nobody connected keep one alive over plain
// HTTP. It lives as an etcd lease: one not kept alive expires on its own.
type Lease struct {
	// ID is what the holder passes back to keep the lease alive or release
	// it: the lease number and a secret. Only its creator is told.
	ID string `json:"id,omitempty"`
	// Lease is the lease number, by which the tenant's owners list and
	// release it (no secret).
	Lease    string `json:"lease"`
	Tenant   string `json:"tenant"`
	App      string `json:"app"`
	Revision string `json:"revision"`
	Replica  string `json:"replica,omitempty"`
	// TTL is the time to live, renewed by each keep-alive.
	TTL Duration `json:"ttl"`
	// Holder says who took it: a subject, or the revision's capability.
	Holder    string    `json:"holder,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresIn is how long it has left (when listed).
	ExpiresIn Duration `json:"expires_in,omitempty"`
}

// LeaseRequest asks for a lease on a revision.
type LeaseRequest struct {
	Tenant, App, Revision, Replica string
	TTL                            Duration
	Holder                         string
}

// TakeLease takes an app-held lease on a revision that still serves (active
// or draining), on one of its replicas if named. A revision holds at most the
// tenant's max_leases_per_revision leases; the bound is kept by the store's
// transaction, not by a count read before it.
func (s *Service) TakeLease(ctx context.Context, req LeaseRequest) (Lease, error) {
	t, err := s.tenant(ctx, req.Tenant)
	if err != nil {
		return Lease{}, err
	}
	if req.TTL == 0 {
		req.TTL = Duration(DefaultLeaseTTL)
	}
	if req.TTL.D() < MinLeaseTTL || req.TTL.D() > MaxLeaseTTL {
		return Lease{}, fmt.Errorf("%w: ttl %s out of range %s-%s", ErrInvalid, req.TTL, MinLeaseTTL, MaxLeaseTTL)
	}
	snap, err := s.Store.Load(ctx, req.Tenant, req.App)
	if err != nil {
		return Lease{}, err
	}
	rev, ok := snap.Revision(req.Revision)
	if !ok {
		return Lease{}, fmt.Errorf("revision %s: %w", req.Revision, ErrNotFound)
	}
	if !rev.State.Serving() {
		return Lease{}, fmt.Errorf("%w: revision %s is %s; only an active or draining revision can be held", ErrIllegalState, req.Revision, rev.State)
	}
	if req.Replica != "" && !snap.HasReplica(req.Revision, req.Replica) {
		return Lease{}, fmt.Errorf("replica %s of revision %s: %w", req.Replica, req.Revision, ErrNotFound)
	}
	limit := tenants.DefaultQuota.MaxLeasesPerRevision
	if t != nil {
		limit = t.Quota.MaxLeasesPerRevision
	}
	return s.Store.CreateLease(ctx, req, limit)
}

// Leases lists an app's leases (every revision), for its tenant's members.
func (s *Service) Leases(ctx context.Context, tenant, app string) ([]Lease, error) {
	if err := s.checkTenant(ctx, tenant); err != nil {
		return nil, err
	}
	if _, err := s.Store.GetApp(ctx, tenant, app); err != nil {
		return nil, err
	}
	return s.Store.ListLeases(ctx, tenant, app)
}

// ReleaseLease ends one of an app's leases by its number (the tenant's
// owners need no secret).
func (s *Service) ReleaseLease(ctx context.Context, tenant, app, lease string) error {
	if err := s.checkTenant(ctx, tenant); err != nil {
		return err
	}
	return s.Store.ReleaseLeaseOf(ctx, tenant, app, lease)
}

// HasReplica reports whether the snapshot holds replica id of revision rev.
func (s Snapshot) HasReplica(rev, id string) bool {
	for _, r := range s.Replicas {
		if r.Revision == rev && r.ID == id {
			return true
		}
	}
	return false
}
