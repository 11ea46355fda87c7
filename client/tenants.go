package client

import (
	"context"
	"net/http"
	"net/url"
)

// ListTenants lists the tenants the caller may see (an admin: all).
func (c *Client) ListTenants(ctx context.Context) ([]Tenant, error) {
	var out struct {
		Tenants []Tenant `json:"tenants"`
	}
	err := c.do(ctx, http.MethodGet, apiPath("tenants"), nil, nil, &out)
	return out.Tenants, err
}

// GetTenant reads a tenant.
func (c *Client) GetTenant(ctx context.Context, name string) (Tenant, error) {
	var out Tenant
	err := c.do(ctx, http.MethodGet, apiPath("tenants", name), nil, nil, &out)
	return out, err
}

// CreateTenant creates a tenant (admin).
func (c *Client) CreateTenant(ctx context.Context, spec TenantSpec) (Tenant, error) {
	var out Tenant
	err := c.do(ctx, http.MethodPost, apiPath("tenants"), nil, spec, &out)
	return out, err
}

// DeleteTenant starts deleting a tenant (admin): its apps are retired first,
// then it and its role bindings are removed.
func (c *Client) DeleteTenant(ctx context.Context, name string) (TenantDeletion, error) {
	var out TenantDeletion
	err := c.do(ctx, http.MethodDelete, apiPath("tenants", name), nil, nil, &out)
	return out, err
}

// Quota reads a tenant's quota and usage.
func (c *Client) Quota(ctx context.Context, tenant string) (QuotaUsage, error) {
	var out QuotaUsage
	err := c.do(ctx, http.MethodGet, apiPath("tenants", tenant, "quota"), nil, nil, &out)
	return out, err
}

// SetQuota sets a tenant's quota to q (admin). A zero MaxLeasesPerRevision
// or MaxStoredBytes (neither may be 0) keeps the tenant's value; see
// Quota.Patch. To change only some fields, use PatchQuota.
func (c *Client) SetQuota(ctx context.Context, tenant string, q Quota) (Tenant, error) {
	return c.PatchQuota(ctx, tenant, q.Patch())
}

// PatchQuota changes the fields of a tenant's quota that p sets (admin);
// the others keep their value.
func (c *Client) PatchQuota(ctx context.Context, tenant string, p QuotaPatch) (Tenant, error) {
	var out Tenant
	err := c.do(ctx, http.MethodPut, apiPath("tenants", tenant, "quota"), nil, p, &out)
	return out, err
}

// PatchTenant changes a tenant (admin): some fields of its quota, and
// whether it may deploy raw commands.
func (c *Client) PatchTenant(ctx context.Context, tenant string, p TenantPatch) (Tenant, error) {
	var out Tenant
	err := c.do(ctx, http.MethodPatch, apiPath("tenants", tenant), nil, p, &out)
	return out, err
}

// SetTenantTrust lets a tenant deploy raw commands on the process runtime,
// or stops it (admin). A command runs on the platform's own machine: allow
// it for trusted tenants only; others deploy images from the catalog.
func (c *Client) SetTenantTrust(ctx context.Context, tenant string, allowCommands bool) (Tenant, error) {
	return c.PatchTenant(ctx, tenant, TenantPatch{AllowCommands: &allowCommands})
}

// Members lists a tenant's members and their roles (owner).
func (c *Client) Members(ctx context.Context, tenant string) ([]Member, error) {
	var out struct {
		Members []Member `json:"members"`
	}
	err := c.do(ctx, http.MethodGet, apiPath("tenants", tenant, "members"), nil, nil, &out)
	return out.Members, err
}

// SetMember grants subject a role in tenant (RoleOwner, RoleDeployer,
// RoleViewer); it takes effect at once, without a new token.
func (c *Client) SetMember(ctx context.Context, tenant, subject, role string) (Member, error) {
	var out Member
	body := struct {
		Role string `json:"role"`
	}{role}
	err := c.do(ctx, http.MethodPut, apiPath("tenants", tenant, "members", subject), nil, body, &out)
	return out, err
}

// RemoveMember takes a subject's role in tenant away.
func (c *Client) RemoveMember(ctx context.Context, tenant, subject string) error {
	return c.do(ctx, http.MethodDelete, apiPath("tenants", tenant, "members", subject), nil, nil, nil)
}

// IssueToken issues a bearer token: a platform admin for any subject,
// scoped to req.Tenant or unscoped; an owner only tokens scoped to its
// tenant (req.Tenant, required), for members whose role is not above its
// own. See TokenRequest.
func (c *Client) IssueToken(ctx context.Context, req TokenRequest) (Token, error) {
	var out Token
	err := c.do(ctx, http.MethodPost, apiPath("tokens"), nil, req, &out)
	return out, err
}

// RevokeToken revokes a token by its id (admin).
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, apiPath("tokens", id), nil, nil, nil)
}

// WhoAmI says who the token belongs to, the tenant it is bound to (Scope)
// and, when tenant is not empty, its role and permissions there.
func (c *Client) WhoAmI(ctx context.Context, tenant string) (Identity, error) {
	q := url.Values{}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	var out Identity
	err := c.do(ctx, http.MethodGet, apiPath("whoami"), q, nil, &out)
	return out, err
}
