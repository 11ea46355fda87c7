package api

// What a live view (Bridge, the web dashboard) reads besides the plain REST
// resources: the activity log as a stream of Server-Sent Events, the session
// counts per revision and replica, and who the caller is (so a page shows only
// the buttons the caller may use; the routes refuse the others anyway).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/authz"
	"github.com/discovery-platform/discovery/endpoint"
)

// SessionCounts reads the platform's session table (endpoint.Sessions):
// connections, reservations and app-held leases over every instance.
type SessionCounts interface {
	Revision(tenant, app, rev string) apps.Sessions
	Replica(tenant, app, rev, replica string) apps.Sessions
}

// Event stream tuning.
const (
	// streamPoll is how often a stream looks for new events.
	streamPoll = 500 * time.Millisecond
	// streamHeartbeat is how often a stream sends a comment: proxies keep it
	// open, and a client that went away is noticed within a few beats (the
	// connection's second write after it left fails, then the stream's), which
	// frees its slot. 15 s would do for proxies, but would hold a closed tab's
	// slot for most of a minute.
	streamHeartbeat = 2 * time.Second
	// streamAppCheck is how often a stream checks that its app still exists.
	streamAppCheck = 5 * time.Second
	// streamsPerSubject bounds one subject's open streams (a dashboard opens
	// one per app page; a few tabs are fine, a loop is not).
	streamsPerSubject = 8
)

// streamSlots counts open streams per subject.
type streamSlots struct {
	mu   sync.Mutex
	open map[string]int
	max  int
}

func (s *streamSlots) take(subject string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[subject] >= s.max {
		return false
	}
	s.open[subject]++
	return true
}

func (s *streamSlots) give(subject string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[subject]--; s.open[subject] <= 0 {
		delete(s.open, subject)
	}
}

// eventStream returns the handler of GET .../apps/{app}/events/stream: the
// recent events (or those after ?after= / Last-Event-ID), then each new one
// as it is written, as Server-Sent Events (id = event id, data = the event's
// JSON), with a comment every few seconds. It ends when the client goes away,
// the server shuts down, the app is deleted ("event: deleted") or the
// caller's token or role is revoked.
func (s *Server) eventStream() fiber.Handler {
	slots := &streamSlots{open: map[string]int{}, max: streamsPerSubject}
	return func(c *fiber.Ctx) error {
		limit, err := queryInt(c, "limit", 100, 1, apps.MaxEventsPerApp)
		if err != nil {
			return err
		}
		filter, err := eventFilter(c)
		if err != nil {
			return err
		}
		// Copies: fiber's strings point into buffers it reuses once the
		// handler returns, and the stream outlives the handler.
		p := principal(c)
		t, a, sub := strings.Clone(c.Params("tenant")), strings.Clone(c.Params("app")), p.Subject
		after := strings.Clone(c.Query("after", c.Get("Last-Event-ID")))
		ctx, cancel := s.ctx(c)
		first, err := s.filteredEvents(ctx, t, a, after, limit, filter)
		cancel()
		if err != nil {
			return err
		}
		if !slots.take(sub) {
			return fiber.NewError(fiber.StatusTooManyRequests, fmt.Sprintf("subject %s has %d event streams open already", sub, streamsPerSubject))
		}
		token, _ := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
		token = strings.Clone(strings.TrimSpace(token))
		c.Set(fiber.HeaderContentType, "text/event-stream; charset=utf-8")
		c.Set(fiber.HeaderCacheControl, "no-cache")
		c.Set("X-Accel-Buffering", "no")
		shutdown := c.Context().Done() // closed when the server shuts down
		c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
			defer slots.give(sub)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				select {
				case <-shutdown:
					cancel()
				case <-ctx.Done():
				}
			}()
			st := &stream{s: s, w: w, tenant: t, app: a, who: p, token: token, last: after, filter: filter}
			st.run(ctx, first)
		})
		return nil
	}
}

// stream is one open event stream.
type stream struct {
	s           *Server
	w           *bufio.Writer
	tenant, app string
	who         authz.Principal
	token       string
	last        string // id of the last event sent or passed over
	filter      apps.EventFilter
}

