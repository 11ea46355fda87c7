// Package leases is dsh's view of the app-held leases of the current
// tenant's apps: while a lease lives, its revision counts as having a
// session, so it is neither retired nor scaled down. List them, take one,
// keep it alive, release one by its number.
package leases

import (
	"time"

	"github.com/discovery-platform/discovery/client"
	"github.com/discovery-platform/discovery/shell/lib/dsh"
)

// List lists app's leases, every revision's, with their holder and time left.
func List(app string) ([]client.Lease, error) {
	c, err := dsh.Connected()
	if err != nil {
		return nil, err
	}
	return c.Leases(dsh.Context(), dsh.Tenant(), app)
}

// Release ends one of app's leases by its number (the LEASE column of
// List) at once (owner, deployer).
func Release(app, lease string) error {
	c, err := dsh.Connected()
	if err != nil {
		return err
	}
	return c.ReleaseLease(dsh.Context(), dsh.Tenant(), app, lease)
}

// Take takes a lease on revision rev of app for ttl (0: the platform's
// default, 30s). It lasts ttl unless renewed with Keep(lease.ID).
func Take(app, rev string, ttl time.Duration) (client.Lease, error) {
	return TakeSpec(app, rev, client.LeaseSpec{TTL: client.Duration(ttl)})
}

// TakeSpec takes a lease with a full spec (to hold one replica).
func TakeSpec(app, rev string, spec client.LeaseSpec) (client.Lease, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.Lease{}, err
	}
	return c.TakeLease(dsh.Context(), dsh.Tenant(), app, rev, spec)
}

// Keep renews a lease taken with Take for another TTL, by its ID.
func Keep(id string) (client.Lease, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.Lease{}, err
	}
	return c.KeepLease(dsh.Context(), id)
}
