package tenants

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/internal/storeerr"
)

// Store keeps tenants in etcd under {prefix}/tenants/{name}, and the last
// tenant number handed out (Tenant.Seq) under {prefix}/tenant-seq. Each
// exported method is one transaction (or a read).
type Store struct {
	cli             clientv3.KV // errors translated (storeerr)
	prefix          string
	namespacePrefix string
}

// NewStore returns a tenant store; namespacePrefix maps a tenant to its
// namespace ("discovery-" + "acme").
func NewStore(cli *clientv3.Client, prefix, namespacePrefix string) *Store {
	if prefix == "" {
		prefix = "/discovery"
	}
	return &Store{cli: storeerr.KV(cli), prefix: strings.TrimSuffix(prefix, "/"), namespacePrefix: namespacePrefix}
}

func (s *Store) key(name string) string { return path.Join(s.prefix, "tenants", name) }
func (s *Store) seqKey() string         { return path.Join(s.prefix, "tenant-seq") }

// Namespace returns the namespace a tenant maps to.
func (s *Store) Namespace(name string) string { return s.namespacePrefix + name }

// Create stores a new tenant (ErrExists if taken) with the next tenant
// number, in one transaction.
func (s *Store) Create(ctx context.Context, name string, q *Quota) (Tenant, error) {
	if err := ValidName(name, s.namespacePrefix); err != nil {
		return Tenant{}, err
	}
	t := Tenant{Name: name, Namespace: s.Namespace(name), Quota: DefaultQuota, CreatedAt: time.Now().UTC()}
	if q != nil {
		if err := q.Validate(); err != nil {
			return Tenant{}, err
		}
		t.Quota = *q
	}
	key := s.key(name)
	for i := 0; ; i++ {
		seq, seqCmp, err := s.nextSeq(ctx)
		if err != nil {
			return Tenant{}, fmt.Errorf("create tenant %s: %w", name, err)
		}
		t.Seq = seq
		val, _ := json.Marshal(t)
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0), seqCmp).
			Then(clientv3.OpPut(key, string(val)), clientv3.OpPut(s.seqKey(), strconv.Itoa(seq))).
			Else(clientv3.OpGet(key, clientv3.WithCountOnly())).Commit()
		if err != nil {
			return Tenant{}, fmt.Errorf("create tenant %s: %w", name, err)
		}
		if resp.Succeeded {
			t.ModRevision = resp.Header.Revision
			return t, nil
		}
		if resp.Responses[0].GetResponseRange().Count > 0 {
			return Tenant{}, fmt.Errorf("tenant %s: %w", name, ErrExists)
		}
		if i >= seqRetries {
			return Tenant{}, fmt.Errorf("create tenant %s: %w", name, ErrConflict)
		}
		// Another tenant took the number: back off a little, jittered, so
		// many concurrent creates do not keep colliding.
		time.Sleep(time.Duration(1+rand.IntN(2*(i+1))) * time.Millisecond)
	}
}

// seqRetries bounds retries when tenants are created concurrently.
const seqRetries = 32

// nextSeq reads the last tenant number and returns the next, with the
// comparison that makes it one's own.
func (s *Store) nextSeq(ctx context.Context) (int, clientv3.Cmp, error) {
	resp, err := s.cli.Get(ctx, s.seqKey())
	if err != nil {
		return 0, clientv3.Cmp{}, err
	}
	if len(resp.Kvs) == 0 {
		return 1, clientv3.Compare(clientv3.CreateRevision(s.seqKey()), "=", 0), nil
	}
	last, err := strconv.Atoi(string(resp.Kvs[0].Value))
	if err != nil {
		return 0, clientv3.Cmp{}, fmt.Errorf("tenant-seq %q: %w", resp.Kvs[0].Value, err)
	}
	return last + 1, clientv3.Compare(clientv3.ModRevision(s.seqKey()), "=", resp.Kvs[0].ModRevision), nil
}

