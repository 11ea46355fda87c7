// Package tenants holds the platform's tenants: isolated customers, each mapped
// to its own Kubernetes namespace. Until authentication arrives a single
// "default" tenant exists, created at start-up.
package tenants

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Default is the tenant that exists from the first start.
const Default = "default"

// Sentinel errors of the tenants domain.
var (
	ErrNotFound = errors.New("tenants: not found")
)

// Tenant is an isolated customer of the platform.
type Tenant struct {
	Name string `json:"name"`
	// Namespace is the Kubernetes namespace its replicas run in.
	Namespace string    `json:"namespace"`
	CreatedAt time.Time `json:"created_at"`
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

// Ensure creates a tenant if it does not exist yet.
func (s *Store) Ensure(ctx context.Context, name string) error {
	t := Tenant{Name: name, Namespace: s.Namespace(name), CreatedAt: time.Now().UTC()}
	val, err := json.Marshal(t)
	if err != nil {
		return err
	}
	key := s.key(name)
	_, err = s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val))).Commit()
	if err != nil {
		return fmt.Errorf("ensure tenant %s: %w", name, err)
	}
	return nil
}

// Exists reports whether a tenant exists.
func (s *Store) Exists(ctx context.Context, name string) (bool, error) {
	resp, err := s.cli.Get(ctx, s.key(name), clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("get tenant %s: %w", name, err)
	}
	return resp.Count > 0, nil
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
		out = append(out, t)
	}
	return out, nil
}
