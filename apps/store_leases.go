package apps

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/internal/etcdmirror"
	"github.com/discovery-platform/discovery/internal/storeerr"
	"github.com/discovery-platform/discovery/tenants"
)

// App-held leases are etcd leases with two keys attached, so both vanish
// when the lease expires or is revoked:
//
//	{prefix}/holds/{tenant}/{app}/{revision}/{slot}  the Lease (no secret)
//	{prefix}/holdidx/{lease number}                  the slot key and the secret
//
// A revision's leases take slots 0 .. limit-1, each created only if absent:
// that is what bounds a revision's leases in one transaction.

type leaseIndex struct {
	Key    string `json:"key"`
	Secret string `json:"secret"`
	Lease  Lease  `json:"lease"`
}

func (s *Store) leaseRevPrefix(t, a, rev string) string {
	return path.Join(s.prefix, "holds", t, a, rev) + "/"
}
func (s *Store) leaseAppPrefix(t, a string) string { return path.Join(s.prefix, "holds", t, a) + "/" }
func (s *Store) leaseIndexKey(id clientv3.LeaseID) string {
	return path.Join(s.prefix, "holdidx", strconv.FormatInt(int64(id), 16))
}

// leaseSlotRetries bounds the retries of a lease losing its slot to another.
const leaseSlotRetries = 16

// CreateLease takes a lease for req with at most limit leases per revision
// (tenants.ErrQuotaExceeded past it).
func (s *Store) CreateLease(ctx context.Context, req LeaseRequest, limit int) (Lease, error) {
	grant, err := s.cli.Grant(ctx, int64((req.TTL.D()+time.Second-1)/time.Second))
	if err != nil {
		return Lease{}, fmt.Errorf("grant lease: %w", storeerr.From(err))
	}
	revoke := func() { _, _ = s.cli.Revoke(context.WithoutCancel(ctx), grant.ID) }
	secret := make([]byte, 12)
	_, _ = rand.Read(secret)
	l := Lease{
		Lease: strconv.FormatInt(int64(grant.ID), 16), Tenant: req.Tenant, App: req.App, Revision: req.Revision,
		Replica: req.Replica, TTL: req.TTL, Holder: req.Holder, CreatedAt: s.Now().UTC(),
	}
	val, _ := json.Marshal(l)
	prefix := s.leaseRevPrefix(req.Tenant, req.App, req.Revision)
	for i := 0; i < leaseSlotRetries; i++ {
		resp, err := s.kv.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			revoke()
			return Lease{}, fmt.Errorf("count leases: %w", err)
		}
		if len(resp.Kvs) >= limit {
			revoke()
			return Lease{}, fmt.Errorf("%w: max_leases_per_revision is %d and revision %s holds %d leases", tenants.ErrQuotaExceeded, limit, req.Revision, len(resp.Kvs))
		}
		used := map[string]bool{}
		for _, kv := range resp.Kvs {
			used[strings.TrimPrefix(string(kv.Key), prefix)] = true
		}
		slot := 0
		for used[strconv.Itoa(slot)] {
			slot++
		}
		key := prefix + strconv.Itoa(slot)
		idx, _ := json.Marshal(leaseIndex{Key: key, Secret: hex.EncodeToString(secret), Lease: l})
		txn, err := s.kv.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, string(val), clientv3.WithLease(grant.ID)),
				clientv3.OpPut(s.leaseIndexKey(grant.ID), string(idx), clientv3.WithLease(grant.ID))).
			Commit()
		if err != nil {
			revoke()
			return Lease{}, fmt.Errorf("store lease: %w", err)
		}
		if txn.Succeeded {
			l.ID = l.Lease + "-" + hex.EncodeToString(secret)
			return l, nil
		}
	}
	revoke()
	return Lease{}, fmt.Errorf("lease on revision %s: %w", req.Revision, ErrConflict)
}

// findLease reads a lease's index by its number.
func (s *Store) findLease(ctx context.Context, number string) (clientv3.LeaseID, leaseIndex, error) {
	n, err := strconv.ParseInt(number, 16, 64)
	if err != nil || n <= 0 {
		return 0, leaseIndex{}, fmt.Errorf("lease %q: %w", number, ErrNotFound)
	}
	id := clientv3.LeaseID(n)
	resp, err := s.kv.Get(ctx, s.leaseIndexKey(id))
	if err != nil {
		return 0, leaseIndex{}, err
	}
	var idx leaseIndex
	if len(resp.Kvs) == 0 || json.Unmarshal(resp.Kvs[0].Value, &idx) != nil {
		return 0, leaseIndex{}, fmt.Errorf("lease %q (expired or never existed): %w", number, ErrNotFound)
	}
	return id, idx, nil
}

