package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/authz"
)

const principalKey = "principal"

// guard is the middleware of every route: it authenticates the caller as its
// Access asks, then lets authz.Authorizer.Decide allow or refuse, then
// bounds the caller's tenant's writes. No handler decides access itself;
// handlers whose answer depends on the body (a command in a deploy, the role
// a member is given, the subject of a token) ask the Authorizer with the
// caller's principal.
func (s *Server) guard(a Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if a.Kind == Public {
			return c.Next()
		}
		p, err := s.authenticate(c, a)
		if err != nil {
			return err
		}
		c.Locals(principalKey, p)
		c.SetUserContext(apps.WithActor(authz.WithPrincipal(c.UserContext(), p), actor(p)))
		tenant := c.Params("tenant")
		if a.BodyTenant {
			tenant = bodyTenant(c.Body())
		}
		if a.Kind == Checked && s.cfg.Authz != nil {
			req := authz.Request{Tenant: tenant, Object: a.Object, Action: a.Action, App: c.Params("app"), Revision: c.Params("rev")}
			if err := s.cfg.Authz.Decide(p, req); err != nil {
				return err
			}
		}
		if err := s.writable(c); err != nil {
			return err
		}
		if err := s.tenantWrite(c, a, tenant); err != nil {
			return err
		}
		return c.Next()
	}
}

// bodyTenant reads the "tenant" field of a JSON body ("" if none or not JSON:
// the call then acts on the platform, and the handler refuses the body).
func bodyTenant(body []byte) string {
	var v struct {
		Tenant string `json:"tenant"`
	}
	_ = json.Unmarshal(body, &v)
	return v.Tenant
}

// authenticate returns the caller's principal: a verified bearer token, or on
// routes that accept it a replica's lease capability. Without an Authorizer
// (unit tests of the domain) everyone is the bootstrap admin.
func (s *Server) authenticate(c *fiber.Ctx, a Access) (authz.Principal, error) {
	if s.cfg.Authz == nil {
		return authz.Principal{Subject: authz.BootstrapSubject}, nil
	}
	tokens := s.cfg.Authz.Tokens
	if a.Capability {
		if cap := c.Get("X-Discovery-Lease-Token"); cap != "" {
			ref := authz.RevisionRef{Tenant: c.Params("tenant"), App: c.Params("app"), Revision: c.Params("rev")}
			if !tokens.CheckLeaseToken(ref.Tenant, ref.App, ref.Revision, cap) {
				return authz.Principal{}, fmt.Errorf("%w: the lease capability is not the one of revision %s/%s/%s", authz.ErrUnauthenticated, ref.Tenant, ref.App, ref.Revision)
			}
			return authz.Principal{Revision: &ref}, nil
		}
	}
	token, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	if !ok || strings.TrimSpace(token) == "" {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="discovery"`)
		return authz.Principal{}, fmt.Errorf("%w: a bearer token is required (Authorization: Bearer <token>)", authz.ErrUnauthenticated)
	}
	claims, err := tokens.Verify(strings.TrimSpace(token))
	if err != nil {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="discovery", error="invalid_token"`)
		return authz.Principal{}, err
	}
	return claims.Principal(), nil
}

// writable refuses a write at once while etcd is unreachable: nothing could be
// stored, and waiting for the request timeout helps nobody.
func (s *Server) writable(c *fiber.Ctx) error {
	if s.cfg.Health != nil && isWrite(c) {
		if down, since := s.cfg.Health.Down(); down {
			return fmt.Errorf("%w: etcd has been unreachable for %s; nothing was changed", errUnavailable, time.Since(since).Round(time.Second))
		}
	}
	return nil
}

func isWrite(c *fiber.Ctx) bool {
	return c.Method() != fiber.MethodGet && c.Method() != fiber.MethodHead
}

// principal is the caller of a guarded route.
func principal(c *fiber.Ctx) authz.Principal {
	p, _ := c.Locals(principalKey).(authz.Principal)
	return p
}

// isAdmin reports whether the caller has a platform admin's rights.
func (s *Server) isAdmin(c *fiber.Ctx) bool {
	return s.cfg.Authz == nil || s.cfg.Authz.IsAdmin(principal(c))
}

// allowed asks the one decision point about the caller (for views that
// filter what they show).
func (s *Server) allowed(c *fiber.Ctx, r authz.Request) bool {
	return s.cfg.Authz == nil || s.cfg.Authz.Decide(principal(c), r) == nil
}

// actor is who the events a caller's writes cause name: the token's subject,
// or for a replica's lease capability its revision.
func actor(p authz.Principal) string {
	if p.Subject == "" && p.Revision != nil {
		return "replica of revision " + p.Revision.Revision
	}
	return p.Subject
}
