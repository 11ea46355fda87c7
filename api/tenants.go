package api

import (
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/authz"
	"github.com/discovery-platform/discovery/tenants"
)

// platformAdmin lets only platform admins through.
func (s *Server) platformAdmin(c *fiber.Ctx) error {
	if s.cfg.Auth != nil && !s.cfg.Auth.IsAdmin(subject(c)) {
		return fiber.NewError(fiber.StatusForbidden, "only a platform admin may do this")
	}
	return c.Next()
}

// leaseAuth admits app-held lease creation with the revision's lease
// capability ($DISCOVERY_LEASE_TOKEN in the replica), or a user token with
// leases:write in the tenant.
func (s *Server) leaseAuth(c *fiber.Ctx) error {
	if s.cfg.Tokens == nil {
		return c.Next()
	}
	if s.cfg.Tokens.CheckLeaseToken(c.Params("tenant"), c.Params("app"), c.Params("rev"), c.Get("X-Discovery-Lease-Token")) {
		return c.Next()
	}
	return s.authenticate(c)
}

// listTenants shows an admin every tenant, anyone else the tenants they have
// a role in.
func (s *Server) listTenants(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	ts, err := s.cfg.Tenants.List(ctx)
	if err != nil {
		return err
	}
	if s.cfg.Auth != nil && !s.cfg.Auth.IsAdmin(subject(c)) {
		mine := ts[:0]
		for _, t := range ts {
			if s.cfg.Auth.Allowed(subject(c), t.Name, "tenant", "read") {
				mine = append(mine, t)
			}
		}
		ts = mine
	}
	return c.JSON(fiber.Map{"tenants": ts})
}

type tenantRequest struct {
	Name  string         `json:"name"`
	Quota *tenants.Quota `json:"quota,omitempty"`
}

func (s *Server) createTenant(c *fiber.Ctx) error {
	var req tenantRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	t, err := s.cfg.Tenants.Create(ctx, req.Name, req.Quota)
	if err != nil {
		return err
	}
	c.Location("/api/v1/tenants/" + t.Name)
	return c.Status(fiber.StatusCreated).JSON(t)
}

func (s *Server) getTenant(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	t, err := s.cfg.Tenants.Get(ctx, c.Params("tenant"))
	if err != nil {
		return err
	}
	return c.JSON(t)
}

func (s *Server) updateTenant(c *fiber.Ctx) error {
	var req struct {
		Quota *tenants.Quota `json:"quota"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.Quota == nil {
		return fmt.Errorf("%w: nothing to change: send {\"quota\":{...}}", errBadRequest)
	}
	return s.setQuota(c, *req.Quota)
}

func (s *Server) setQuota(c *fiber.Ctx, q tenants.Quota) error {
	if err := q.Validate(); err != nil {
		return err
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	for i := 0; ; i++ {
		t, err := s.cfg.Tenants.Get(ctx, c.Params("tenant"))
		if err != nil {
			return err
		}
		t.Quota = q
		t, err = s.cfg.Tenants.Update(ctx, t)
		if err != nil && i < 5 && strings.Contains(err.Error(), "conflict") {
			continue
		}
		if err != nil {
			return err
		}
		return c.JSON(t)
	}
}

func (s *Server) deleteTenant(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	n, err := s.cfg.TenantOps.Delete(ctx, c.Params("tenant"))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"tenant": c.Params("tenant"), "deleting": true, "apps_retiring": n,
		"message": fmt.Sprintf("retiring %d apps first; the tenant is removed once they are gone", n)})
}

// quotaView is a tenant's quota with its current usage.
type quotaView struct {
	tenants.Quota
	Usage struct {
		Apps     int `json:"apps"`
		Replicas int `json:"replicas"`
	} `json:"usage"`
}

func (s *Server) getQuota(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	t, err := s.cfg.Tenants.Get(ctx, c.Params("tenant"))
	if err != nil {
		return err
	}
	v := quotaView{Quota: t.Quota}
	if v.Usage.Apps, err = s.cfg.Apps.Store.CountApps(ctx, t.Name); err != nil {
		return err
	}
	if v.Usage.Replicas, err = s.cfg.Apps.Store.CountReplicas(ctx, t.Name); err != nil {
		return err
	}
	return c.JSON(v)
}

func (s *Server) putQuota(c *fiber.Ctx) error {
	var q tenants.Quota
	if err := decode(c, &q); err != nil {
		return err
	}
	return s.setQuota(c, q)
}

func (s *Server) listMembers(c *fiber.Ctx) error {
	if err := s.tenantExists(c); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"members": s.cfg.Authz.Members(c.Params("tenant"))})
}

func (s *Server) tenantExists(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	_, err := s.cfg.Tenants.Get(ctx, c.Params("tenant"))
	return err
}

func (s *Server) putMember(c *fiber.Ctx) error {
	var req struct {
		Role string `json:"role"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := s.tenantExists(c); err != nil {
		return err
	}
	if err := s.cfg.Authz.Grant(c.Params("subject"), req.Role, c.Params("tenant")); err != nil {
		return err
	}
	return c.JSON(authz.Member{Subject: c.Params("subject"), Role: req.Role})
}

func (s *Server) deleteMember(c *fiber.Ctx) error {
	if err := s.tenantExists(c); err != nil {
		return err
	}
	removed, err := s.cfg.Authz.RevokeRoles(c.Params("subject"), c.Params("tenant"))
	if err != nil {
		return err
	}
	if !removed {
		return fmt.Errorf("member %s of tenant %s: %w", c.Params("subject"), c.Params("tenant"), apps.ErrNotFound)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

type tokenRequest struct {
	Subject string        `json:"subject"`
	TTL     apps.Duration `json:"ttl"`
	// Tenant lets an owner issue a token for a member of its tenant.
	Tenant string `json:"tenant,omitempty"`
}

// issueToken: an admin issues for any subject; an owner for members of its
// tenant. The token names the subject only: roles are looked up per request.
func (s *Server) issueToken(c *fiber.Ctx) error {
	var req tokenRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if s.cfg.Tokens == nil {
		return fiber.NewError(fiber.StatusNotImplemented, "authentication is off")
	}
	if req.TTL == 0 {
		req.TTL = apps.Duration(24 * time.Hour)
	}
	me := subject(c)
	if !s.cfg.Auth.IsAdmin(me) {
		if req.Tenant == "" || !s.cfg.Auth.Allowed(me, req.Tenant, "tokens", "write") {
			return fiber.NewError(fiber.StatusForbidden, "only an admin, or an owner of the tenant named in \"tenant\", may issue tokens")
		}
		if s.cfg.Authz.RoleIn(req.Subject, req.Tenant) == "" {
			return fiber.NewError(fiber.StatusForbidden, fmt.Sprintf("%s is not a member of tenant %s", req.Subject, req.Tenant))
		}
	}
	token, claims, err := s.cfg.Tokens.Issue(req.Subject, req.TTL.D())
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"token": token, "id": claims.ID, "subject": claims.Subject,
		"expires_at": claims.ExpiresAt.Time.UTC()})
}

func (s *Server) revokeToken(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	if err := s.cfg.Authz.RevokeToken(ctx, c.Params("id"), time.Time{}); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
