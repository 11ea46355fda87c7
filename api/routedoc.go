package api

// What the route table says of each route for openapi.json. The document is
// generated from Routes and the Go types its routes name (go generate ./api/:
// gen_openapi.go runs internal/openapigen); nothing here is read to serve.

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/authz"
	"github.com/discovery-platform/discovery/images"
	"github.com/discovery-platform/discovery/tenants"
)

// Doc documents a route. Types are given as zero values (Request:
// apps.AppSpec{}), so the document follows them: a field added to a type
// reaches it at the next go generate, with the field's Go comment as its
// description.
type Doc struct {
	// Summary is one line; Description, when set, says more (CommonMark).
	// The generator adds a sentence saying who may call the route.
	Summary, Description string
	// Params are the route's query and header parameters, and the path
	// parameters SharedDoc does not describe. A greedy "+" in the path takes
	// the name of the one path parameter given here that the path lacks.
	Params []Param
	// Request is the JSON body the handler decodes (nil: none), and
	// RequestExample one as a client sends it (the generator decodes it
	// into Request as strictly as the handler does).
	Request        any
	RequestExample string
	// RequestType, when set, is the body's media type for a raw body (Request
	// is then a string: the body is taken as bytes, not decoded).
	RequestType string
	// Status is the success status (0: 200).
	Status int
	// Response is the success body: a zero value of the type the handler
	// encodes as JSON, or a string for a text body of ContentType (nil: no
	// body). ResponseExample, when set, is a value encoded as the handler
	// would encode it.
	Response        any
	ContentType     string
	ResponseExample any
	// Errors are the error statuses the handler answers. The generator adds
	// those of the middlewares, from Access and Request: 400 and 413 for a
	// body, 401 unless Public, 403 when Checked, 503 for a guarded write
	// (etcd unreachable) and 429 for one in a tenant (its write budget).
	Errors []int
}

// Param is a query, header or path parameter.
type Param struct {
	Name string
	// In is "query", "header" or "path".
	In          string
	Description string
	Required    bool
	// Type is a zero value of the parameter's type (nil: a string).
	Type any
	// Default, and for an integer its bounds Min-Max (when Max > 0).
	Default  any
	Min, Max int
}

// DocShared is what openapi.json says besides the routes.
type DocShared struct {
	Title, Version, Description string
	// PathParams describes the path parameters that many routes share.
	PathParams map[string]string
	// ErrorBody is the body of every error answer.
	ErrorBody any
}

// SharedDoc returns what openapi.json says besides the routes.
func SharedDoc() DocShared {
	return DocShared{
		Title:   "Discovery API",
		Version: "v1",
		Description: "Hosts realtime, stateful servers with zero-downtime deploys.\n\n" +
			"JSON with snake_case fields; durations are Go duration strings (\"30s\", \"1m30s\"), never bare numbers. " +
			"Request bodies are read strictly: an unknown field or trailing data is refused (400), so a typo is never a silent default. " +
			"Every error is {\"error\":{\"code\",\"message\"}}: code is a stable word (not_found, invalid, conflict, quota_exceeded, …), " +
			"message says what went wrong; a 429 or 503 carries Retry-After, and a refused write changed nothing.",
		PathParams: map[string]string{
			"tenant":  "tenant name",
			"app":     "app name (a DNS-1123 label)",
			"rev":     "revision id (8 hex characters)",
			"replica": "replica id",
			"subject": "the member's subject (as in its tokens)",
		},
		ErrorBody: errorBody{},
	}
}

const (
	textPlain       = "text/plain"
	textEventStream = "text/event-stream"
)

// Parameters several routes take.
var (
	afterParam = Param{Name: "after", In: "query", Description: "only the events after this event id"}
	limitParam = Param{Name: "limit", In: "query", Description: "at most this many events", Type: 0,
		Default: 100, Min: 1, Max: apps.MaxEventsPerApp}
	actorParam = Param{Name: "actor", In: "query",
		Description: "only the events of this actor: a token's subject, or `platform` for what the platform did on its own"}
	typeParam = Param{Name: "type", In: "query",
		Description: "only the events of this type (app_created, app_updated, deployed, transition, replica_started, …)"}
	leaseIDParam = Param{Name: "id", In: "path",
		Description: "the lease's id as its creator was told it (the lease number and a secret)"}
	imageParam = Param{Name: "image", In: "path",
		Description: "the image reference, e.g. example/arena:0.2: the rest of the path, its slashes as they are or escaped (%2F)"}
)