// Seq returns a tenant's number, allocating one for a tenant created before
// numbers existed.
func (s *Store) Seq(ctx context.Context, name string) (int, error) {
	for i := 0; ; i++ {
		t, err := s.Get(ctx, name)
		if err != nil || t.Seq > 0 {
			return t.Seq, err
		}
		seq, seqCmp, err := s.nextSeq(ctx)
		if err != nil {
			return 0, err
		}
		t.Seq = seq
		val, _ := json.Marshal(t)
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(s.key(name)), "=", t.ModRevision), seqCmp).
			Then(clientv3.OpPut(s.key(name), string(val)), clientv3.OpPut(s.seqKey(), strconv.Itoa(seq))).Commit()
		if err != nil {
			return 0, fmt.Errorf("tenant %s number: %w", name, err)
		}
		if resp.Succeeded {
			return seq, nil
		}
		if i >= seqRetries {
			return 0, fmt.Errorf("tenant %s number: %w", name, ErrConflict)
		}
	}
}

// CommandsAllowed reports whether a platform admin allowed the tenant to
// deploy raw commands (authz.TenantTrust).
func (s *Store) CommandsAllowed(ctx context.Context, name string) (bool, error) {
	t, err := s.Get(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return t.AllowCommands, err
}

// Ensure creates a tenant with the default quota if it does not exist yet.
func (s *Store) Ensure(ctx context.Context, name string) error {
	_, err := s.Create(ctx, name, nil)
	if errors.Is(err, ErrExists) {
		return nil
	}
	return err
}

// Get reads one tenant.
func (s *Store) Get(ctx context.Context, name string) (Tenant, error) {
	resp, err := s.cli.Get(ctx, s.key(name))
	if err != nil {
		return Tenant{}, fmt.Errorf("get tenant %s: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return Tenant{}, fmt.Errorf("tenant %s: %w", name, ErrNotFound)
	}
	return decode(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
}

// Exists reports whether a tenant exists.
func (s *Store) Exists(ctx context.Context, name string) (bool, error) {
	resp, err := s.cli.Get(ctx, s.key(name), clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("get tenant %s: %w", name, err)
	}
	return resp.Count > 0, nil
}

// Quota returns a tenant's quota.
func (s *Store) Quota(ctx context.Context, name string) (Quota, error) {
	t, err := s.Get(ctx, name)
	return t.Quota, err
}

// List returns every tenant sorted by name.
func (s *Store) List(ctx context.Context) ([]Tenant, error) {
	resp, err := s.cli.Get(ctx, path.Join(s.prefix, "tenants")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	out := make([]Tenant, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		t, err := decode(kv.Value, kv.ModRevision)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// Update writes a tenant read earlier, if nobody changed it since.
func (s *Store) Update(ctx context.Context, t Tenant) (Tenant, error) {
	if t.ModRevision == 0 {
		// Not read from the store: a compare with 0 would create the key.
		return Tenant{}, fmt.Errorf("%w: update of tenant %q that was not read first", ErrInvalid, t.Name)
	}
	val, _ := json.Marshal(t)
	key := s.key(t.Name)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", t.ModRevision)).
		Then(clientv3.OpPut(key, string(val))).Commit()
	if err != nil {
		return Tenant{}, fmt.Errorf("update tenant %s: %w", t.Name, err)
	}
	if !resp.Succeeded {
		return Tenant{}, fmt.Errorf("update tenant %s: %w", t.Name, ErrConflict)
	}
	t.ModRevision = resp.Header.Revision
	return t, nil
}

// Delete removes a tenant record (once its apps are gone).
func (s *Store) Delete(ctx context.Context, t Tenant) error {
	key := s.key(t.Name)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", t.ModRevision)).
		Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return fmt.Errorf("delete tenant %s: %w", t.Name, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("delete tenant %s: %w", t.Name, ErrConflict)
	}
	return nil
}

func decode(b []byte, mod int64) (Tenant, error) {
	var t Tenant
	if err := json.Unmarshal(b, &t); err != nil {
		return Tenant{}, fmt.Errorf("decode tenant: %w", err)
	}
	t.Quota.normalize()
	t.ModRevision = mod
	return t, nil
}
