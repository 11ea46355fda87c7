package endpoint

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/discovery-platform/discovery/apps"
)

// RouteLookup is the read-only route table the gateway needs.
type RouteLookup interface {
	Lookup(tenant, app, rev, replica string) (rt Route, ok bool)
	// CatchUp returns once the table reflects every write etcd has committed
	// (see catchup.go); the gateway asks before it calls a replica gone.
	CatchUp(ctx context.Context) error
}

// catchUpWait bounds how long a request for a replica the table does not
// know waits for the table to catch up (etcd unreachable: this long, then
// the answer from memory).
const catchUpWait = 2 * time.Second

// Splicer moves bytes between an upgraded client connection and its replica
// until either ends (endpoint/relay implements it with event loops that hold no
// goroutine and no buffer per idle session).
type Splicer interface {
	Splice(a, b net.Conn, aPending, bPending []byte, onClose func()) error
}

// PathPrefix starts every endpoint URL's path: /s/{tenant}/{app}/{rev}/{replica}/.
const PathPrefix = "/s/"

// TicketParam is the query parameter that carries a handoff ticket on a
// socket URL; TicketHeader is how the gateway passes a checked ticket on to
// the replica (a client's own header of that name is removed).
const (
	TicketParam  = "discovery_ticket"
	TicketHeader = "X-Discovery-Ticket"
)

// Gateway proxies endpoint URLs to the replica they pin, with the prefix
// stripped. WebSocket (and any Upgrade) sessions are handed to the Splicer and
// counted per replica while open; plain HTTP goes through httputil.ReverseProxy.
// It never sends a request to any replica but the pinned one: a replica that is
// gone answers 410, and so does one that never existed, of whatever app or
// tenant: the answer tells nobody which apps exist.
type Gateway struct {
	routes  RouteLookup
	counter *Counter
	relay   Splicer
	proxy   *httputil.ReverseProxy
	dialer  net.Dialer
	log     *slog.Logger
	// APIBase is prefixed to the get-endpoint hint in 410 answers ("" = path only).
	APIBase string
	// Tickets uses up handoff tickets presented on a socket URL; without
	// it such a socket is refused (410).
	Tickets interface {
		UseTicket(ctx context.Context, id string, target apps.ReplicaID) (apps.Ticket, error)
	}
	book sessionBook
}

// SetLimits bounds the sessions this gateway holds per client address and per
// tenant (call before serving).
func (g *Gateway) SetLimits(l SessionLimits) { g.book.limits = l }

type routeCtxKey struct{}

// NewGateway returns a gateway over a route table, counting sessions in
// counter and relaying upgraded sessions with relay.
func NewGateway(routes RouteLookup, counter *Counter, relay Splicer, log *slog.Logger) *Gateway {
	if log == nil {
		log = slog.Default()
	}
	g := &Gateway{routes: routes, counter: counter, relay: relay, log: log,
		dialer: net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}}
	transport := &http.Transport{
		DialContext:           g.dialer.DialContext,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ForceAttemptHTTP2:     false,
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			p := pr.In.Context().Value(routeCtxKey{}).(pinned)
			pr.SetURL(&url.URL{Scheme: "http", Host: p.route.Address})
			pr.Out.URL.Path, pr.Out.URL.RawPath = p.rest, ""
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
			pr.Out.Header.Set("X-Forwarded-Prefix", p.prefix)
		},
		Transport:     transport,
		FlushInterval: -1, // stream: server-sent events and long polls must not wait on a buffer
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			status := statusFor(err)
			if status == 0 {
				return // the client went away; nobody to answer
			}
			writeError(w, status, "bad_gateway", "the replica did not answer: "+err.Error(), nil)
		},
	}
	return g
}