// findLeaseByID checks a holder's id (number and secret).
func (s *Store) findLeaseByID(ctx context.Context, id string) (clientv3.LeaseID, Lease, error) {
	number, secret, ok := strings.Cut(id, "-")
	if !ok {
		return 0, Lease{}, fmt.Errorf("lease %q: %w", id, ErrNotFound)
	}
	lid, idx, err := s.findLease(ctx, number)
	if err != nil {
		return 0, Lease{}, err
	}
	if idx.Secret != secret {
		return 0, Lease{}, fmt.Errorf("lease %q (expired or never existed): %w", id, ErrNotFound)
	}
	return lid, idx.Lease, nil
}

// KeepLease renews a lease, by its holder's id, for another TTL.
func (s *Store) KeepLease(ctx context.Context, id string) (Lease, error) {
	lid, l, err := s.findLeaseByID(ctx, id)
	if err != nil {
		return Lease{}, err
	}
	if _, err := s.cli.KeepAliveOnce(ctx, lid); err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return Lease{}, fmt.Errorf("lease %q expired: %w", id, ErrNotFound)
		}
		return Lease{}, storeerr.From(err)
	}
	return l, nil
}

// ReleaseLease ends a lease now, by its holder's id.
func (s *Store) ReleaseLease(ctx context.Context, id string) error {
	lid, _, err := s.findLeaseByID(ctx, id)
	if err != nil {
		return err
	}
	return s.revokeLease(ctx, lid)
}

// ReleaseLeaseOf ends one of an app's leases by its number.
func (s *Store) ReleaseLeaseOf(ctx context.Context, tenant, app, number string) error {
	lid, idx, err := s.findLease(ctx, number)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(idx.Key, s.leaseAppPrefix(tenant, app)) {
		return fmt.Errorf("lease %s of app %s/%s: %w", number, tenant, app, ErrNotFound)
	}
	return s.revokeLease(ctx, lid)
}

func (s *Store) revokeLease(ctx context.Context, lid clientv3.LeaseID) error {
	if _, err := s.cli.Revoke(ctx, lid); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return storeerr.From(err)
	}
	return nil
}

// ListLeases returns an app's leases, oldest first, with the time each has
// left.
func (s *Store) ListLeases(ctx context.Context, tenant, app string) ([]Lease, error) {
	resp, err := s.kv.Get(ctx, s.leaseAppPrefix(tenant, app), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list leases of %s/%s: %w", tenant, app, err)
	}
	out := make([]Lease, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var l Lease
		if err := json.Unmarshal(kv.Value, &l); err != nil {
			return nil, fmt.Errorf("decode lease %s: %w", kv.Key, err)
		}
		if ttl, err := s.cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease)); err == nil && ttl.TTL > 0 {
			l.ExpiresIn = Duration(time.Duration(ttl.TTL) * time.Second)
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// LeaseFeed follows every live app-held lease (the session table counts
// them): a list, then a watch.
type LeaseFeed struct{ m *etcdmirror.Mirror }

// NewLeaseFeed returns a feed that calls onChange with every live lease after
// each change; Run runs it.
func (s *Store) NewLeaseFeed(onChange func([]Lease), log *slog.Logger) *LeaseFeed {
	p := path.Join(s.prefix, "holds") + "/"
	return &LeaseFeed{m: &etcdmirror.Mirror{Cli: s.cli, Prefix: p, Log: log, OnChange: func(kvs map[string][]byte) {
		out := make([]Lease, 0, len(kvs))
		for k, v := range kvs {
			var l Lease
			if err := json.Unmarshal(v, &l); err != nil || l.Tenant == "" || l.Revision == "" {
				if log != nil {
					log.Warn("ignoring an unreadable lease", "key", k, "err", err)
				}
				continue
			}
			out = append(out, l)
		}
		onChange(out)
	}}}
}

// Run follows the leases until ctx ends.
func (f *LeaseFeed) Run(ctx context.Context) { f.m.Run(ctx) }

// Synced is when the feed was last known current (zero before its first list).
func (f *LeaseFeed) Synced() time.Time { t, _ := f.m.Status(); return t }
