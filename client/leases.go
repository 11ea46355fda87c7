package client

import (
	"context"
	"net/http"
)

// App-held leases keep a revision (or one of its replicas) open while
// nobody is connected: an app that simulates alone takes one and keeps it
// alive. A replica takes them with its own capability
// ($DISCOVERY_LEASE_TOKEN, over plain HTTP: see the SDKs); these methods are
// for the tenant's members.

// TakeLease takes an app-held lease on an active or draining revision
// (owner, deployer). The answer's ID is the holder's handle for KeepLease;
// only this answer carries it.
func (c *Client) TakeLease(ctx context.Context, tenant, app, rev string, spec LeaseSpec) (Lease, error) {
	var out Lease
	err := c.do(ctx, http.MethodPost, apiPath("tenants", tenant, "apps", app, "revisions", rev, "leases"), nil, spec, &out)
	return out, err
}

// KeepLease renews a lease by its holder's handle (Lease.ID from
// TakeLease) for another TTL.
func (c *Client) KeepLease(ctx context.Context, id string) (Lease, error) {
	var out Lease
	err := c.do(ctx, http.MethodPut, apiPath("leases", id), nil, nil, &out)
	return out, err
}

// Leases lists an app's leases, every revision's (viewer and up), without
// their holders' handles.
func (c *Client) Leases(ctx context.Context, tenant, app string) ([]Lease, error) {
	var out struct {
		Leases []Lease `json:"leases"`
	}
	err := c.do(ctx, http.MethodGet, apiPath("tenants", tenant, "apps", app, "leases"), nil, nil, &out)
	return out.Leases, err
}

// ReleaseLease ends one of an app's leases by its number (Lease.Lease) at
// once (owner, deployer): its revision may then drain and retire.
func (c *Client) ReleaseLease(ctx context.Context, tenant, app, lease string) error {
	return c.do(ctx, http.MethodDelete, apiPath("tenants", tenant, "apps", app, "leases", lease), nil, nil, nil)
}
