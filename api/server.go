// Package api is Discovery's REST API under /api/v1 (fiber): thin handlers that
// decode a request, call the domain (apps, tenants) and encode the answer, with
// one error table (errors.go). Routes is the one table of routes, each with
// its access rule and its documentation (Doc); the OpenAPI document served at
// /api/v1/openapi.json is generated from that table and the Go types it names
// (`go generate ./api/` rewrites openapi.json; a test fails while it is stale).
package api

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/authz"
	"github.com/discovery-platform/discovery/endpoint"
	"github.com/discovery-platform/discovery/images"
	"github.com/discovery-platform/discovery/tenants"
)

// openapiJSON is generated from Routes, never edited by hand.
//
//go:generate go run gen_openapi.go
//go:embed openapi.json
var openapiJSON []byte

// Config is what the API needs.
type Config struct {
	Apps    *apps.Service
	Tenants *tenants.Store
	// Endpoints answers the public get-endpoint.
	Endpoints EndpointGetter
	// Handoffs moves players from a draining revision (nil: 501).
	Handoffs Handoffer
	// Notices tells revisions' notices (nil: 501).
	Notices NoticeSource
	// Deploys tells how each app's last deploy went, for the apps list
	// (nil: not shown).
	Deploys DeploySource
	// History keeps sessions per revision over the last day (nil: 501).
	History *endpoint.History
	// Usage measures replicas' CPU and memory (nil: not shown).
	Usage UsageSource
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

// Route is one route of the API: its method and path, who may call it, its
// handler and its documentation. Every route the API serves is in Routes, and
// each goes through guard(Access) first, so access is decided in one place
// (authz.Authorizer.Decide) and a new route cannot be added without saying
// who may call it; nor without a Doc, which openapi.json is generated from.
type Route struct {
	Method, Path string
	Access       Access
	handler      fiber.Handler
	Doc          Doc
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
	// Unstored: the body is passed on, not stored: a write costs the
	// tenant's write budget its fixed part only.
	Unstored bool
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

// Routes lists every route with its access rule and documentation, in
// registration order.
func (s *Server) Routes() []Route {
	return slices.Concat(s.serviceRoutes(), s.clientRoutes(), s.platformRoutes(), s.tenantRoutes(), s.appRoutes(), s.revisionRoutes())
}

// Paths of a tenant's resources.
const (
	tenantPath   = "/api/v1/tenants/:tenant"
	appPath      = tenantPath + "/apps/:app"
	revisionPath = appPath + "/revisions/:rev"
)

// The actions a route's access rule checks.
const (
	read  = authz.Read
	write = authz.Write
)

// serviceRoutes: health, version, metrics and this API's document.
func (s *Server) serviceRoutes() []Route {
	return []Route{
		{"GET", "/healthz", public, func(c *fiber.Ctx) error { return c.SendString("ok") }, Doc{
			Summary: "Liveness: ok while the process serves", Response: "", ContentType: textPlain}},
		{"GET", "/readyz", public, s.readyz, Doc{
			Summary: "Readiness: ok when the platform can serve",
			Description: "503 while etcd is unreachable (code degraded: open sessions and reconnects keep flowing, " +
				"get-endpoint answers from memory, writes are refused) or while the platform is not ready (code unavailable).",
			Response: "", ContentType: textPlain, Errors: []int{503}}},
		{"GET", "/version", public, func(c *fiber.Ctx) error {
			return c.JSON(fiber.Map{"version": s.cfg.Version, "pid": os.Getpid()})
		}, Doc{Summary: "The build's version and the serving process", Response: versionInfo{}}},
		// The series name every tenant, app and revision: admins only here;
		// --metrics-addr serves scrapers inside the cluster.
		{"GET", "/metrics", check("metrics", read), adaptor.HTTPHandler(promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{})), Doc{
			Summary: "Prometheus metrics",
			Description: "The series name every tenant, app and revision, so only platform admins read them here; " +
				"--metrics-addr serves scrapers inside the cluster.",
			Response: "", ContentType: textPlain}},
		{"GET", "/api/v1/openapi.json", public, func(c *fiber.Ctx) error {
			c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
			return c.Send(openapiJSON)
		}, Doc{Summary: "This document (OpenAPI 3.0)", Response: map[string]any{}}},
	}
}

// clientRoutes serve game clients (get-endpoint, rate-limited per address) and
// apps (leases, by id or by their revision's capability).
func (s *Server) clientRoutes() []Route {
	return []Route{
		// Game clients (rate-limited per address) and apps (leases by id).
		{"GET", "/api/get-endpoint", public, s.limited(s.seedGetEndpoint), Doc{
			Summary:     "get-endpoint for the default tenant (the original tool's form)",
			Description: getEndpointDescription,
			Params:      []Param{{Name: "app_name", In: "query", Required: true, Description: "the app, in the default tenant"}, ticketParam},
			Response:    endpoint.Endpoint{}, Errors: []int{400, 404, 410, 429, 503}}},
		{"GET", appPath + "/endpoint", public, s.limited(s.getEndpoint), Doc{
			Summary:     "get-endpoint: where a game client should connect",
			Description: getEndpointDescription,
			Params:      []Param{ticketParam},
			Response:    endpoint.Endpoint{}, Errors: []int{400, 404, 410, 429, 503}}},
		{"PUT", "/api/v1/leases/:id", public, s.keepHold, Doc{
			Summary:     "Keep an app-held lease alive for another ttl",
			Description: "The lease's id is its own secret: only its creator is told it.",
			Params:      []Param{leaseIDParam}, Response: apps.Lease{}, Errors: []int{404, 503}}},
		{"DELETE", "/api/v1/leases/:id", public, s.releaseHold, Doc{
			Summary: "Release an app-held lease now",
			Params:  []Param{leaseIDParam}, Status: 204, Errors: []int{404, 503}}},
		{"POST", revisionPath + "/leases", Access{Kind: Checked, Object: "leases", Action: write, Capability: true}, s.createHold, Doc{
			Summary: "Take an app-held lease on a serving revision",
			Description: fmt.Sprintf("While the lease lives, its revision (and replica, if named) counts as having a session: "+
				"it is neither retired nor scaled down. Apps that simulate with nobody connected keep one alive over plain HTTP "+
				"(PUT /api/v1/leases/{id}); one not kept alive expires by itself. ttl is %s to %s, %s when left out. "+
				"A revision holds at most its tenant's max_leases_per_revision leases (403).",
				apps.MinLeaseTTL, apps.MaxLeaseTTL, apps.DefaultLeaseTTL),
			Request: holdRequest{}, RequestExample: `{"ttl":"30s"}`,
			Status: 201, Response: apps.Lease{}, Errors: []int{400, 404, 409, 503}}},
		{"POST", revisionPath + "/handoffs", Access{Kind: Checked, Object: "handoffs", Action: write, Capability: true, Unstored: true}, s.handoff, Doc{
			Summary: "Hand a player off from a draining revision to the active one",
			Description: fmt.Sprintf("A replica of a draining revision sends one player's state (any bytes, at most %d) with its own "+
				"capability; the platform picks a replica of the active revision (a normal reservation), forwards the state to its "+
				"handoff_path under a ticket (the state is never stored) and answers the ticket and the target's socket URL. "+
				"The old server then closes the player's WebSocket with code 4901 and reason ticket=<ticket>. The ticket is valid %s, once, "+
				"for that replica only. 409 unless the revision is draining and the app sets handoff_path; 502 when the target "+
				"did not take the state (the ticket is void). See sdk/PROTOCOL.md.", apps.MaxHandoffState, apps.TicketTTL),
			Params:  []Param{{Name: "X-Discovery-Replica", In: "header", Description: "the calling replica's id ($DISCOVERY_REPLICA)"}},
			Request: "", RequestType: "application/octet-stream",
			Status: 201, Response: endpoint.Moved{}, Errors: []int{400, 404, 409, 413, 502, 503}}},
		{"GET", revisionPath + "/notices", Access{Kind: Checked, Object: "notices", Action: read, Capability: true}, s.noticeStream(), Doc{
			Summary: "The revision's notices, live, as Server-Sent Events",
			Description: "What its replicas' drain_hook is told, for a replica that follows its own revision with its capability " +
				"(or a tenant member): one data: line per notice (apps.Notice as JSON), the revision's state now first, then each change " +
				"(draining, re-activated, retired…); a comment every 15 s. The stream ends after 10 minutes (reconnect: the caller is " +
				"authenticated again), or once the revision is over. See sdk/PROTOCOL.md.",
			Response: "", ContentType: textEventStream, Errors: []int{404, 429, 501}}},
		{"GET", appPath + "/leases", check("leases", read), s.listHolds, Doc{
			Summary:  "List an app's app-held leases (every revision)",
			Response: leaseList{}, Errors: []int{404, 503}}},
		{"DELETE", appPath + "/leases/:lease", check("leases", write), s.releaseTenantHold, Doc{
			Summary: "Release one of an app's leases by its number (no secret needed)",
			Params:  []Param{{Name: "lease", In: "path", Description: "the lease number (lease in the listing)"}},
			Status:  204, Errors: []int{404, 503}}},
	}
}

// platformRoutes: who the caller is, tenants, tokens and the image catalog.
func (s *Server) platformRoutes() []Route {
	return []Route{
		{"GET", "/api/v1/whoami", authenticated, s.whoami, Doc{
			Summary:     "Who the caller is, and what it may do in a tenant",
			Description: "So a page shows only the buttons the caller may use; the routes check anyway.",
			Params:      []Param{{Name: "tenant", In: "query", Description: "the tenant to report the role and permissions in"}},
			Response:    whoamiView{}, Errors: []int{400}}},
		{"GET", "/api/v1/tenants", authenticated, s.listTenants, Doc{
			Summary:  "List tenants: a platform admin sees all, others those they have a role in",
			Response: tenantList{}, Errors: []int{503}}},
		{"POST", "/api/v1/tenants", check("tenants", write), s.createTenant, Doc{
			Summary: "Create a tenant",
			Request: tenantRequest{}, RequestExample: `{"name":"acme","quota":{"max_apps":5}}`,
			Status: 201, Response: tenants.Tenant{}, Errors: []int{400, 409, 503}}},
		{"POST", "/api/v1/tokens", Access{Kind: Checked, Object: "tokens", Action: write, BodyTenant: true}, s.issueToken, Doc{
			Summary: "Issue a token",
			Description: "A platform admin issues any token; a tenant's owner issues tokens bound to its tenant, " +
				"for its members, never above its own role. ttl is 24h when left out.",
			Request: tokenRequest{}, RequestExample: `{"subject":"alice","tenant":"acme","ttl":"24h"}`,
			Status: 201, Response: issuedToken{}, Errors: []int{400, 404, 503}}},
		{"DELETE", "/api/v1/tokens/:id", check("tokens", write), s.revokeToken, Doc{
			Summary: "Revoke a token",
			Params:  []Param{{Name: "id", In: "path", Description: "the token's id (id when it was issued)"}},
			Status:  204, Errors: []int{400, 503}}},
		{"GET", "/api/v1/images", authenticated, s.listImages, Doc{
			Summary:  "The image catalog: the images tenants may deploy on the process runtime",
			Response: imageList{}, Errors: []int{503}}},
		{"PUT", "/api/v1/images/+", check("images", write), s.putImage, Doc{
			Summary: "Add or replace a catalog entry",
			Params:  []Param{imageParam},
			Request: imageRequest{}, RequestExample: `{"command":["/opt/games/arena-0.2","--ranked"],"description":"the arena, version 0.2"}`,
			Response: images.Image{}, Errors: []int{400, 501, 503}}},
		{"DELETE", "/api/v1/images/+", check("images", write), s.deleteImage, Doc{
			Summary: "Remove a catalog entry; revisions deployed from it keep running",
			Params:  []Param{imageParam}, Status: 204, Errors: []int{404, 501, 503}}},
	}
}

// tenantRoutes: a tenant, its quota and its members.
func (s *Server) tenantRoutes() []Route {
	return []Route{
		{"GET", tenantPath, check("tenant", read), s.getTenant, Doc{
			Summary: "Get a tenant", Response: tenants.Tenant{}, Errors: []int{404, 503}}},
		{"PATCH", tenantPath, check("tenant", write), s.updateTenant, Doc{
			Summary:     "Change a tenant's quota or trust",
			Description: "Quota fields left out keep their value; allow_commands lets the tenant deploy raw commands.",
			Request:     tenantPatch{}, RequestExample: `{"quota":{"max_apps":50},"allow_commands":true}`,
			Response: tenants.Tenant{}, Errors: []int{400, 404, 409, 503}}},
		{"DELETE", tenantPath, check("tenant", write), s.deleteTenant, Doc{
			Summary: "Delete a tenant: its apps are retired first, then it is removed",
			Status:  202, Response: tenantDeletion{}, Errors: []int{404, 409, 503}}},
		{"GET", tenantPath + "/quota", check("quota", read), s.getQuota, Doc{
			Summary: "A tenant's quota and usage", Response: quotaView{}, Errors: []int{404, 503}}},
		{"PUT", tenantPath + "/quota", check("quota", write), s.putQuota, Doc{
			Summary: "Set a tenant's quota (fields left out keep their value)",
			Request: tenants.QuotaPatch{}, RequestExample: `{"max_apps":50,"max_replicas":200}`,
			Response: tenants.Tenant{}, Errors: []int{400, 404, 409, 503}}},
		{"GET", tenantPath + "/members", check("members", read), s.listMembers, Doc{
			Summary: "A tenant's members and their roles", Response: memberList{}, Errors: []int{404, 503}}},
		{"PUT", tenantPath + "/members/:subject", check("members", write), s.putMember, Doc{
			Summary: "Grant a member a role (at once: no new token needed)",
			Request: roleRequest{}, RequestExample: `{"role":"deployer"}`,
			Response: authz.Member{}, Errors: []int{400, 404, 503}}},
		{"DELETE", tenantPath + "/members/:subject", check("members", write), s.deleteMember, Doc{
			Summary: "Take a member's role away", Status: 204, Errors: []int{404, 503}}},
	}
}

// appRoutes: a tenant's apps, their activity and sessions.
func (s *Server) appRoutes() []Route {
	return []Route{
		{"GET", tenantPath + "/apps", check("apps", read), s.listApps, Doc{
			Summary:     "List a tenant's apps, by name",
			Description: "Each app comes with `last_deploy`: its newest revision's id, generation, state, reason and label, and `failed` when that deploy failed (the revision's `last_output` says why).",
			Response:    appList{}, Errors: []int{404, 503}}},
		{"POST", tenantPath + "/apps", check("apps", write), s.createApp, Doc{
			Summary: "Create an app",
			Description: "name is required; each other field is the App setting of that name and takes its default when left out, " +
				"as the example answer shows. " + appLimits,
			Request: apps.AppSpec{}, RequestExample: createAppExample,
			Status: 201, Response: apps.App{}, ResponseExample: createdApp(createAppExample),
			Errors: []int{400, 404, 409, 503}}},
		{"GET", appPath, check("apps", read), s.getApp, Doc{
			Summary: "Get an app", Response: apps.App{}, Errors: []int{404, 503}}},
		{"PATCH", appPath, check("apps", write), s.updateApp, Doc{
			Summary:     "Change an app's settings (fields left out keep their value; the name cannot change)",
			Description: appLimits,
			Request:     apps.AppSpec{}, RequestExample: `{"replicas":3}`,
			Response: apps.App{}, Errors: []int{400, 404, 409, 503}}},
		{"DELETE", appPath, check("apps", write), s.deleteApp, Doc{
			Summary: "Delete an app: every revision is retired (or drains), then the app is removed",
			Description: "An app whose revisions hold live sessions (connections, app-held leases) is refused with 409 naming them, " +
				"unless `force=true` (retire every revision now, cutting its players) or `drain=true` (no new players; every revision " +
				"drains as after a deploy and the app is removed once all are retired). A force after a drain retires what still drains.",
			Params: []Param{{Name: "force", In: "query", Description: "cut the players still connected", Type: false},
				{Name: "drain", In: "query", Description: "delete once the players have left", Type: false}},
			Status: 202, Response: apps.App{}, Errors: []int{400, 404, 409, 503}}},
		{"GET", appPath + "/events", check("events", read), s.listEvents, Doc{
			Summary:     "The app's activity log, oldest first",
			Description: fmt.Sprintf("An app keeps its last %d events.", apps.MaxEventsPerApp),
			Params:      []Param{afterParam, limitParam, actorParam, typeParam},
			Response:    eventList{}, Errors: []int{400, 404, 503}}},
		{"GET", appPath + "/events/stream", check("events", read), s.eventStream(), Doc{
			Summary: "The activity log, live, as Server-Sent Events",
			Description: fmt.Sprintf("The recent events (or those after ?after= / Last-Event-ID), then each new one as it is written: "+
				"each message is `id: <event id>` and `data: <Event as JSON>`; a comment every %s; `event: deleted` when the app is gone. "+
				"The stream ends when the caller's token or role is revoked. At most %d open streams per subject (429). "+
				"Bridge reads it with fetch, so the Authorization header is sent.", streamHeartbeat, streamsPerSubject),
			Params: []Param{afterParam, limitParam, actorParam, typeParam,
				{Name: "Last-Event-ID", In: "header", Description: "as ?after= (an EventSource sends it when it reconnects)"}},
			Response: "", ContentType: textEventStream, Errors: []int{400, 404, 429, 503}}},
		{"GET", appPath + "/sessions", check("revisions", read), s.sessions, Doc{
			Summary:     "Open sessions of each serving revision and its replicas",
			Description: "Sessions are connections, reservations and app-held leases, counted over every gateway.",
			Response:    sessionsView{}, Errors: []int{404, 503}}},
		{"GET", appPath + "/sessions/history", check("revisions", read), s.sessionHistory, Doc{
			Summary: "Sessions per revision over the last day",
			Description: "Each revision's session count as sampled every `step_seconds` (10 s) over the last `keep_seconds` (24 h), " +
				"kept only where it changed: a point `{t, n}` says the revision had `n` sessions from `t` on (Unix milliseconds). " +
				"Kept in the memory of the instance that answers (a restart starts afresh).",
			Response: historyView{}, Errors: []int{404, 501, 503}}},
	}
}

// revisionRoutes: deploys, rollbacks and replicas' output.
func (s *Server) revisionRoutes() []Route {
	return []Route{
		{"GET", appPath + "/revisions", check("revisions", read), s.listRevisions, Doc{
			Summary: "List revisions, newest first, with their replicas", Response: revisionList{}, Errors: []int{404, 503}}},
		{"POST", appPath + "/revisions", check("revisions", write), s.deploy, Doc{
			Summary: "Deploy a new revision; it becomes active once healthy",
			Description: "A revision runs an image (on the process runtime, one from the catalog) or a raw command " +
				"(platform admins, and tenants they trust: allow_commands). The active revision keeps serving until the new one " +
				"is healthy, then drains its sessions; a revision still pending or starting is superseded.",
			Request: apps.RevisionSpec{}, RequestExample: `{"image":"example/arena:0.2","env":{"MODE":"ranked"}}`,
			Status: 202, Response: revisionView{}, Errors: []int{400, 404, 409, 503}}},
		{"GET", revisionPath, check("revisions", read), s.getRevision, Doc{
			Summary: "Get a revision with its replicas", Response: revisionView{}, Errors: []int{404, 503}}},
		{"POST", revisionPath + "/activate", check("revisions", write), s.activate, Doc{
			Summary:  "Re-activate a draining revision: instant rollback, no restart",
			Response: apps.Revision{}, Errors: []int{404, 409, 503}}},
		{"POST", revisionPath + "/retire", check("revisions", write), s.retire, Doc{
			Summary: "Retire a revision now, whatever its sessions (not the active one)",
			Status:  202, Response: apps.Revision{}, Errors: []int{404, 409, 503}}},
		{"GET", revisionPath + "/replicas/:replica/logs", check("logs", read), s.replicaLogs, Doc{
			Summary: "The tail of a replica's output",
			Params: []Param{{Name: "tail", In: "query", Description: "bytes from the end", Type: 0,
				Default: 64 << 10, Min: 1, Max: 1 << 20}},
			Response: "", ContentType: textPlain, Errors: []int{400, 404, 501, 503}}},
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
