// Package api is Discovery's REST API under /api/v1 (fiber): thin handlers that
// decode a request, call the domain (apps, tenants) and encode the answer, with
// one error table (errors.go) and an OpenAPI document (openapi.json).
package api

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/authz"
	"github.com/discovery-platform/discovery/deployer"
	"github.com/discovery-platform/discovery/tenants"
)

//go:embed openapi.json
var openapiJSON []byte

// Logs reads a replica's output (the runtime implements it).
type Logs interface {
	Logs(ctx context.Context, id deployer.ReplicaID, tail int) ([]byte, error)
}

// Config is what the API needs.
type Config struct {
	Apps    *apps.Service
	Tenants *tenants.Store
	Logs    Logs
	// Endpoints answers the public get-endpoint; Holds keeps app-held leases.
	Endpoints EndpointGetter
	Holds     HoldStore
	// Tokens verifies bearer tokens and Auth decides; both nil means no
	// authentication (unit tests of the domain only).
	Tokens *authz.Tokens
	Auth   Auth
	// Authz manages roles and revocations (members, tokens routes).
	Authz *authz.Authorizer
	// TenantOps deletes tenants (apps first).
	TenantOps *apps.TenantService
	// Limiter rate-limits the public get-endpoint per client address.
	Limiter *Limiter
	// Health tells whether etcd answers; nil means always.
	Health Health
	// HeaderTimeout bounds how long a client may take to send a request
	// (slowloris guard; default 10 s).
	HeaderTimeout time.Duration
	// Version is the build's version, served at /version.
	Version string
	// Sessions reads live session counts (GET .../apps/{app}/sessions); nil
	// answers empty counts.
	Sessions SessionCounts
	// Bridge serves the web dashboard under /bridge (nil: not served).
	Bridge fiber.Handler
	// StaleWindow is how long get-endpoint keeps answering from memory while
	// etcd is unreachable (default 5 minutes).
	StaleWindow time.Duration
	// Ready reports whether the platform can serve (etcd reachable).
	Ready func(ctx context.Context) error
	// Gatherer serves /metrics; nil means the default registry.
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
	// Timeout bounds each request's work against etcd.
	Timeout time.Duration
}

// Server holds the API's dependencies; its methods are the handlers.
type Server struct {
	cfg Config
	app *fiber.App
}

// New builds the fiber app with every route.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.HeaderTimeout <= 0 {
		cfg.HeaderTimeout = 10 * time.Second
	}
	if cfg.StaleWindow <= 0 {
		cfg.StaleWindow = 5 * time.Minute
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.DefaultGatherer
	}
	s := &Server{cfg: cfg}
	s.app = fiber.New(fiber.Config{
		ErrorHandler:          errorHandler(cfg.Logger),
		DisableStartupMessage: true,
		BodyLimit:             1 << 20,
		ReadTimeout:           cfg.HeaderTimeout,
		IdleTimeout:           120 * time.Second,
		AppName:               "discovery",
	})
	s.app.Use(recover.New())
	s.routes()
	return s
}

// App returns the fiber app (to listen, or to test with app.Test).
func (s *Server) App() *fiber.App { return s.app }

