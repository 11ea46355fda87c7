package api

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/endpoint"
	"github.com/discovery-platform/discovery/tenants"
)

// EndpointGetter answers get-endpoint (endpoint.Allocator).
type EndpointGetter interface {
	Get(ctx context.Context, client, tenant, app string) (endpoint.Endpoint, error)
	ForTicket(ctx context.Context, tenant, app, ticket string) (endpoint.Endpoint, error)
}

// getEndpoint is public: game clients call it with no token.
func (s *Server) getEndpoint(c *fiber.Ctx) error {
	return s.answerEndpoint(c, c.Params("tenant"), c.Params("app"))
}

// seedGetEndpoint is the original tool's form: GET /api/get-endpoint?app_name=X
// for the default tenant.
func (s *Server) seedGetEndpoint(c *fiber.Ctx) error {
	name := c.Query("app_name")
	if name == "" {
		return fmt.Errorf("%w: query app_name is required", errBadRequest)
	}
	return s.answerEndpoint(c, "default", name)
}

func (s *Server) answerEndpoint(c *fiber.Ctx, tenant, app string) error {
	if s.cfg.Endpoints == nil {
		return fiber.NewError(fiber.StatusNotImplemented, "this platform instance serves no get-endpoint")
	}
	if err := apps.ValidName("app", app); err != nil {
		return err
	}
	if s.cfg.Health != nil {
		if stale := s.cfg.Health.Stale(); stale > 0 {
			if stale > s.cfg.StaleWindow {
				return fmt.Errorf("%w: etcd has been unreachable for %s, longer than the %s this instance answers from memory", errUnavailable, stale.Round(time.Second), s.cfg.StaleWindow)
			}
			// Still useful: routes rarely change, and reconnects keep working.
			c.Set("X-Discovery-Stale", strconv.Itoa(int(stale.Seconds())))
		}
	}
	var ep endpoint.Endpoint
	var err error
	if ticket := c.Query("ticket"); ticket != "" {
		ctx, cancel := s.ctx(c)
		defer cancel()
		ep, err = s.cfg.Endpoints.ForTicket(ctx, tenant, app, ticket)
	} else {
		// A cold start may take a while: bound it by the request, not
		// the short management timeout.
		ep, err = s.cfg.Endpoints.Get(c.UserContext(), c.IP(), tenant, app)
	}
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	b, err := ep.JSON()
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(b)
}

// Handoffer moves players between revisions (endpoint.Handoffs).
type Handoffer interface {
	Handoff(ctx context.Context, req endpoint.HandoffRequest) (endpoint.Moved, error)
}

// handoff moves one player from a draining revision: the body is its state.
func (s *Server) handoff(c *fiber.Ctx) error {
	if s.cfg.Handoffs == nil {
		return fiber.NewError(fiber.StatusNotImplemented, "this platform instance makes no handoffs")
	}
	from := c.Get("X-Discovery-Replica")
	if from != "" && !tenants.IsLabel(from) {
		return fmt.Errorf("%w: X-Discovery-Replica %q is not a replica id", errBadRequest, from)
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 15*time.Second)
	defer cancel()
	m, err := s.cfg.Handoffs.Handoff(ctx, endpoint.HandoffRequest{Tenant: c.Params("tenant"), App: c.Params("app"),
		Revision: c.Params("rev"), FromReplica: from, State: c.Body()})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(m)
}

type holdRequest struct {
	TTL     apps.Duration `json:"ttl,omitempty"`
	Replica string        `json:"replica,omitempty"`
}

// createHold takes an app-held lease on a revision, for a member with
// leases:write in its tenant or for the revision's own capability.
func (s *Server) createHold(c *fiber.Ctx) error {
	var req holdRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	p := principal(c)
	holder := p.Subject
	if p.Revision != nil {
		holder = "revision capability"
	}
	l, err := s.cfg.Apps.TakeLease(ctx, apps.LeaseRequest{Tenant: c.Params("tenant"), App: c.Params("app"), Revision: c.Params("rev"),
		Replica: req.Replica, TTL: req.TTL, Holder: holder})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(l)
}

func (s *Server) keepHold(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	l, err := s.cfg.Apps.Store.KeepLease(ctx, c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(l)
}

func (s *Server) releaseHold(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	if err := s.cfg.Apps.Store.ReleaseLease(ctx, c.Params("id")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// listHolds shows an app's leases to its tenant's members.
func (s *Server) listHolds(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	ls, err := s.cfg.Apps.Leases(ctx, c.Params("tenant"), c.Params("app"))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"leases": ls})
}

// releaseTenantHold ends one of an app's leases by its number.
func (s *Server) releaseTenantHold(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	if err := s.cfg.Apps.ReleaseLease(ctx, c.Params("tenant"), c.Params("app"), c.Params("lease")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