// The answers handlers build as a fiber.Map or an anonymous struct, as types
// the document can name; TestDocumentedAnswersDecode holds them to what the
// handlers send.
type (
	appList struct {
		Apps []appView `json:"apps"`
	}
	revisionList struct {
		Revisions []revisionView `json:"revisions"`
	}
	eventList struct {
		Events []apps.Event `json:"events"`
	}
	leaseList struct {
		Leases []apps.Lease `json:"leases"`
	}
	tenantList struct {
		Tenants []tenants.Tenant `json:"tenants"`
	}
	memberList struct {
		Members []authz.Member `json:"members"`
	}
	imageList struct {
		Images []images.Image `json:"images"`
	}

	// versionInfo is the build's version and the serving process.
	versionInfo struct {
		Version string `json:"version"`
		PID     int    `json:"pid"`
	}

	// tenantDeletion is the answer to deleting a tenant: its apps are
	// retired first, then it goes.
	tenantDeletion struct {
		Tenant   string `json:"tenant"`
		Deleting bool   `json:"deleting"`
		// AppsRetiring is how many apps are retired before the tenant goes.
		AppsRetiring int    `json:"apps_retiring"`
		Message      string `json:"message"`
	}

	// issuedToken is a new token and what it says.
	issuedToken struct {
		// Token is the bearer token (Authorization: Bearer <token>); it is
		// shown once.
		Token string `json:"token"`
		// ID names the token to revoke it.
		ID      string `json:"id"`
		Subject string `json:"subject"`
		// Tenant is the tenant the token is bound to ("" = unscoped).
		Tenant    string    `json:"tenant"`
		ExpiresAt time.Time `json:"expires_at"`
	}

	// roleRequest grants a member a role in a tenant.
	roleRequest struct {
		// Role is owner, deployer or viewer.
		Role string `json:"role"`
	}
)

// createAppExample is the example of creating an app.
const createAppExample = `{"name":"arena","port":8080,"health_path":"/healthz","replicas":2,"reconnect_grace":"45s"}`

// appLimits are the bounds apps.App.Validate holds an app's settings to.
var appLimits = fmt.Sprintf("Limits: port 1-65535; replicas, min_replicas and max_replicas 0-%d, min_replicas <= max_replicas; "+
	"max_sessions and target_sessions 0-%d, target_sessions <= max_sessions when both are set; durations 0-%s; "+
	"health_path an absolute path of at most %d bytes.", apps.MaxReplicas, apps.MaxSessionsLimit, apps.MaxGrace, apps.MaxHealthPathLen)

// exampleTime is the time in examples.
var exampleTime = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// createdApp is what creating the app spec (JSON) answers: apps.NewApp fills
// what the spec leaves out, so the example shows the defaults as they are.
func createdApp(spec string) apps.App {
	var s apps.AppSpec
	if json.Unmarshal([]byte(spec), &s) != nil {
		return apps.App{}
	}
	a, _ := apps.NewApp(tenants.Default, s, exampleTime)
	return a
}

// getEndpointDescription tells both forms of get-endpoint.
const getEndpointDescription = "Game clients call it with no token; it is rate-limited per client address (429 with Retry-After). " +
	"It picks a ready replica of the active revision with room and reserves a place on it for expires_in seconds, " +
	"until the client connects; an autoscaled app with no room (or scaled to zero) gets a replica started, the call waiting for it. " +
	"While etcd is unreachable it answers from memory for a while, with the header X-Discovery-Stale: the seconds since etcd was last reached. " +
	"socket is the URL to dial as it is (endpoint followed by the app's client_path). " +
	"With ?ticket= (a handoff's, see sdk/PROTOCOL.md) it answers the ticket's target replica, its socket carrying the ticket, " +
	"without a new reservation; a ticket unknown, used, expired or of another app is 410. Any origin may read the answers (CORS)."

// ticketParam is get-endpoint's handoff ticket.
var ticketParam = Param{Name: "ticket", In: "query", Description: "a handoff ticket: answer the replica it moves a player to"}