func (st *stream) run(ctx context.Context, first []apps.Event) {
	// A first comment, flushed: the client gets the headers now, not with the
	// first event.
	if _, err := st.w.WriteString(": discovery activity log\n\n"); err != nil || st.w.Flush() != nil {
		return
	}
	if st.send(first) != nil {
		return
	}
	poll, beat, check := time.NewTicker(streamPoll), time.NewTicker(streamHeartbeat), time.NewTicker(streamAppCheck)
	defer poll.Stop()
	defer beat.Stop()
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			if _, err := st.w.WriteString(": keep-alive\n\n"); err != nil || st.w.Flush() != nil {
				return
			}
		case <-check.C:
			if !st.appExists(ctx) {
				return
			}
		case <-poll.C:
			if !st.stillAllowed() {
				return
			}
			pctx, cancel := context.WithTimeout(ctx, st.s.cfg.Timeout)
			evs, err := st.s.cfg.Apps.Store.ListEvents(pctx, st.tenant, st.app, st.last, apps.MaxEventsPerApp)
			cancel()
			if err != nil {
				// etcd unreachable for a moment: keep the stream, try again.
				st.s.cfg.Logger.Debug("event stream: list events", "tenant", st.tenant, "app", st.app, "err", err)
				continue
			}
			if st.send(evs) != nil {
				return
			}
		}
	}
}

