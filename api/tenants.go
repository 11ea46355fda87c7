package api

import (
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/authz"
	"github.com/discovery-platform/discovery/tenants"
)

// listTenants shows an admin every tenant, anyone else the tenants they have
// a role in.
func (s *Server) listTenants(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	ts, err := s.cfg.Tenants.List(ctx)
	if err != nil {
		return err
	}
	if !s.isAdmin(c) {
		mine := ts[:0]
		for _, t := range ts {
			if s.allowed(c, authz.Request{Tenant: t.Name, Object: "tenant", Action: authz.Read}) {
				mine = append(mine, t)
			}
		}
		ts = mine
	}
	return c.JSON(fiber.Map{"tenants": ts})
}

type tenantRequest struct {
	Name string `json:"name"`
	// Quota sets some fields of the new tenant's quota; the others take the
	// default.
	Quota *tenants.QuotaPatch `json:"quota,omitempty"`
}

func (s *Server) createTenant(c *fiber.Ctx) error {
	var req tenantRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	var q *tenants.Quota
	if req.Quota != nil {
		full := req.Quota.Apply(tenants.DefaultQuota)
		q = &full
	}
	t, err := s.cfg.Tenants.Create(ctx, req.Name, q)
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

// tenantPatch is PATCH /tenants/{tenant}: a platform admin changes a
// tenant's quota (absent fields keep their value) or trust.
type tenantPatch struct {
	Quota         *tenants.QuotaPatch `json:"quota"`
	AllowCommands *bool               `json:"allow_commands"`
}

func (s *Server) updateTenant(c *fiber.Ctx) error {
	var req tenantPatch
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.Quota == nil && req.AllowCommands == nil {
		return fmt.Errorf("%w: nothing to change: send {\"quota\":{...}} or {\"allow_commands\":true|false}", errBadRequest)
	}
	return s.changeTenant(c, req)
}

// changeTenant applies a patch by read-modify-write, retried on conflict.
func (s *Server) changeTenant(c *fiber.Ctx, req tenantPatch) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	for i := 0; ; i++ {
		t, err := s.cfg.Tenants.Get(ctx, c.Params("tenant"))
		if err != nil {
			return err
		}
		if req.Quota != nil {
			t.Quota = req.Quota.Apply(t.Quota)
			if err := t.Quota.Validate(); err != nil {
				return err
			}
		}
		if req.AllowCommands != nil {
			t.AllowCommands = *req.AllowCommands
		}
		t, err = s.cfg.Tenants.Update(ctx, t)
		if errors.Is(err, tenants.ErrConflict) && i < 5 {
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
	Usage apps.Usage `json:"usage"`
}

func (s *Server) getQuota(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	t, err := s.cfg.Tenants.Get(ctx, c.Params("tenant"))
	if err != nil {
		return err
	}
	v := quotaView{Quota: t.Quota}
	if v.Usage, err = s.cfg.Apps.Store.Usage(ctx, t.Name); err != nil {
		return err
	}
	return c.JSON(v)
}

// putQuota sets a tenant's quota; fields left out keep their value.
func (s *Server) putQuota(c *fiber.Ctx) error {
	var q tenants.QuotaPatch
	if err := decode(c, &q); err != nil {
		return err
	}
	return s.changeTenant(c, tenantPatch{Quota: &q})
}

func (s *Server) listMembers(c *fiber.Ctx) error {
	if err := s.needAuthz(); err != nil {
		return err
	}
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
	if err := s.needAuthz(); err != nil {
		return err
	}
	var req struct {
		Role string `json:"role"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := s.tenantExists(c); err != nil {
		return err
	}
	if err := s.cfg.Authz.GrantAs(principal(c), c.Params("subject"), req.Role, c.Params("tenant")); err != nil {
		return err
	}
	return c.JSON(authz.Member{Subject: c.Params("subject"), Role: req.Role})
}

func (s *Server) deleteMember(c *fiber.Ctx) error {
	if err := s.needAuthz(); err != nil {
		return err
	}
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
	TTL     apps.Duration `json:"ttl,omitempty"`
	// Tenant binds the token to one tenant: required unless a platform admin
	// mints an unscoped token.
	Tenant string `json:"tenant,omitempty"`
}

// issueToken mints a token; the Authorizer decides who may mint which
// (IssueAs): an admin for anyone, an owner only tokens bound to its tenant
// for its members, never above its own role.
func (s *Server) issueToken(c *fiber.Ctx) error {
	var req tokenRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := s.needAuthz(); err != nil {
		return err
	}
	if req.TTL == 0 {
		req.TTL = apps.Duration(24 * time.Hour)
	}
	if req.Tenant != "" {
		if _, err := s.cfg.Tenants.Get(c.UserContext(), req.Tenant); err != nil {
			return err
		}
	}
	token, claims, err := s.cfg.Authz.IssueAs(principal(c), req.Subject, req.Tenant, req.TTL.D())
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"token": token, "id": claims.ID, "subject": claims.Subject,
		"tenant": claims.Tenant, "expires_at": claims.ExpiresAt.Time.UTC()})
}

func (s *Server) revokeToken(c *fiber.Ctx) error {
	if err := s.needAuthz(); err != nil {
		return err
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	if err := s.cfg.Authz.RevokeToken(ctx, c.Params("id"), time.Time{}); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// needAuthz refuses the routes that manage roles and tokens on an API
// running without authentication (tests of the domain).
func (s *Server) needAuthz() error {
	if s.cfg.Authz == nil {
		return fiber.NewError(fiber.StatusNotImplemented, "authentication is off")
	}
	return nil
}
