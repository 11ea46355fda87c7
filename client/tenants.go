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

// SetQuota replaces a tenant's quota (admin).
func (c *Client) SetQuota(ctx context.Context, tenant string, q Quota) (Tenant, error) {
	var out Tenant
	err := c.do(ctx, http.MethodPut, apiPath("tenants", tenant, "quota"), nil, q, &out)
	return out, err
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

// IssueToken issues a bearer token (admin: any subject; owner: members of
// req.Tenant).
func (c *Client) IssueToken(ctx context.Context, req TokenRequest) (Token, error) {
	var out Token
	err := c.do(ctx, http.MethodPost, apiPath("tokens"), nil, req, &out)
	return out, err
}

// RevokeToken revokes a token by its id (admin).
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, apiPath("tokens", id), nil, nil, nil)
}

// WhoAmI says who the token belongs to and, when tenant is not empty, its
// role and permissions there.
func (c *Client) WhoAmI(ctx context.Context, tenant string) (Identity, error) {
	q := url.Values{}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	var out Identity
	err := c.do(ctx, http.MethodGet, apiPath("whoami"), q, nil, &out)
	return out, err
}
