package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The environment variables the platform sets for every replica.
const (
	EnvAPI        = "DISCOVERY_API"            // the API as replicas reach it
	EnvPublicAPI  = "DISCOVERY_PUBLIC_API_URL" // the API as game clients reach it
	EnvLeaseToken = "DISCOVERY_LEASE_TOKEN"    // the replica's capability
	EnvTenant     = "DISCOVERY_TENANT"
	EnvApp        = "DISCOVERY_APP"
	EnvRevision   = "DISCOVERY_REVISION"
	EnvReplica    = "DISCOVERY_REPLICA"
)

// Headers of the protocol.
const (
	// LeaseTokenHeader carries the replica's capability to the API.
	LeaseTokenHeader = "X-Discovery-Lease-Token"
	// ReplicaHeader names the calling replica in a handoff.
	ReplicaHeader = "X-Discovery-Replica"
	// TicketHeader carries a handoff's ticket: on the platform's POST of a
	// state to the receiving replica, and on the WebSocket upgrade the
	// gateway passes on once it has checked and used up the ticket.
	TicketHeader = "X-Discovery-Ticket"
)

// requestTimeout bounds one call to the API when the caller's context has
// no deadline. A handoff may wait for a replica to start (scale from zero)
// and for the target to take the state (5 s).
const requestTimeout = 30 * time.Second

// Replica is one replica's identity and its way to talk to the platform.
// Make it with FromEnv (or fill the exported fields); it must not be copied
// once used, since it keeps the state of drain notices.
type Replica struct {
	Tenant   string
	App      string
	Revision string
	// Name is the replica's id within its revision, e.g. "r-0".
	Name string
	// API is the platform's API as replicas reach it ($DISCOVERY_API), with
	// no trailing slash.
	API string
	// PublicAPI is the API as game clients reach it
	// ($DISCOVERY_PUBLIC_API_URL): for telling clients where get-endpoint
	// is. Empty when the platform does not say.
	PublicAPI string
	// LeaseToken is the replica's capability ($DISCOVERY_LEASE_TOKEN): it
	// takes leases, follows notices and hands players off for this
	// revision only. Keep it secret.
	LeaseToken string

	// HTTPClient makes the calls to the API; nil means http.DefaultClient.
	// It must not have a Timeout shorter than the notice stream is meant to
	// stay open (calls other than the stream are bounded by their context,
	// 30 s when it has no deadline).
	HTTPClient *http.Client
	// Log, if set, is told what the SDK does on its own: notice stream
	// reconnects, lease renewals that failed.
	Log *slog.Logger

	notices dispatcher
	// streamIdle overrides how long a silent notice stream is trusted
	// (tests); zero means streamIdleTimeout.
	streamIdle time.Duration
}

// FromEnv reads the replica's identity and the platform's URLs from the
// environment the platform sets. It fails with ErrMissingEnv, naming every
// variable missing, when the process does not run on the platform.
func FromEnv() (*Replica, error) {
	return FromLookup(os.Getenv)
}

// FromLookup is FromEnv reading variables through getenv (os.Getenv, or a
// map's lookup in tests and in programs that parse their configuration in
// one place). DISCOVERY_PUBLIC_API_URL may be missing; the others may not.
func FromLookup(getenv func(string) string) (*Replica, error) {
	r := &Replica{
		API:        strings.TrimRight(strings.TrimSpace(getenv(EnvAPI)), "/"),
		PublicAPI:  strings.TrimRight(strings.TrimSpace(getenv(EnvPublicAPI)), "/"),
		LeaseToken: strings.TrimSpace(getenv(EnvLeaseToken)),
		Tenant:     strings.TrimSpace(getenv(EnvTenant)),
		App:        strings.TrimSpace(getenv(EnvApp)),
		Revision:   strings.TrimSpace(getenv(EnvRevision)),
		Name:       strings.TrimSpace(getenv(EnvReplica)),
	}
	var missing []string
	for _, v := range []struct{ name, value string }{
		{EnvAPI, r.API}, {EnvLeaseToken, r.LeaseToken}, {EnvTenant, r.Tenant},
		{EnvApp, r.App}, {EnvRevision, r.Revision}, {EnvReplica, r.Name},
	} {
		if v.value == "" {
			missing = append(missing, v.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s not set (is this process run by the Discovery platform?)", ErrMissingEnv, strings.Join(missing, ", "))
	}
	for _, v := range []struct{ name, value string }{{EnvAPI, r.API}, {EnvPublicAPI, r.PublicAPI}} {
		if v.value == "" {
			continue
		}
		if u, err := url.Parse(v.value); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("discovery: %s=%q: want an http:// or https:// URL", v.name, v.value)
		}
	}
	return r, nil
}

func (r *Replica) String() string {
	return r.Tenant + "/" + r.App + " revision " + r.Revision + " replica " + r.Name
}

// revisionPath is the API path of the replica's revision, followed by more.
func (r *Replica) revisionPath(more ...string) string {
	parts := append([]string{"tenants", r.Tenant, "apps", r.App, "revisions", r.Revision}, more...)
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return "/api/v1/" + strings.Join(parts, "/")
}

func (r *Replica) client() *http.Client {
	if r.HTTPClient != nil {
		return r.HTTPClient
	}
	return http.DefaultClient
}

func (r *Replica) logger() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.New(slog.DiscardHandler)
}

// call is one request to the API and its answer.
type call struct {
	op     string // for errors: "handoff", "take lease"…
	method string
	path   string
	header http.Header
	body   []byte
	// capability sends the replica's lease token.
	capability bool
	// ok lists the statuses that mean success.
	ok []int
	// out, if set, receives the decoded JSON answer.
	out any
}

// do makes c and maps an error status to *Error.
func (r *Replica) do(ctx context.Context, c call) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, requestTimeout)
		defer cancel()
	}
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, r.API+c.path, body)
	if err != nil {
		return fmt.Errorf("discovery: %s: %w", c.op, err)
	}
	for k, vs := range c.header {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "application/json")
	if c.capability {
		req.Header.Set(LeaseTokenHeader, r.LeaseToken)
	}
	resp, err := r.client().Do(req)
	if err != nil {
		return fmt.Errorf("discovery: %s: %w", c.op, err)
	}
	defer resp.Body.Close()
	if !slices.Contains(c.ok, resp.StatusCode) {
		return responseError(c.op, resp)
	}
	if c.out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(c.out); err != nil {
		return fmt.Errorf("discovery: %s: decode the answer: %w", c.op, err)
	}
	return nil
}

// responseError reads an error answer: {"error":{"code","message"}} when
// the platform wrote one, else the start of the body as the message.
func responseError(op string, resp *http.Response) *Error {
	e := &Error{Op: op, Status: resp.StatusCode}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &body) == nil && (body.Error.Code != "" || body.Error.Message != "") {
		e.Code, e.Message = body.Error.Code, body.Error.Message
	} else {
		e.Message = strings.TrimSpace(string(b))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200] + "…"
		}
	}
	return e
}