// statusFor maps a proxying error to the status the client gets (traefik's
// ComputeStatusCode); 0 means the client itself cancelled.
func statusFor(err error) int {
	switch {
	case errors.Is(err, context.Canceled):
		return 0
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

type pinned struct {
	route  Route
	rest   string // path after the prefix, starting with "/"
	prefix string // the stripped prefix
}

// parsePath splits /s/{tenant}/{app}/{rev}/{replica}/rest.
func parsePath(p string) (t, a, rev, rep, rest string, ok bool) {
	s, found := strings.CutPrefix(p, PathPrefix)
	if !found {
		return
	}
	parts := strings.SplitN(s, "/", 5)
	if len(parts) < 4 {
		return
	}
	for _, x := range parts[:4] {
		if x == "" {
			return
		}
	}
	rest = "/"
	if len(parts) == 5 {
		rest += parts[4]
	}
	return parts[0], parts[1], parts[2], parts[3], rest, true
}

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Only the gateway says a ticket was checked.
	r.Header.Del(TicketHeader)
	t, a, rev, rep, rest, ok := parsePath(r.URL.Path)
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "no route: endpoint URLs look like /s/{tenant}/{app}/{revision}/{replica}/", nil)
		return
	}
	route, found := g.routes.Lookup(t, a, rev, rep)
	if (!found || !route.Routable()) && !gone(route, found) {
		// Perhaps not gone but new: another instance handed out a replica
		// this table has not heard of yet. Look again once caught up.
		ctx, cancel := context.WithTimeout(r.Context(), catchUpWait)
		if err := g.routes.CatchUp(ctx); err == nil {
			route, found = g.routes.Lookup(t, a, rev, rep)
		} else {
			g.log.Debug("route table could not catch up; answering from memory", "tenant", t, "app", a, "revision", rev, "replica", rep, "err", err)
		}
		cancel()
	}
	if !found || !route.Routable() {
		g.writeGone(w, t, a, fmt.Sprintf("replica %s of %s/%s revision %s is gone; call get-endpoint again for a new endpoint", rep, t, a, rev))
		return
	}
	if reservedPath(route, rest) {
		writeError(w, http.StatusForbidden, "forbidden", "this path of the app is called by the platform only (its drain_hook or handoff_path)", nil)
		return
	}
	prefix := PathPrefix + strings.Join([]string{t, a, rev, rep}, "/")
	if !strings.HasPrefix(r.URL.Path, prefix+"/") {
		// Without the trailing slash a page's relative links would miss the prefix.
		u := *r.URL
		u.Path = prefix + "/"
		http.Redirect(w, r, u.String(), http.StatusPermanentRedirect)
		return
	}
	p := pinned{route: route, rest: rest, prefix: prefix}
	if isUpgrade(r) {
		g.upgrade(w, r, p)
		return
	}
	g.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeCtxKey{}, p)))
}

// reservedPath reports whether rest is one of the app's paths only the
// platform calls, however it is spelled (dot segments, doubled or trailing
// slashes, the percent-encoding the URL's path was decoded from).
func reservedPath(rt Route, rest string) bool {
	if len(rt.Reserved) == 0 {
		return false
	}
	p := path.Clean("/" + rest)
	for _, r := range rt.Reserved {
		if strings.EqualFold(p, r) {
			return true
		}
	}
	return false
}

// writeGone answers 410 with the app's get-endpoint URL, readable from any
// origin (a game page's SDK asks the http URL of a socket that failed).
func (g *Gateway) writeGone(w http.ResponseWriter, tenant, app, msg string) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	hint := g.APIBase + fmt.Sprintf("/api/v1/tenants/%s/apps/%s/endpoint", tenant, app)
	writeError(w, http.StatusGone, "gone", msg, map[string]string{"get_endpoint": hint})
}

// useTicket checks and uses up the handoff ticket a socket URL carries, if
// any; it reports the ticket ("" without one) and false after answering
// 410 for one that cannot be used.
func (g *Gateway) useTicket(w http.ResponseWriter, r *http.Request, p pinned) (string, bool) {
	if !strings.Contains(r.URL.RawQuery, TicketParam) {
		return "", true
	}
	id := r.URL.Query().Get(TicketParam)
	if id == "" {
		return "", true
	}
	err := fmt.Errorf("handoff tickets are not accepted here: %w", apps.ErrGone)
	if g.Tickets != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		_, err = g.Tickets.UseTicket(ctx, id, apps.ReplicaID{Tenant: p.route.Tenant, App: p.route.App, Revision: p.route.Revision, Replica: p.route.Replica})
		cancel()
	}
	if err != nil {
		g.log.Info("handoff ticket refused", "tenant", p.route.Tenant, "app", p.route.App, "replica", p.route.Replica, "err", err)
		g.writeGone(w, p.route.Tenant, p.route.App, "the handoff ticket cannot be used ("+err.Error()+"); call get-endpoint for a new endpoint")
		return "", false
	}
	return id, true
}

// gone reports a route that can never lead anywhere again: its replica is
// being stopped or has exited, or its revision is over. Those states never
// revert, so no newer table would route it.
func gone(rt Route, found bool) bool {
	return found && (rt.Stopping || rt.State == apps.ReplicaExited || rt.State == apps.ReplicaStopping || rt.RevisionState.Terminal())
}