func (s *Server) routes() {
	a := s.app
	a.Get("/healthz", func(c *fiber.Ctx) error { return c.SendString("ok") })
	a.Get("/readyz", s.readyz)
	a.Get("/version", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"version": s.cfg.Version, "pid": os.Getpid()})
	})
	a.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{})))

	v1 := a.Group("/api/v1")
	v1.Get("/openapi.json", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(openapiJSON)
	})
	// Public: game clients (get-endpoint, rate-limited) and apps (leases by id).
	a.Get("/api/get-endpoint", s.limit, s.seedGetEndpoint)
	v1.Get("/tenants/:tenant/apps/:app/endpoint", s.limit, s.getEndpoint)
	v1.Put("/leases/:id", s.keepHold)
	v1.Delete("/leases/:id", s.releaseHold)
	v1.Post("/tenants/:tenant/apps/:app/revisions/:rev/leases", s.leaseAuth, s.createHold)

	// Everything else: authenticate, then authorise.
	m := v1.Group("", s.authenticate)
	m.Get("/tenants", s.listTenants)
	m.Post("/tenants", s.authorize("tenants", "write"), s.createTenant)
	m.Post("/tokens", s.issueToken)
	m.Delete("/tokens/:id", s.authorize("tokens", "write"), s.revokeToken)
	m.Get("/tenants/:tenant", s.authorize("tenant", "read"), s.getTenant)
	m.Patch("/tenants/:tenant", s.platformAdmin, s.updateTenant)
	m.Delete("/tenants/:tenant", s.platformAdmin, s.deleteTenant)
	m.Get("/tenants/:tenant/quota", s.authorize("quota", "read"), s.getQuota)
	m.Put("/tenants/:tenant/quota", s.platformAdmin, s.putQuota)
	m.Get("/tenants/:tenant/members", s.authorize("members", "read"), s.listMembers)
	m.Put("/tenants/:tenant/members/:subject", s.authorize("members", "write"), s.putMember)
	m.Delete("/tenants/:tenant/members/:subject", s.authorize("members", "write"), s.deleteMember)
	m.Get("/tenants/:tenant/apps", s.authorize("apps", "read"), s.listApps)
	m.Post("/tenants/:tenant/apps", s.authorize("apps", "write"), s.createApp)
	m.Get("/tenants/:tenant/apps/:app", s.authorize("apps", "read"), s.getApp)
	m.Patch("/tenants/:tenant/apps/:app", s.authorize("apps", "write"), s.updateApp)
	m.Delete("/tenants/:tenant/apps/:app", s.authorize("apps", "write"), s.deleteApp)
	m.Get("/tenants/:tenant/apps/:app/events", s.authorize("events", "read"), s.listEvents)
	m.Get("/tenants/:tenant/apps/:app/revisions", s.authorize("revisions", "read"), s.listRevisions)
	m.Post("/tenants/:tenant/apps/:app/revisions", s.authorize("revisions", "write"), s.deploy)
	m.Get("/tenants/:tenant/apps/:app/revisions/:rev", s.authorize("revisions", "read"), s.getRevision)
	m.Post("/tenants/:tenant/apps/:app/revisions/:rev/activate", s.authorize("revisions", "write"), s.activate)
	m.Post("/tenants/:tenant/apps/:app/revisions/:rev/retire", s.authorize("revisions", "write"), s.retire)
	m.Get("/tenants/:tenant/apps/:app/revisions/:rev/replicas/:replica/logs", s.authorize("logs", "read"), s.replicaLogs)
	// What live views read (stream.go).
	m.Get("/whoami", s.whoami)
	m.Get("/tenants/:tenant/apps/:app/events/stream", s.authorize("events", "read"), s.eventStream())
	m.Get("/tenants/:tenant/apps/:app/sessions", s.authorize("revisions", "read"), s.sessions)
	if s.cfg.Bridge != nil {
		a.Use("/bridge", s.cfg.Bridge)
	}
	a.Use(func(c *fiber.Ctx) error {
		return fiber.NewError(fiber.StatusNotFound, "no route "+c.Method()+" "+c.Path())
	})
}

// ctx gives a handler a context bounded by the request timeout.
func (s *Server) ctx(c *fiber.Ctx) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.UserContext(), s.cfg.Timeout)
}

// Health is etcd's reachability (etcdhealth.Health).
type Health interface {
	Down() (bool, time.Time)
	Stale() time.Duration
}

func (s *Server) readyz(c *fiber.Ctx) error {
	if s.cfg.Health != nil {
		if down, since := s.cfg.Health.Down(); down {
			return c.Status(fiber.StatusServiceUnavailable).JSON(errorBody{errorDetail{Code: "degraded",
				Message: fmt.Sprintf("etcd unreachable for %s: open sessions and reconnects keep flowing, get-endpoint answers from memory, writes are refused", time.Since(since).Round(time.Second))}})
		}
	}
	if s.cfg.Ready == nil {
		return c.SendString("ok")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	if err := s.cfg.Ready(ctx); err != nil {
		return c.Status(fiber.StatusServiceUnavailable).JSON(errorBody{errorDetail{Code: "unavailable", Message: err.Error()}})
	}
	return c.SendString("ok")
}
