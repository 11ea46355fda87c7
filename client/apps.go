package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// ListApps lists a tenant's apps.
func (c *Client) ListApps(ctx context.Context, tenant string) ([]App, error) {
	var out struct {
		Apps []App `json:"apps"`
	}
	err := c.do(ctx, http.MethodGet, apiPath("tenants", tenant, "apps"), nil, nil, &out)
	return out.Apps, err
}

// CreateApp creates an app; spec.Name is required.
func (c *Client) CreateApp(ctx context.Context, tenant string, spec AppSpec) (App, error) {
	var out App
	err := c.do(ctx, http.MethodPost, apiPath("tenants", tenant, "apps"), nil, spec, &out)
	return out, err
}

// GetApp reads an app.
func (c *Client) GetApp(ctx context.Context, tenant, app string) (App, error) {
	var out App
	err := c.do(ctx, http.MethodGet, apiPath("tenants", tenant, "apps", app), nil, nil, &out)
	return out, err
}

// UpdateApp changes the fields spec sets and leaves the others.
func (c *Client) UpdateApp(ctx context.Context, tenant, app string, spec AppSpec) (App, error) {
	var out App
	err := c.do(ctx, http.MethodPatch, apiPath("tenants", tenant, "apps", app), nil, spec, &out)
	return out, err
}

// DeleteApp starts deleting an app: every revision is retired, then the app is
// removed. The answer is the app marked deleting. An app with players is
// refused (ErrConflict, naming its live sessions): see DeleteAppWith.
func (c *Client) DeleteApp(ctx context.Context, tenant, app string) (App, error) {
	return c.DeleteAppWith(ctx, tenant, app, DeleteOptions{})
}

// DeleteOptions say what happens to the players of an app being deleted.
type DeleteOptions struct {
	// Force retires every revision at once, cutting its players.
	Force bool
	// Drain takes no new players, lets every revision drain as after a
	// deploy, and removes the app once all are retired.
	Drain bool
}

// DeleteAppWith starts deleting an app as opt says.
func (c *Client) DeleteAppWith(ctx context.Context, tenant, app string, opt DeleteOptions) (App, error) {
	q := url.Values{}
	if opt.Force {
		q.Set("force", "true")
	}
	if opt.Drain {
		q.Set("drain", "true")
	}
	var out App
	err := c.do(ctx, http.MethodDelete, apiPath("tenants", tenant, "apps", app), q, nil, &out)
	return out, err
}

// Deploy deploys a new revision of an app. It answers at once with the
// revision pending; it becomes active once its replicas are healthy (see
// WaitRevision), and until then the previous revision keeps serving.
func (c *Client) Deploy(ctx context.Context, tenant, app string, spec RevisionSpec) (Revision, error) {
	var out Revision
	err := c.do(ctx, http.MethodPost, apiPath("tenants", tenant, "apps", app, "revisions"), nil, spec, &out)
	return out, err
}

// ListRevisions lists an app's revisions, newest first, with their replicas.
func (c *Client) ListRevisions(ctx context.Context, tenant, app string) ([]Revision, error) {
	var out struct {
		Revisions []Revision `json:"revisions"`
	}
	err := c.do(ctx, http.MethodGet, apiPath("tenants", tenant, "apps", app, "revisions"), nil, nil, &out)
	return out.Revisions, err
}

// GetRevision reads one revision with its replicas.
func (c *Client) GetRevision(ctx context.Context, tenant, app, rev string) (Revision, error) {
	var out Revision
	err := c.do(ctx, http.MethodGet, apiPath("tenants", tenant, "apps", app, "revisions", rev), nil, nil, &out)
	return out, err
}

// Activate re-activates a draining revision: an instant rollback, no restart.
func (c *Client) Activate(ctx context.Context, tenant, app, rev string) (Revision, error) {
	var out Revision
	err := c.do(ctx, http.MethodPost, apiPath("tenants", tenant, "apps", app, "revisions", rev, "activate"), nil, nil, &out)
	return out, err
}

// Retire retires a revision now, whatever its sessions (not the active one).
func (c *Client) Retire(ctx context.Context, tenant, app, rev string) (Revision, error) {
	var out Revision
	err := c.do(ctx, http.MethodPost, apiPath("tenants", tenant, "apps", app, "revisions", rev, "retire"), nil, nil, &out)
	return out, err
}

// ReplicaLogs returns the last tail bytes of a replica's output (the
// platform's default, 64 KiB, when tail is 0).
func (c *Client) ReplicaLogs(ctx context.Context, tenant, app, rev, replica string, tail int) (string, error) {
	q := url.Values{}
	if tail > 0 {
		q.Set("tail", strconv.Itoa(tail))
	}
	var out string
	err := c.do(ctx, http.MethodGet, apiPath("tenants", tenant, "apps", app, "revisions", rev, "replicas", replica, "logs"), q, nil, &out)
	return out, err
}

// ListEvents returns an app's activity log, oldest first: the events after
// the event id after ("" for the oldest kept), at most limit (the platform's
// default, 100, when 0; at most 500).
func (c *Client) ListEvents(ctx context.Context, tenant, app, after string, limit int) ([]Event, error) {
	return c.QueryEvents(ctx, tenant, app, EventQuery{After: after, Limit: limit})
}

// EventQuery selects events of an app's activity log: those after the event
// id After, at most Limit (100 when 0; at most 500), and when set only those
// of one Actor (a token's subject, or "platform") and of one Type.
type EventQuery struct {
	After       string
	Limit       int
	Actor, Type string
}

// QueryEvents returns the app's events q selects, oldest first (the newest
// Limit of them).
func (c *Client) QueryEvents(ctx context.Context, tenant, app string, eq EventQuery) ([]Event, error) {
	q := url.Values{}
	for k, v := range map[string]string{"after": eq.After, "actor": eq.Actor, "type": eq.Type} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if eq.Limit > 0 {
		q.Set("limit", strconv.Itoa(eq.Limit))
	}
	var out struct {
		Events []Event `json:"events"`
	}
	err := c.do(ctx, http.MethodGet, apiPath("tenants", tenant, "apps", app, "events"), q, nil, &out)
	return out.Events, err
}

// GetEndpoint is get-endpoint (public, no token needed): a ready replica of
// the app's active revision with room, reserved for the client for
// Endpoint.ExpiresIn seconds. Dial its Socket.
func (c *Client) GetEndpoint(ctx context.Context, tenant, app string) (Endpoint, error) {
	var out Endpoint
	err := c.do(ctx, http.MethodGet, apiPath("tenants", tenant, "apps", app, "endpoint"), nil, nil, &out)
	return out, err
}

// GetEndpointForTicket is get-endpoint with a handoff's ticket
// (sdk/PROTOCOL.md §1, §4): the replica the player was handed off to, its
// Socket carrying the ticket; it makes no reservation of its own. A ticket
// unknown, used or expired answers ErrGone: call GetEndpoint instead.
func (c *Client) GetEndpointForTicket(ctx context.Context, tenant, app, ticket string) (Endpoint, error) {
	var out Endpoint
	err := c.do(ctx, http.MethodGet, apiPath("tenants", tenant, "apps", app, "endpoint"), url.Values{"ticket": {ticket}}, nil, &out)
	return out, err
}

// Sessions reads an app's open sessions per serving revision and replica,
// in all and split into connections, reservations and app-held leases.
func (c *Client) Sessions(ctx context.Context, tenant, app string) (Sessions, error) {
	var out Sessions
	err := c.do(ctx, http.MethodGet, apiPath("tenants", tenant, "apps", app, "sessions"), nil, nil, &out)
	return out, err
}
