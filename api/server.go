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
	"github.com/discovery-platform/discovery/tenants"
)

//go:embed openapi.json
var openapiJSON []byte

// Config is what the API needs.
type Config struct {
	Apps    *apps.Service
	Tenants *tenants.Store
	// Endpoints answers the public get-endpoint.
	Endpoints EndpointGetter
	// Authz authenticates (its Tokens) and decides every call; nil means no
	// authentication (unit tests of the domain only).
	Authz *authz.Authorizer
	// Images is the catalog of images the process runtime can run.
	Images ImageCatalog
	// TenantOps deletes tenants (apps first).
	TenantOps *apps.TenantService
	// Limiter rate-limits the public get-endpoint per client address.
	Limiter *Limiter
	// TenantWrites bounds each tenant's management writes, in bytes per
	// second (nil: unbounded).
	TenantWrites *Limiter
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

// Route is one route of the API: its method and path, who may call it, and
// its handler. Every route the API serves is in Routes, and each goes through
// guard(Access) first, so access is decided in one place (authz.Authorizer.
// Decide) and a new route cannot be added without saying who may call it.
type Route struct {
	Method, Path string
	Access       Access
	handler      fiber.Handler
}

// AccessKind is how a route is guarded.
type AccessKind int

const (
	// Public routes need no token: health, get-endpoint (rate-limited), and
	// app-held leases addressed by their secret id.
	Public AccessKind = iota
	// Authenticated routes need a valid token and nothing more; what they
	// show depends on the caller (whoami, the tenants one may see, the image
	// catalog).
	Authenticated
	// Checked routes need Decide(caller, {tenant, Object, Action}) to allow.
	Checked
)

// Access says who may call a route.
type Access struct {
	Kind           AccessKind
	Object, Action string
	// BodyTenant: the tenant the call acts in is the body's "tenant" field
	// (POST /tokens), not the route's {tenant}.
	BodyTenant bool
	// Capability: a replica's lease capability (X-Discovery-Lease-Token) for
	// the route's own revision is accepted instead of a token.
	Capability bool
}

func check(object, action string) Access {
	return Access{Kind: Checked, Object: object, Action: action}
}

var (
	public        = Access{Kind: Public}
	authenticated = Access{Kind: Authenticated}
)

// Routes lists every route with its access rule, in registration order.
func (s *Server) Routes() []Route {
	const (
		t   = "/api/v1/tenants/:tenant"
		app = t + "/apps/:app"
		rev = app + "/revisions/:rev"
	)
	r, w := authz.Read, authz.Write
	return []Route{
		{"GET", "/healthz", public, func(c *fiber.Ctx) error { return c.SendString("ok") }},
		{"GET", "/readyz", public, s.readyz},
		{"GET", "/version", public, func(c *fiber.Ctx) error {
			return c.JSON(fiber.Map{"version": s.cfg.Version, "pid": os.Getpid()})
		}},
		// The series name every tenant, app and revision: admins only here;
		// --metrics-addr serves scrapers inside the cluster.
		{"GET", "/metrics", check("metrics", r), adaptor.HTTPHandler(promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))},
		{"GET", "/api/v1/openapi.json", public, func(c *fiber.Ctx) error {
			c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
			return c.Send(openapiJSON)
		}},
		// Game clients (rate-limited per address) and apps (leases by id).
		{"GET", "/api/get-endpoint", public, s.limited(s.seedGetEndpoint)},
		{"GET", app + "/endpoint", public, s.limited(s.getEndpoint)},
		{"PUT", "/api/v1/leases/:id", public, s.keepHold},
		{"DELETE", "/api/v1/leases/:id", public, s.releaseHold},
		{"POST", rev + "/leases", Access{Kind: Checked, Object: "leases", Action: w, Capability: true}, s.createHold},
		{"GET", app + "/leases", check("leases", r), s.listHolds},
		{"DELETE", app + "/leases/:lease", check("leases", w), s.releaseTenantHold},

		{"GET", "/api/v1/whoami", authenticated, s.whoami},
		{"GET", "/api/v1/tenants", authenticated, s.listTenants},
		{"POST", "/api/v1/tenants", check("tenants", w), s.createTenant},
		{"POST", "/api/v1/tokens", Access{Kind: Checked, Object: "tokens", Action: w, BodyTenant: true}, s.issueToken},
		{"DELETE", "/api/v1/tokens/:id", check("tokens", w), s.revokeToken},
		{"GET", "/api/v1/images", authenticated, s.listImages},
		{"PUT", "/api/v1/images/+", check("images", w), s.putImage},
		{"DELETE", "/api/v1/images/+", check("images", w), s.deleteImage},

		{"GET", t, check("tenant", r), s.getTenant},
		{"PATCH", t, check("tenant", w), s.updateTenant},
		{"DELETE", t, check("tenant", w), s.deleteTenant},
		{"GET", t + "/quota", check("quota", r), s.getQuota},
		{"PUT", t + "/quota", check("quota", w), s.putQuota},
		{"GET", t + "/members", check("members", r), s.listMembers},
		{"PUT", t + "/members/:subject", check("members", w), s.putMember},
		{"DELETE", t + "/members/:subject", check("members", w), s.deleteMember},
		{"GET", t + "/apps", check("apps", r), s.listApps},
		{"POST", t + "/apps", check("apps", w), s.createApp},
		{"GET", app, check("apps", r), s.getApp},
		{"PATCH", app, check("apps", w), s.updateApp},
		{"DELETE", app, check("apps", w), s.deleteApp},
		{"GET", app + "/events", check("events", r), s.listEvents},
		{"GET", app + "/events/stream", check("events", r), s.eventStream()},
		{"GET", app + "/sessions", check("revisions", r), s.sessions},
		{"GET", app + "/revisions", check("revisions", r), s.listRevisions},
		{"POST", app + "/revisions", check("revisions", w), s.deploy},
		{"GET", rev, check("revisions", r), s.getRevision},
		{"POST", rev + "/activate", check("revisions", w), s.activate},
		{"POST", rev + "/retire", check("revisions", w), s.retire},
		{"GET", rev + "/replicas/:replica/logs", check("logs", r), s.replicaLogs},
	}
}

func (s *Server) routes() {
	a := s.app
	for _, r := range s.Routes() {
		a.Add(r.Method, r.Path, s.guard(r.Access), r.handler)
	}
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