// send writes events and flushes; an error means the client went away.
func (st *stream) send(evs []apps.Event) error {
	if len(evs) == 0 {
		return nil
	}
	for _, ev := range evs {
		st.last = ev.ID
		if !st.filter.Match(ev) {
			continue
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(st.w, "id: %s\ndata: %s\n\n", ev.ID, b); err != nil {
			return err
		}
	}
	return st.w.Flush()
}

// stillAllowed re-checks what authenticate and authorize checked when the
// stream opened (both in memory): a revoked token or role, or an expired
// token, ends an open stream too.
func (st *stream) stillAllowed() bool {
	az := st.s.cfg.Authz
	if az == nil {
		return true
	}
	if _, err := az.Tokens.Verify(st.token); err != nil {
		return false
	}
	return az.Decide(st.who, authz.Request{Tenant: st.tenant, Object: "events", Action: authz.Read}) == nil
}

// appExists reports whether the app is still there; a deleted app ends the
// stream with "event: deleted".
func (st *stream) appExists(ctx context.Context) bool {
	s := st.s
	gctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	_, err := s.cfg.Apps.Store.GetApp(gctx, st.tenant, st.app)
	cancel()
	if errors.Is(err, apps.ErrNotFound) {
		_, _ = st.w.WriteString("event: deleted\ndata: {}\n\n")
		_ = st.w.Flush()
		return false
	}
	return true
}

// sessionsView is GET .../apps/{app}/sessions: open sessions (connections,
// reservations, app-held leases) of each serving revision and its replicas.
type sessionsView struct {
	// Revisions and Replicas are the totals: what keeps a revision alive
	// and counts against max_sessions.
	Revisions map[string]int `json:"revisions"`
	Replicas  map[string]int `json:"replicas"`
	// RevisionKinds and ReplicaKinds split them: open sockets,
	// get-endpoint reservations no socket has used yet, app-held leases.
	RevisionKinds map[string]sessionKinds `json:"revision_kinds"`
	ReplicaKinds  map[string]sessionKinds `json:"replica_kinds"`
	// Known is false until the platform's session table has loaded.
	Known bool `json:"known"`
}

// sessionKinds is one count split by kind.
type sessionKinds struct {
	Connections  int `json:"connections"`
	Reservations int `json:"reservations"`
	Leases       int `json:"leases"`
}

func kindsOf(n apps.Sessions) sessionKinds {
	return sessionKinds{Connections: n.Connections, Reservations: n.Reservations, Leases: n.Leases}
}

func (s *Server) sessions(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	t, a := c.Params("tenant"), c.Params("app")
	snap, err := s.cfg.Apps.Load(ctx, t, a)
	if err != nil {
		return err
	}
	v := sessionsView{Revisions: map[string]int{}, Replicas: map[string]int{}, RevisionKinds: map[string]sessionKinds{},
		ReplicaKinds: map[string]sessionKinds{}, Known: s.cfg.Sessions != nil}
	if s.cfg.Sessions == nil {
		return c.JSON(v)
	}
	for _, rev := range snap.Revisions {
		if rev.State.Terminal() {
			continue
		}
		n := s.cfg.Sessions.Revision(t, a, rev.ID)
		v.Revisions[rev.ID] = n.Count
		v.RevisionKinds[rev.ID] = kindsOf(n)
		v.Known = v.Known && n.Known
	}
	for _, r := range snap.Replicas {
		if _, serving := v.Revisions[r.Revision]; serving {
			n := s.cfg.Sessions.Replica(t, a, r.Revision, r.ID)
			v.Replicas[r.ID] = n.Count
			v.ReplicaKinds[r.ID] = kindsOf(n)
		}
	}
	return c.JSON(v)
}

// whoamiView is GET /whoami?tenant=X: the caller, and what it may do in X.
type whoamiView struct {
	Subject string `json:"subject"`
	Admin   bool   `json:"admin"`
	// Scope is the tenant the caller's token is bound to ("" = unscoped).
	Scope  string `json:"scope,omitempty"`
	Tenant string `json:"tenant,omitempty"`
	// Role is the caller's role in Tenant ("" for none; admins may have none).
	Role string `json:"role"`
	// Can maps "object:action" to whether the caller may do it in Tenant.
	Can map[string]bool `json:"can"`
}

// whoamiChecks are the permissions a page asks about.
var whoamiChecks = [][2]string{
	{"apps", authz.Read}, {"apps", authz.Write}, {"revisions", authz.Read}, {"revisions", authz.Write},
	{"events", authz.Read}, {"logs", authz.Read}, {"members", authz.Read}, {"members", authz.Write},
	{"quota", authz.Read}, {"tokens", authz.Write}, {"leases", authz.Read}, {"leases", authz.Write},
}

func (s *Server) whoami(c *fiber.Ctx) error {
	p := principal(c)
	v := whoamiView{Subject: p.Subject, Scope: p.Tenant, Admin: s.isAdmin(c), Tenant: c.Query("tenant"), Can: map[string]bool{}}
	if v.Tenant != "" {
		if err := apps.ValidName("tenant", v.Tenant); err != nil {
			return fmt.Errorf("%w: %v", errBadRequest, err)
		}
		if s.cfg.Authz != nil && (p.Tenant == "" || p.Tenant == v.Tenant) {
			v.Role = s.cfg.Authz.RoleIn(p.Subject, v.Tenant)
		}
		for _, chk := range whoamiChecks {
			v.Can[chk[0]+":"+chk[1]] = s.allowed(c, authz.Request{Tenant: v.Tenant, Object: chk[0], Action: chk[1]})
		}
		// Deploying a raw command also needs the right to run one (admins,
		// or a tenant an admin trusts).
		v.Can["commands:write"] = v.Can["revisions:write"] && (s.cfg.Authz == nil || s.cfg.Authz.MayDeployCommand(c.UserContext(), v.Tenant) == nil)
	}
	v.Can["tenants:write"] = v.Admin
	v.Can["quota:write"] = v.Admin
	v.Can["images:write"] = v.Admin
	return c.JSON(v)
}

// historyView is an app's session history.
type historyView struct {
	StepSeconds float64                     `json:"step_seconds"`
	KeepSeconds float64                     `json:"keep_seconds"`
	Revisions   map[string][]endpoint.Point `json:"revisions"`
}

// sessionHistory answers GET .../apps/{app}/sessions/history.
func (s *Server) sessionHistory(c *fiber.Ctx) error {
	if s.cfg.History == nil {
		return fiber.NewError(fiber.StatusNotImplemented, "this instance keeps no session history")
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	t, a := c.Params("tenant"), c.Params("app")
	if _, err := s.cfg.Apps.GetApp(ctx, t, a); err != nil {
		return err
	}
	h := s.cfg.History
	return c.JSON(historyView{StepSeconds: h.Step.Seconds(), KeepSeconds: h.Keep.Seconds(), Revisions: h.Of(t, a)})
}
