// Package client is a Go client for Discovery's REST API (/api/v1): typed
// requests and results, a context on every call, and errors that keep the API's
// code and message (see Error). dsh is built on it; so can any Go program that
// scripts the platform:
//
//	c, err := client.New(client.Config{URL: "http://127.0.0.1:4000", Token: token})
//	rev, err := c.Deploy(ctx, "default", "hello", client.RevisionSpec{Command: []string{"./bin/hello"}})
//	rev, err = c.WaitRevision(ctx, "default", "hello", rev.ID, client.Active)
//
// Every method that names a tenant takes it explicitly; the client holds only
// where the platform is and who is calling (a token bound to one tenant, or a
// platform admin's: see TokenRequest). EnsureApp and EnsureRevision make
// "code as the source of truth" scripts idempotent: they change the platform
// only where it differs from what the code declares.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultURL is where a platform started with `make run` serves its API.
const DefaultURL = "http://127.0.0.1:4000"

// DefaultTimeout bounds one call whose context has no deadline of its own.
const DefaultTimeout = 30 * time.Second

// Config says where the platform is and who calls it.
type Config struct {
	// URL is the API's base URL (scheme, host, port); DefaultURL when empty.
	URL string
	// Token is sent as "Authorization: Bearer <token>" when not empty.
	Token string
	// Timeout bounds each call whose context carries no deadline: DefaultTimeout
	// when 0, no bound when negative. Polling helpers (WaitRevision,
	// FollowEvents) are bounded by their context only.
	Timeout time.Duration
	// PollInterval is how often WaitRevision and FollowEvents ask again
	// (default 200ms for WaitRevision, growing to 1s; 500ms for FollowEvents).
	PollInterval time.Duration
	// HTTPClient sends the requests; http.DefaultClient's transport when nil.
	HTTPClient *http.Client
	// UserAgent names the caller in the platform's logs.
	UserAgent string
}

// Client calls one platform's API. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	token     string
	timeout   time.Duration
	poll      time.Duration
	hc        *http.Client
	userAgent string
}

// New checks the configuration and returns a client. It does not contact the
// platform; Ready does.
func New(cfg Config) (*Client, error) {
	raw := strings.TrimSpace(cfg.URL)
	if raw == "" {
		raw = DefaultURL
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: platform URL %q: want http(s)://host:port", cfg.URL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	c := &Client{base: u, token: strings.TrimSpace(cfg.Token), timeout: cfg.Timeout, poll: cfg.PollInterval,
		hc: cfg.HTTPClient, userAgent: cfg.UserAgent}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.hc == nil {
		c.hc = &http.Client{}
	}
	if c.userAgent == "" {
		c.userAgent = "discovery-client"
	}
	return c, nil
}

// URL returns the platform's base URL.
func (c *Client) URL() string { return c.base.String() }

// HasToken reports whether calls carry a bearer token.
func (c *Client) HasToken() bool { return c.token != "" }

// Ready asks the platform whether it can serve (GET /readyz): nil when it
// can, an *Error (code "degraded" or "unavailable") when etcd is unreachable,
// ErrUnreachable when nothing answers.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/readyz", nil, nil, nil)
}

// apiPath joins escaped segments under /api/v1.
func apiPath(segments ...string) string {
	var b strings.Builder
	b.WriteString("/api/v1")
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// do sends one request and decodes a JSON answer into out (a *string gets the
// raw body). Every error it returns is an *Error (the API answered with an
// error), wraps ErrUnreachable (nothing answered), or wraps the context's error.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	if c.timeout > 0 {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, c.timeout)
			defer cancel()
		}
	}
	// path is escaped already (apiPath): keep its escapes as they are, so a
	// "/" or "%" inside a segment is not escaped a second time.
	u := *c.base
	u.RawPath = c.base.EscapedPath() + path
	unescaped, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	u.Path = unescaped
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("client: encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.transportError(ctx, method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return c.transportError(ctx, method, path, err)
	}
	if resp.StatusCode >= 400 {
		return decodeError(resp, data)
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *string:
		*o = string(data)
		return nil
	default:
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("client: %s %s: unexpected answer (%d bytes): %w", method, path, len(data), err)
		}
		return nil
	}
}

// transportError explains a request that got no answer.
func (c *Client) transportError(ctx context.Context, method, path string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return fmt.Errorf("%s %s: the platform at %s did not answer in time: %w", method, path, c.base, ctxErr)
		}
		return fmt.Errorf("%s %s: %w", method, path, ctxErr)
	}
	return &UnreachableError{URL: c.base.String(), Err: err}
}

func decodeError(resp *http.Response, data []byte) error {
	e := &Error{Status: resp.StatusCode}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
	} else {
		e.Code = strings.ReplaceAll(strings.ToLower(http.StatusText(resp.StatusCode)), " ", "_")
		e.Message = strings.TrimSpace(string(data))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200] + "…"
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil {
			e.RetryAfter = time.Duration(n) * time.Second
		}
	}
	return e
}
