package rig

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/discovery-platform/discovery/internal/testkit/platformtest"
)

// API calls one platform instance's REST API as the bootstrap admin, in the
// default tenant.
type API struct {
	// Addr is the API's host:port.
	Addr  string
	Token string
	HTTP  *http.Client
	// Scheme is http, or https for a platform run with --tls-cert (HTTP's
	// transport then needs the certificate's roots: UseTLS).
	Scheme string
}

// NewAPI returns a client for the API at addr; call LoadToken once the
// platform has started for the first time.
func NewAPI(addr string) *API {
	// A bound per call: during a fault a call must fail, not hang the run.
	return &API{Addr: addr, Scheme: "http", HTTP: &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

// UseTLS makes the client call https, trusting cfg's roots; the gateway's
// https:// URLs go through the same transport.
func (a *API) UseTLS(cfg *tls.Config) {
	a.Scheme = "https"
	a.HTTP.Transport.(*http.Transport).TLSClientConfig = cfg
}

// url is the API's base URL followed by path.
func (a *API) url(path string) string { return a.Scheme + "://" + a.Addr + path }

// LoadToken reads the admin token the platform wrote into its data dir on
// its first start.
func (a *API) LoadToken(dataDir string) error {
	tok, err := platformtest.ReadToken(dataDir)
	if err != nil {
		return err
	}
	a.Token = tok
	return nil
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Method, Path string
	Code         int
	Body         string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Code, strings.TrimSpace(e.Body))
}

// Do calls path under /api/v1 (an absolute path under /api/v1/tenants/default
// when it starts with "/apps") and decodes a 2xx JSON answer into out.
func (a *API) Do(ctx context.Context, method, path string, body, out any) error {
	if strings.HasPrefix(path, "/apps") {
		path = "/tenants/default" + path
	}
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.url("/api/v1"+path), r)
	if err != nil {
		return err
	}
	if a.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.Token)
	}
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return &StatusError{Method: method, Path: path, Code: resp.StatusCode, Body: string(b)}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Ready reports whether /readyz answers 200 (the API serves and reaches etcd).
func (a *API) Ready(ctx context.Context) bool {
	return Get(ctx, a.HTTP, a.url("/readyz")) == nil
}

// Get does a GET and reports an error unless it answers 200.
func Get(ctx context.Context, c *http.Client, u string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d", u, resp.StatusCode)
	}
	return nil
}

// Replica is a replica as the API lists it.
type Replica struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Address  string `json:"address"`
	Stopping bool   `json:"stopping"`
}

// Revision is a revision as the API lists it, with its replicas.
type Revision struct {
	ID         string    `json:"id"`
	Generation int64     `json:"generation"`
	State      string    `json:"state"`
	Reason     string    `json:"reason"`
	Replicas   []Replica `json:"replicas"`
}

// Revisions lists an app's revisions.
func (a *API) Revisions(ctx context.Context, app string) ([]Revision, error) {
	var out struct {
		Revisions []Revision `json:"revisions"`
	}
	err := a.Do(ctx, "GET", "/apps/"+app+"/revisions", nil, &out)
	return out.Revisions, err
}

// Deploy deploys command with env as a new revision and returns its id.
func (a *API) Deploy(ctx context.Context, app string, command []string, env map[string]string) (string, error) {
	var rev Revision
	err := a.Do(ctx, "POST", "/apps/"+app+"/revisions", map[string]any{"command": command, "env": env}, &rev)
	return rev.ID, err
}

// Event is one line of an app's activity log.
type Event struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Type     string    `json:"type"`
	Revision string    `json:"revision"`
	Replica  string    `json:"replica"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Message  string    `json:"message"`
}

// Events returns an app's events after the given id (all kept when empty),
// oldest first.
func (a *API) Events(ctx context.Context, app, after string) ([]Event, error) {
	var out struct {
		Events []Event `json:"events"`
	}
	q := url.Values{"limit": {"500"}}
	if after != "" {
		q.Set("after", after)
	}
	err := a.Do(ctx, "GET", "/apps/"+app+"/events?"+q.Encode(), nil, &out)
	return out.Events, err
}

// Endpoint is get-endpoint's answer.
type Endpoint struct {
	Endpoint string `json:"endpoint"`
	URL      string `json:"url"`
	Revision string `json:"revision"`
	Replica  string `json:"replica"`
}

// GetEndpoint calls the public get-endpoint (no token). It returns the HTTP
// status (0 when nothing answered) and whether the answer said it may be
// stale (etcd unreachable).
func (a *API) GetEndpoint(ctx context.Context, app string) (ep Endpoint, code int, stale bool, err error) {
	req, err := http.NewRequestWithContext(ctx, "GET", a.url("/api/v1/tenants/default/apps/"+app+"/endpoint"), nil)
	if err != nil {
		return ep, 0, false, err
	}
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return ep, 0, false, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return ep, resp.StatusCode, false, fmt.Errorf("get-endpoint: %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return ep, 200, resp.Header.Get("X-Discovery-Stale") != "", json.Unmarshal(b, &ep)
}

// Via rewrites an endpoint URL (ws://host/s/...) to go through the gateway at
// gateway (host:port) instead: any gateway serves any route, and clients are
// spread over them the way a load balancer in front of them would.
func Via(endpoint, gateway string) string {
	u, err := url.Parse(endpoint)
	if err != nil || gateway == "" {
		return endpoint
	}
	u.Host = gateway
	return u.String()
}
