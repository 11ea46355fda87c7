// Package tenants is dsh's tenant administration: tenants, their quotas,
// trust (AllowCommands) and members, and switching the session to another
// tenant (Use).
package tenants

import (
	"github.com/discovery-platform/discovery/client"
	"github.com/discovery-platform/discovery/shell/lib/dsh"
)

// List lists the tenants you may see (an admin: all).
func List() ([]client.Tenant, error) {
	c, err := dsh.Connected()
	if err != nil {
		return nil, err
	}
	return c.ListTenants(dsh.Context())
}

// Get reads a tenant.
func Get(name string) (client.Tenant, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.Tenant{}, err
	}
	return c.GetTenant(dsh.Context(), name)
}

// Current is the session's tenant: where apps, deploy, events and logs work.
func Current() string { return dsh.Tenant() }

// Use switches the session to tenant name, once it is known to exist.
func Use(name string) (client.Tenant, error) {
	t, err := Get(name)
	if err != nil {
		return t, err
	}
	dsh.SetTenant(t.Name)
	return t, nil
}

// Create creates a tenant with the default quota (admin).
func Create(name string) (client.Tenant, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.Tenant{}, err
	}
	return c.CreateTenant(dsh.Context(), client.TenantSpec{Name: name})
}

// CreateWithQuota creates a tenant with quota q (admin); q sets every field
// (MaxLeasesPerRevision and MaxStoredBytes cannot be 0). To change a few of
// the defaults, Create, then PatchQuota.
func CreateWithQuota(name string, q client.Quota) (client.Tenant, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.Tenant{}, err
	}
	return c.CreateTenant(dsh.Context(), client.TenantSpec{Name: name, Quota: &q})
}

// Delete deletes a tenant (admin): its apps are retired first.
func Delete(name string) (client.TenantDeletion, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.TenantDeletion{}, err
	}
	return c.DeleteTenant(dsh.Context(), name)
}

// Quota reads a tenant's quota and usage.
func Quota(name string) (client.QuotaUsage, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.QuotaUsage{}, err
	}
	return c.Quota(dsh.Context(), name)
}

// SetQuota sets a tenant's quota (admin):
// tenants.SetQuota("acme", client.Quota{MaxApps: 5, MaxReplicas: 20, MaxRevisions: 10, MaxCPUMillis: 2000, MaxMemoryMB: 2048}).
// A zero MaxLeasesPerRevision or MaxStoredBytes keeps the tenant's value.
func SetQuota(name string, q client.Quota) (client.Tenant, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.Tenant{}, err
	}
	return c.SetQuota(dsh.Context(), name, q)
}

// PatchQuota changes only the quota fields p sets (admin):
// tenants.PatchQuota("acme", client.QuotaPatch{MaxStoredBytes: client.Int64(16 << 20)}).
func PatchQuota(name string, p client.QuotaPatch) (client.Tenant, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.Tenant{}, err
	}
	return c.PatchQuota(dsh.Context(), name, p)
}

// AllowCommands lets a tenant deploy raw commands on the process runtime,
// or stops it (admin). A command runs on the platform's own machine: allow
// it for trusted tenants only; the others deploy images from the catalog
// (images.List()).
func AllowCommands(name string, allow bool) (client.Tenant, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.Tenant{}, err
	}
	return c.SetTenantTrust(dsh.Context(), name, allow)
}

// Members lists a tenant's members and roles.
func Members(name string) ([]client.Member, error) {
	c, err := dsh.Connected()
	if err != nil {
		return nil, err
	}
	return c.Members(dsh.Context(), name)
}

// Grant gives subject a role in tenant: "owner", "deployer" or "viewer".
func Grant(tenant, subject, role string) (client.Member, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.Member{}, err
	}
	return c.SetMember(dsh.Context(), tenant, subject, role)
}

// Revoke takes subject's role in tenant away.
func Revoke(tenant, subject string) error {
	c, err := dsh.Connected()
	if err != nil {
		return err
	}
	return c.RemoveMember(dsh.Context(), tenant, subject)
}
