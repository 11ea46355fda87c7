package tenants

import (
	"context"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/internal/etcdmirror"
)

// Cache is a watch-fed copy of every tenant, for readers that ask on every
// pass (the reconciler's quota checks): a hit costs no etcd round trip, a
// miss (a tenant created a moment ago, or a cache not loaded yet) reads the
// store.
type Cache struct {
	store  *Store
	mirror *etcdmirror.Mirror

	mu      sync.RWMutex
	tenants map[string]Tenant
}

// NewCache returns a cache of the store's tenants; Run keeps it current.
func (s *Store) NewCache(cli *clientv3.Client, log *slog.Logger) *Cache {
	c := &Cache{store: s, tenants: map[string]Tenant{}}
	p := path.Join(s.prefix, "tenants") + "/"
	c.mirror = &etcdmirror.Mirror{Cli: cli, Prefix: p, Log: log, OnChange: func(kvs map[string][]byte) {
		next := make(map[string]Tenant, len(kvs))
		for k, v := range kvs {
			t, err := decode(v, 0)
			if err != nil {
				if log != nil {
					log.Warn("ignoring an unreadable tenant record", "key", k, "err", err)
				}
				continue
			}
			next[strings.TrimPrefix(k, p)] = t
		}
		c.mu.Lock()
		c.tenants = next
		c.mu.Unlock()
	}}
	return c
}

// Run keeps the cache current until ctx ends.
func (c *Cache) Run(ctx context.Context) { c.mirror.Run(ctx) }

// Synced is when the cache was last known current.
func (c *Cache) Synced() time.Time { t, _ := c.mirror.Status(); return t }

// Get returns a tenant from memory, or from the store on a miss.
func (c *Cache) Get(ctx context.Context, name string) (Tenant, error) {
	c.mu.RLock()
	t, ok := c.tenants[name]
	c.mu.RUnlock()
	if ok {
		return t, nil
	}
	return c.store.Get(ctx, name)
}

// Quota returns a tenant's quota (deployer.QuotaSource).
func (c *Cache) Quota(ctx context.Context, name string) (Quota, error) {
	t, err := c.Get(ctx, name)
	return t.Quota, err
}
