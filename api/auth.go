package api

import (
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/discovery-platform/discovery/authz"
)

// Auth is what the API needs to authenticate and authorise (authz.Authorizer).
type Auth interface {
	Allowed(subject, tenant, object, action string) bool
	IsAdmin(subject string) bool
}

const subjectKey = "subject"

// authenticate verifies the bearer token and remembers its subject. Every
// management route goes through it, then through authorize.
func (s *Server) authenticate(c *fiber.Ctx) error {
	if s.cfg.Tokens == nil {
		c.Locals(subjectKey, authz.BootstrapSubject)
		return c.Next()
	}
	h := c.Get(fiber.HeaderAuthorization)
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || strings.TrimSpace(token) == "" {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="discovery"`)
		return fiber.NewError(fiber.StatusUnauthorized, "a bearer token is required (Authorization: Bearer <token>)")
	}
	claims, err := s.cfg.Tokens.Verify(strings.TrimSpace(token))
	if err != nil {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="discovery", error="invalid_token"`)
		return fiber.NewError(fiber.StatusUnauthorized, "invalid token: "+err.Error())
	}
	c.Locals(subjectKey, claims.Subject)
	return s.writable(c)
}

// writable refuses a write at once while etcd is unreachable: nothing could be
// stored, and waiting for the request timeout helps nobody.
func (s *Server) writable(c *fiber.Ctx) error {
	if s.cfg.Health != nil && c.Method() != fiber.MethodGet && c.Method() != fiber.MethodHead {
		if down, since := s.cfg.Health.Down(); down {
			return fmt.Errorf("%w: etcd has been unreachable for %s; nothing was changed", errUnavailable, time.Since(since).Round(time.Second))
		}
	}
	return c.Next()
}

func subject(c *fiber.Ctx) string {
	s, _ := c.Locals(subjectKey).(string)
	return s
}

// authorize checks (subject, tenant, object, action); the tenant is the
// route's {tenant}, or the platform for platform-wide routes.
func (s *Server) authorize(object, action string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if s.cfg.Auth == nil {
			return c.Next()
		}
		tenant := c.Params("tenant")
		if tenant == "" {
			tenant = authz.Platform
		}
		if !s.cfg.Auth.Allowed(subject(c), tenant, object, action) {
			return fiber.NewError(fiber.StatusForbidden, "subject "+subject(c)+" may not "+action+" "+object+" in "+tenantLabel(tenant))
		}
		return c.Next()
	}
}

func tenantLabel(t string) string {
	if t == authz.Platform {
		return "the platform"
	}
	return "tenant " + t
}
