package apps

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// usageKey holds a tenant's Usage: {prefix}/usage/{tenant}.
func (s *Store) usageKey(tenant string) string { return path.Join(s.prefix, "usage", tenant) }

// tenantLock serialises this process's usage-changing writes of one tenant,
// so they do not lose compare-and-swaps to each other (writes from other
// instances still can, and retry).
func (s *Store) tenantLock(tenant string) func() {
	m, _ := s.locks.LoadOrStore(tenant, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// usageTxn is a tenant's usage as read, with what a transaction needs to
// change it: the comparison that makes the read current, and the put.
type usageTxn struct {
	key string
	Usage
	cmp clientv3.Cmp
}

func (u usageTxn) put() clientv3.Op {
	b, _ := json.Marshal(u.Usage)
	return clientv3.OpPut(u.key, string(b))
}

// readUsage reads a tenant's usage. A tenant without a record (its records
// were written before usage was kept) gets one counted from its records; the
// transaction that writes it compares that no record exists yet, so two
// instances counting at once cannot both win.
func (s *Store) readUsage(ctx context.Context, tenant string) (usageTxn, error) {
	key := s.usageKey(tenant)
	resp, err := s.kv.Get(ctx, key)
	if err != nil {
		return usageTxn{}, fmt.Errorf("usage of %s: %w", tenant, err)
	}
	if len(resp.Kvs) > 0 {
		var u Usage
		if err := json.Unmarshal(resp.Kvs[0].Value, &u); err != nil {
			return usageTxn{}, fmt.Errorf("decode usage of %s: %w", tenant, err)
		}
		return usageTxn{key: key, Usage: u, cmp: clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)}, nil
	}
	u, err := s.countUsage(ctx, tenant)
	if err != nil {
		return usageTxn{}, err
	}
	return usageTxn{key: key, Usage: u, cmp: clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}, nil
}

// countUsage counts a tenant's records (one read per kind).
func (s *Store) countUsage(ctx context.Context, tenant string) (Usage, error) {
	resp, err := s.kv.Txn(ctx).Then(
		clientv3.OpGet(path.Join(s.prefix, "apps", tenant)+"/", clientv3.WithPrefix(), clientv3.WithCountOnly()),
		clientv3.OpGet(path.Join(s.prefix, "replicas", tenant)+"/", clientv3.WithPrefix(), clientv3.WithCountOnly()),
		clientv3.OpGet(path.Join(s.prefix, "revisions", tenant)+"/", clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return Usage{}, fmt.Errorf("count usage of %s: %w", tenant, err)
	}
	u := Usage{
		Apps:     int(resp.Responses[0].GetResponseRange().Count),
		Replicas: int(resp.Responses[1].GetResponseRange().Count),
	}
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		r, err := decodeRevision(kv.Value, kv.ModRevision)
		if err != nil {
			return Usage{}, err
		}
		u.Revisions++
		u.Bytes += r.Spec().Size()
	}
	return u, nil
}

// Usage returns what a tenant holds.
func (s *Store) Usage(ctx context.Context, tenant string) (Usage, error) {
	u, err := s.readUsage(ctx, tenant)
	return u.Usage, err
}

// DeleteUsage forgets a deleted tenant's usage (its records are gone).
func (s *Store) DeleteUsage(ctx context.Context, tenant string) error {
	if _, err := s.kv.Delete(ctx, s.usageKey(tenant)); err != nil {
		return fmt.Errorf("delete usage of %s: %w", tenant, err)
	}
	return nil
}
