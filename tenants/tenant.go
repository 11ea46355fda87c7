// Package tenants holds the platform's tenants: isolated customers, each mapped
// to its own Kubernetes namespace (<prefix><tenant>) and bounded by a quota.
// A "default" tenant exists from the first start.
package tenants

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Default is the tenant that exists from the first start.
const Default = "default"

// Sentinel errors of the tenants domain.
var (
	ErrNotFound      = errors.New("tenants: not found")
	ErrExists        = errors.New("tenants: already exists")
	ErrInvalid       = errors.New("tenants: invalid")
	ErrConflict      = errors.New("tenants: conflict")
	ErrQuotaExceeded = errors.New("tenants: quota exceeded")
)

// Quota bounds what a tenant may run.
type Quota struct {
	// MaxApps is how many apps the tenant may have.
	MaxApps int `json:"max_apps"`
	// MaxReplicas counts replicas of every revision, draining ones included.
	MaxReplicas int `json:"max_replicas"`
	// MaxRevisions is how many retired or failed revisions an app keeps.
	MaxRevisions int `json:"max_revisions"`
	// MaxCPUMillis and MaxMemoryMB bound one replica's resource request.
	MaxCPUMillis int `json:"max_cpu_millis"`
	MaxMemoryMB  int `json:"max_memory_mb"`
}

// DefaultQuota is a new tenant's quota.
var DefaultQuota = Quota{MaxApps: 20, MaxReplicas: 50, MaxRevisions: 10, MaxCPUMillis: 4000, MaxMemoryMB: 8192}

// Validate checks a quota's numbers.
func (q Quota) Validate() error {
	for _, f := range []struct {
		name   string
		v, max int
	}{{"max_apps", q.MaxApps, 10000}, {"max_replicas", q.MaxReplicas, 100000}, {"max_revisions", q.MaxRevisions, 1000},
		{"max_cpu_millis", q.MaxCPUMillis, 1_000_000}, {"max_memory_mb", q.MaxMemoryMB, 10_000_000}} {
		if f.v < 0 || f.v > f.max {
			return fmt.Errorf("%w: quota %s %d out of range 0-%d", ErrInvalid, f.name, f.v, f.max)
		}
	}
	if q.MaxRevisions < 1 {
		return fmt.Errorf("%w: quota max_revisions must be at least 1", ErrInvalid)
	}
	return nil
}

// Tenant is an isolated customer of the platform.
type Tenant struct {
	Name string `json:"name"`
	// Namespace is the Kubernetes namespace its replicas run in.
	Namespace string `json:"namespace"`
	Quota     Quota  `json:"quota"`
	// Deleting is set by DELETE: its apps are retired, then the tenant goes.
	Deleting  bool      `json:"deleting,omitempty"`
	CreatedAt time.Time `json:"created_at"`

	ModRevision int64 `json:"-"`
}

var dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidName checks a tenant name: a DNS-1123 label that, with the namespace
// prefix, still fits Kubernetes' 63 characters.
func ValidName(name string, namespacePrefix string) error {
	if name == "" || len(namespacePrefix+name) > 63 || !dns1123.MatchString(name) {
		return fmt.Errorf("%w: tenant name %q must be a DNS-1123 label of at most %d characters", ErrInvalid, name, 63-len(namespacePrefix))
	}
	return nil
}

// Store keeps tenants in etcd under {prefix}/tenants/{name}.
type Store struct {
	cli             *clientv3.Client
	prefix          string
	namespacePrefix string
}

// NewStore returns a tenant store; namespacePrefix maps a tenant to its
// namespace ("discovery-" + "acme").
func NewStore(cli *clientv3.Client, prefix, namespacePrefix string) *Store {
	if prefix == "" {
		prefix = "/discovery"
	}
	return &Store{cli: cli, prefix: strings.TrimSuffix(prefix, "/"), namespacePrefix: namespacePrefix}
}

func (s *Store) key(name string) string { return path.Join(s.prefix, "tenants", name) }

// Namespace returns the namespace a tenant maps to.
func (s *Store) Namespace(name string) string { return s.namespacePrefix + name }

// Create stores a new tenant (ErrExists if taken).
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
	val, _ := json.Marshal(t)
	key := s.key(name)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val))).Commit()
	if err != nil {
		return Tenant{}, fmt.Errorf("create tenant %s: %w", name, err)
	}
	if !resp.Succeeded {
		return Tenant{}, fmt.Errorf("tenant %s: %w", name, ErrExists)
	}
	t.ModRevision = resp.Header.Revision
	return t, nil
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
	var t Tenant
	if err := json.Unmarshal(resp.Kvs[0].Value, &t); err != nil {
		return Tenant{}, fmt.Errorf("decode tenant %s: %w", name, err)
	}
	t.ModRevision = resp.Kvs[0].ModRevision
	return t, nil
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
		var t Tenant
		if err := json.Unmarshal(kv.Value, &t); err != nil {
			return nil, fmt.Errorf("decode tenant %s: %w", kv.Key, err)
		}
		t.ModRevision = kv.ModRevision
		out = append(out, t)
	}
	return out, nil
}

// Update writes a tenant read earlier, if nobody changed it since.
func (s *Store) Update(ctx context.Context, t Tenant) (Tenant, error) {
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
