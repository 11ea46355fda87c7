package api

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/endpoint"
)

// EndpointGetter answers get-endpoint (endpoint.Allocator).
type EndpointGetter interface {
	Get(ctx context.Context, client, tenant, app string) (endpoint.Endpoint, error)
}

// HoldStore keeps app-held leases (endpoint.Holds).
type HoldStore interface {
	Create(ctx context.Context, h endpoint.Hold) (endpoint.Hold, error)
	KeepAlive(ctx context.Context, id string) (endpoint.Hold, error)
	Release(ctx context.Context, id string) error
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
	// A cold start may take a while: bound it by the request, not the
	// short management timeout.
	ep, err := s.cfg.Endpoints.Get(c.UserContext(), c.IP(), tenant, app)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(ep)
}

type holdRequest struct {
	TTL     apps.Duration `json:"ttl"`
	Replica string        `json:"replica,omitempty"`
}

func (s *Server) createHold(c *fiber.Ctx) error {
	var req holdRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	t, a, r := c.Params("tenant"), c.Params("app"), c.Params("rev")
	snap, err := s.cfg.Apps.Load(ctx, t, a)
	if err != nil {
		return err
	}
	rev, ok := snap.Revision(r)
	if !ok {
		return fmt.Errorf("revision %s: %w", r, apps.ErrNotFound)
	}
	if !rev.State.Serving() {
		return fmt.Errorf("%w: revision %s is %s; only an active or draining revision can be held", apps.ErrIllegalState, r, rev.State)
	}
	if req.Replica != "" {
		found := false
		for _, rep := range snap.Replicas {
			found = found || (rep.Revision == r && rep.ID == req.Replica)
		}
		if !found {
			return fmt.Errorf("replica %s of revision %s: %w", req.Replica, r, apps.ErrNotFound)
		}
	}
	if req.TTL == 0 {
		req.TTL = apps.Duration(30 * time.Second)
	}
	h, err := s.cfg.Holds.Create(ctx, endpoint.Hold{Tenant: t, App: a, Revision: r, Replica: req.Replica, TTL: req.TTL})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(h)
}

func (s *Server) keepHold(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	h, err := s.cfg.Holds.KeepAlive(ctx, c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(h)
}

func (s *Server) releaseHold(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	if err := s.cfg.Holds.Release(ctx, c.Params("id")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