func isUpgrade(r *http.Request) bool {
	if r.Header.Get("Upgrade") == "" {
		return false
	}
	for _, v := range r.Header.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// upgrade does the handshake by hand (dial, write the request, read the
// answer), passes a 101 through, then hands both connections to the relay: no
// goroutine of ours stays with the session.
func (g *Gateway) upgrade(w http.ResponseWriter, r *http.Request, p pinned) {
	addr, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		addr = r.RemoteAddr
	}
	if !g.admit(w, addr, p.route.Tenant) {
		return
	}
	held := true
	defer func() {
		if held {
			g.book.release(addr, p.route.Tenant)
		}
	}()
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	upstream, err := g.dialer.DialContext(ctx, "tcp", p.route.Address)
	if err != nil {
		writeError(w, statusFor(err), "bad_gateway", "the replica did not answer: "+err.Error(), nil)
		return
	}
	// A handoff ticket is used up only once its replica has answered: a
	// player turned away before (a full gateway, a replica gone) keeps it
	// unused, and the platform counts it among those that could not arrive.
	ticket, ok := g.useTicket(w, r, p)
	if !ok {
		upstream.Close()
		return
	}
	resp, br, ok := askReplica(ctx, w, r, p, upstream, ticket)
	if !ok {
		return
	}
	_ = upstream.SetDeadline(time.Time{})
	client, cbuf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		upstream.Close()
		writeError(w, http.StatusInternalServerError, "internal", "cannot take over the connection", nil)
		return
	}
	_ = client.SetDeadline(time.Time{})
	// Count the session before the client learns it is connected, so a
	// count read right after the handshake already includes it.
	ref := apps.ReplicaID{Tenant: p.route.Tenant, App: p.route.App, Revision: p.route.Revision, Replica: p.route.Replica}
	g.counter.Connect(ref)
	if err := write101(client, resp); err != nil {
		g.counter.Disconnect(ref)
		client.Close()
		upstream.Close()
		return
	}
	clientPending := buffered(cbuf.Reader)
	upstreamPending := buffered(br)
	tenant := p.route.Tenant
	if err := g.relay.Splice(client, upstream, clientPending, upstreamPending, func() {
		g.counter.Disconnect(ref)
		g.book.release(addr, tenant)
	}); err != nil {
		g.counter.Disconnect(ref)
		client.Close()
		upstream.Close()
		return
	}
	held = false // released by the relay when the session ends
}

// admit takes a session's place in the book for its client address and
// tenant, or answers why not (429, 503).
func (g *Gateway) admit(w http.ResponseWriter, addr, tenant string) bool {
	switch g.book.acquire(addr, tenant) {
	case addressFull:
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, "too_many_sessions", fmt.Sprintf("%s already holds %d sessions on this gateway", addr, g.book.limits.PerAddress), nil)
		return false
	case tenantFull:
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "tenant_sessions_full", fmt.Sprintf("tenant %s holds its maximum of %d sessions on this gateway", tenant, g.book.limits.PerTenant), nil)
		return false
	}
	return true
}

// askReplica sends the client's upgrade request to the replica (its path
// under the replica, the forwarding headers, the ticket) and reads its
// answer: a 101 to splice (with the reader holding any bytes after it), or
// anything else, passed on to the client as it is (false; upstream closed,
// as on an error, which is answered too).
func askReplica(ctx context.Context, w http.ResponseWriter, r *http.Request, p pinned, upstream net.Conn, ticket string) (*http.Response, *bufio.Reader, bool) {
	out := r.Clone(ctx)
	out.URL = &url.URL{Path: p.rest, RawQuery: r.URL.RawQuery}
	out.RequestURI = ""
	out.Header.Set("X-Forwarded-Prefix", p.prefix)
	if ticket != "" {
		out.Header.Set(TicketHeader, ticket)
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		out.Header.Set("X-Forwarded-For", host)
	}
	_ = upstream.SetDeadline(time.Now().Add(10 * time.Second))
	if err := out.Write(upstream); err != nil {
		upstream.Close()
		writeError(w, http.StatusBadGateway, "bad_gateway", "the replica did not take the request: "+err.Error(), nil)
		return nil, nil, false
	}
	br := bufio.NewReader(upstream)
	resp, err := http.ReadResponse(br, out)
	if err != nil {
		upstream.Close()
		writeError(w, statusFor(err), "bad_gateway", "the replica did not answer the upgrade: "+err.Error(), nil)
		return nil, nil, false
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// The app refused the upgrade: pass its answer on as it is.
		defer upstream.Close()
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = bufio.NewReader(resp.Body).WriteTo(w)
		return nil, nil, false
	}
	return resp, br, true
}

// write101 passes the replica's 101 answer on verbatim: status line and
// headers, no body.
func write101(c net.Conn, resp *http.Response) error {
	bw := bufio.NewWriterSize(c, 512)
	fmt.Fprintf(bw, "HTTP/1.1 101 %s\r\n", http.StatusText(http.StatusSwitchingProtocols))
	if err := resp.Header.Write(bw); err != nil {
		return err
	}
	bw.WriteString("\r\n")
	return bw.Flush()
}

func buffered(br *bufio.Reader) []byte {
	n := br.Buffered()
	if n == 0 {
		return nil
	}
	b, _ := br.Peek(n)
	return append([]byte(nil), b...)
}

// writeError answers with the platform's JSON error body, plus extra fields.
func writeError(w http.ResponseWriter, status int, code, msg string, extra map[string]string) {
	body := map[string]any{"error": map[string]string{"code": code, "message": msg}}
	for k, v := range extra {
		body[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
