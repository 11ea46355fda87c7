package endpoint

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/apps"
)

// Limits of an app-held lease's time to live.
const (
	MinHoldTTL = time.Second
	MaxHoldTTL = time.Hour
)

// Hold is an app-held lease: while it lives, its revision (and replica, if
// named) counts as having a session, so it is neither retired nor scaled
// down. Apps that simulate with nobody connected keep one alive over plain
// HTTP.
type Hold struct {
	// ID is what the app passes back to keep the hold alive or release it.
	ID       string `json:"id"`
	Tenant   string `json:"tenant"`
	App      string `json:"app"`
	Revision string `json:"revision"`
	Replica  string `json:"replica,omitempty"`
	// TTL is the time to live, renewed by each keep-alive.
	TTL apps.Duration `json:"ttl"`
}

// Holds keeps app-held leases as etcd leases: a hold that is not kept alive
// expires with its lease, on its own.
type Holds struct {
	cli    *clientv3.Client
	prefix string
}

// NewHolds returns the hold store under prefix.
func NewHolds(cli *clientv3.Client, prefix string) *Holds {
	return &Holds{cli: cli, prefix: strings.TrimSuffix(prefix, "/")}
}

type holdIndex struct {
	Key    string `json:"key"`
	Secret string `json:"secret"`
	Hold   Hold   `json:"hold"`
}

func (h *Holds) indexKey(lease clientv3.LeaseID) string {
	return path.Join(h.prefix, "holdidx", strconv.FormatInt(int64(lease), 16))
}

// Create takes a hold on a revision that still serves (checked by the caller).
func (h *Holds) Create(ctx context.Context, hold Hold) (Hold, error) {
	if hold.TTL.D() < MinHoldTTL || hold.TTL.D() > MaxHoldTTL {
		return Hold{}, fmt.Errorf("%w: ttl %s out of range %s-%s", apps.ErrInvalid, hold.TTL, MinHoldTTL, MaxHoldTTL)
	}
	lease, err := h.cli.Grant(ctx, int64((hold.TTL.D()+time.Second-1)/time.Second))
	if err != nil {
		return Hold{}, fmt.Errorf("grant hold: %w", err)
	}
	secret := make([]byte, 12)
	_, _ = rand.Read(secret)
	hold.ID = strconv.FormatInt(int64(lease.ID), 16) + "-" + hex.EncodeToString(secret)
	key := path.Join(h.prefix, "holds", hold.Tenant, hold.App, hold.Revision, strconv.FormatInt(int64(lease.ID), 16))
	val, _ := json.Marshal(hold)
	idx, _ := json.Marshal(holdIndex{Key: key, Secret: hex.EncodeToString(secret), Hold: hold})
	_, err = h.cli.Txn(ctx).Then(
		clientv3.OpPut(key, string(val), clientv3.WithLease(lease.ID)),
		clientv3.OpPut(h.indexKey(lease.ID), string(idx), clientv3.WithLease(lease.ID)),
	).Commit()
	if err != nil {
		_, _ = h.cli.Revoke(context.WithoutCancel(ctx), lease.ID)
		return Hold{}, fmt.Errorf("store hold: %w", err)
	}
	return hold, nil
}

// find checks an id and returns its lease and hold.
func (h *Holds) find(ctx context.Context, id string) (clientv3.LeaseID, Hold, error) {
	leaseHex, secret, ok := strings.Cut(id, "-")
	n, err := strconv.ParseInt(leaseHex, 16, 64)
	if !ok || err != nil {
		return 0, Hold{}, fmt.Errorf("hold %q: %w", id, apps.ErrNotFound)
	}
	lease := clientv3.LeaseID(n)
	resp, err := h.cli.Get(ctx, h.indexKey(lease))
	if err != nil {
		return 0, Hold{}, err
	}
	var idx holdIndex
	if len(resp.Kvs) == 0 || json.Unmarshal(resp.Kvs[0].Value, &idx) != nil || idx.Secret != secret {
		return 0, Hold{}, fmt.Errorf("hold %q (expired or never existed): %w", id, apps.ErrNotFound)
	}
	return lease, idx.Hold, nil
}

// KeepAlive renews a hold for another TTL.
func (h *Holds) KeepAlive(ctx context.Context, id string) (Hold, error) {
	lease, hold, err := h.find(ctx, id)
	if err != nil {
		return Hold{}, err
	}
	if _, err := h.cli.KeepAliveOnce(ctx, lease); err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return Hold{}, fmt.Errorf("hold %q expired: %w", id, apps.ErrNotFound)
		}
		return Hold{}, err
	}
	return hold, nil
}

// Release ends a hold now.
func (h *Holds) Release(ctx context.Context, id string) error {
	lease, _, err := h.find(ctx, id)
	if err != nil {
		return err
	}
	if _, err := h.cli.Revoke(ctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return err
	}
	return nil
}
