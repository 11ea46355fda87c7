package endpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/discovery-platform/discovery/apps"
)

// Errors of get-endpoint. Both answer 503 with Retry-After: the app exists but
// cannot take a player right now.
var (
	ErrNoCapacity = errors.New("endpoint: no replica has room")
	ErrNotServing = errors.New("endpoint: app has no ready replica")
	// ErrTooManyReservations: one client address holds too many unconsumed
	// reservations (429): an anonymous caller cannot reserve an app's capacity.
	ErrTooManyReservations = errors.New("endpoint: too many reservations from this address")
)

var endpointLatency = promauto.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "discovery_get_endpoint_seconds",
	Help:    "get-endpoint latency by outcome (cold starts included).",
	Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .05, .25, 1, 5, 30},
}, []string{"outcome"})

var (
	latencyOK    = endpointLatency.WithLabelValues("ok")
	latencyError = endpointLatency.WithLabelValues("error")
)

// Endpoint is get-endpoint's answer: where one client should connect.
type Endpoint struct {
	// Socket is the WebSocket URL a client dials as it is: Endpoint followed
	// by the app's client_path (and, for a handoff, its ticket).
	Socket string `json:"socket"`
	// Endpoint is the WebSocket URL (ws:// or wss://) of the replica's base,
	// pinning tenant, app, revision and replica; URL is the same place over
	// http(s).
	Endpoint  string `json:"endpoint"`
	URL       string `json:"url"`
	Tenant    string `json:"tenant"`
	App       string `json:"app"`
	Revision  string `json:"revision"`
	Replica   string `json:"replica"`
	ExpiresIn int    `json:"expires_in"`

	encoded []byte // this answer as JSON, cached by the allocator
}

// JSON returns the answer encoded as JSON.
func (e Endpoint) JSON() ([]byte, error) {
	if e.encoded != nil {
		return e.encoded, nil
	}
	return json.Marshal(e)
}

// answerKey names a cached answer: one replica under one reservation TTL
// and client path.
type answerKey struct {
	r          apps.ReplicaID
	ttl        time.Duration
	clientPath string
}

// maxAnswers bounds the allocator's cache of encoded answers; past it the
// cache starts over (answers of gone replicas leave with it).
const maxAnswers = 16384

// Allocator answers get-endpoint from memory: the watch-fed route table and
// session counts. It reserves a place on the chosen replica in the local
// counter; the reservation counts as a session until the client connects or it
// expires. When an autoscaled app has no replica with room (scale-to-zero, or
// a burst) it records the demand, which the autoscaler sees, and waits for a
// replica, bounded by ColdStart.
type Allocator struct {
	routes   *Routes
	sessions *Sessions
	counter  *Counter
	// public is the gateway's base URL as clients reach it.
	public *url.URL
	ttl    time.Duration
	// ColdStart bounds how long a call waits for a replica to start.
	ColdStart time.Duration
	// PerClient bounds the reservations one client address may hold within a
	// reservation's lifetime (0: no bound).
	PerClient int
	// Notify, if set, is told at once of an app waiting for a replica to
	// start (the leader's reconciler, in this process); other instances hear
	// of it through the counts, published at once.
	Notify func(apps.Ref)
	// Tickets reads handoff tickets (get-endpoint with ?ticket=).
	Tickets interface {
		Ticket(ctx context.Context, id string) (apps.Ticket, error)
	}
	mu       sync.Mutex
	byClient map[string][]time.Time // reservation expiries per client address
	answers  map[answerKey]Endpoint // encoded answers, guarded by mu
	ids      []apps.ReplicaID       // try's scratch, guarded by mu
	loads    []int                  // try's scratch, guarded by mu
}

// NewAllocator returns an allocator handing out URLs under publicURL (e.g.
// "http://127.0.0.1:4001"). A reservation lasts its app's reservation_ttl;
// ttl is the window in which PerClient counts one client's reservations.
func NewAllocator(routes *Routes, sessions *Sessions, counter *Counter, publicURL string, ttl time.Duration) (*Allocator, error) {
	u, err := url.Parse(publicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("public gateway URL %q: want http(s)://host[:port]", publicURL)
	}
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	return &Allocator{routes: routes, sessions: sessions, counter: counter, public: u, ttl: ttl, ColdStart: 30 * time.Second}, nil
}

// Get chooses a ready replica of the app's active revision with room, by the
// app's strategy, and reserves a place on it.
func (a *Allocator) Get(ctx context.Context, client, tenant, app string) (ep Endpoint, err error) {
	if err := a.admit(client); err != nil {
		return Endpoint{}, err
	}
	start := time.Now()
	defer func() {
		if err != nil {
			latencyError.Observe(time.Since(start).Seconds())
		} else {
			latencyOK.Observe(time.Since(start).Seconds())
		}
	}()
	var demand *apps.ReplicaID
	defer func() {
		if demand != nil {
			a.counter.Release(*demand)
		}
	}()
	var deadline time.Time
	for {
		// Once waiting, a change of the table is what may help: take its
		// signal before looking, so none is missed.
		var changed <-chan struct{}
		if demand != nil {
			changed = a.routes.Changed()
		}
		ep, canGrow, err := a.try(tenant, app)
		if err == nil || !canGrow || !errors.Is(err, ErrNoCapacity) && !errors.Is(err, ErrNotServing) {
			return ep, err
		}
		if demand == nil {
			// Say we are waiting: the autoscaler counts this demand and starts
			// a replica; concurrent callers share the start.
			ar, _ := a.routes.App(tenant, app)
			demand = &apps.ReplicaID{Tenant: tenant, App: app, Revision: ar.Active, Replica: "-"}
			a.counter.Reserve(*demand, a.ColdStart)
			a.counter.Kick()
			if a.Notify != nil {
				a.Notify(apps.Ref{Tenant: tenant, App: app})
			}
			deadline = start.Add(a.ColdStart)
			continue
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return Endpoint{}, fmt.Errorf("%w (waited %s for a replica to start)", err, a.ColdStart)
		}
		t := time.NewTimer(wait)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return Endpoint{}, fmt.Errorf("%w (gave up waiting for a replica: %v)", err, ctx.Err())
		}
		t.Stop()
	}
}

// ForTicket answers get-endpoint for a handed-off player: the ticket's
// target replica, its socket URL carrying the ticket. No reservation is made
// (the handoff made one). A ticket that is unknown, used, expired, of
// another app, or whose target is gone is apps.ErrGone.
func (a *Allocator) ForTicket(ctx context.Context, tenant, app, id string) (Endpoint, error) {
	if a.Tickets == nil {
		return Endpoint{}, fmt.Errorf("handoff tickets are not served here: %w", apps.ErrGone)
	}
	t, err := a.Tickets.Ticket(ctx, id)
	if err != nil {
		return Endpoint{}, err
	}
	if t.Tenant != tenant || t.App != app {
		return Endpoint{}, fmt.Errorf("ticket is for another app: %w", apps.ErrGone)
	}
	r, ok := a.routes.Lookup(t.Tenant, t.App, t.Revision, t.Replica)
	ar, _ := a.routes.App(tenant, app)
	if !ok || !r.Routable() || ar == nil {
		return Endpoint{}, fmt.Errorf("the ticket's replica %s is gone: %w", t.Replica, apps.ErrGone)
	}
	ep := a.endpointFor(r, time.Until(t.Expires), ar.App.ClientPath)
	ep.Socket += "?" + TicketParam + "=" + id
	return ep, nil
}

// admit counts a reservation against the client address, refusing past the
// bound. Expired entries are dropped as it goes, and an idle address's entry
// disappears, so the table holds only recent callers.
func (a *Allocator) admit(client string) error {
	if a.PerClient <= 0 || client == "" {
		return nil
	}
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.byClient == nil {
		a.byClient = map[string][]time.Time{}
	}
	if len(a.byClient) > 10000 {
		for c, q := range a.byClient {
			if len(q) == 0 || !q[len(q)-1].After(now) {
				delete(a.byClient, c)
			}
		}
	}
	q := a.byClient[client]
	i := 0
	for i < len(q) && !q[i].After(now) {
		i++
	}
	q = q[i:]
	if len(q) >= a.PerClient {
		a.byClient[client] = q
		return fmt.Errorf("%w: %s holds %d reservations (at most %d per %s)", ErrTooManyReservations, client, len(q), a.PerClient, a.ttl)
	}
	a.byClient[client] = append(q, now.Add(a.ttl))
	return nil
}

// try allocates once. canGrow reports that the autoscaler may still add a
// replica, so waiting is worth it.
func (a *Allocator) try(tenant, app string) (Endpoint, bool, error) {
	ar, ok := a.routes.App(tenant, app)
	if !ok || ar.App.Deleting {
		return Endpoint{}, false, fmt.Errorf("app %s/%s: %w", tenant, app, apps.ErrNotFound)
	}
	if ar.Active == "" {
		return Endpoint{}, false, fmt.Errorf("app %s/%s has no active revision yet: %w", tenant, app, ErrNotServing)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	hard := ar.App.MaxSessions // 0: no cap
	soft := hard
	if ar.App.Autoscaled() {
		soft = ar.App.TargetSessions // packing moves on at the target
	}
	type cand struct {
		r    *Route
		load int
	}
	// The ready replicas' loads, read under one lock of each table.
	ids := a.ids[:0]
	var readyRoutes []*Route
	running := 0
	for i := range ar.Replicas {
		r := &ar.Replicas[i]
		if r.Revision != ar.Active || !r.Routable() {
			continue
		}
		running++
		if r.State != apps.ReplicaReady {
			continue
		}
		readyRoutes = append(readyRoutes, r)
		ids = append(ids, apps.ReplicaID{Tenant: r.Tenant, App: r.App, Revision: r.Revision, Replica: r.Replica})
	}
	a.ids = ids
	a.loads = a.sessions.Loads(ids, a.loads[:0])
	ready := len(readyRoutes)
	cands := make([]cand, 0, ready)
	for i, r := range readyRoutes {
		if load := a.loads[i]; hard == 0 || load < hard {
			cands = append(cands, cand{r, load})
		}
	}
	canGrow := ar.App.Autoscaled() && (running < ar.App.MaxReplicas || running > ready)
	if ready == 0 {
		return Endpoint{}, ar.App.Autoscaled(), fmt.Errorf("app %s/%s revision %s: %w", tenant, app, ar.Active, ErrNotServing)
	}
	if len(cands) == 0 {
		return Endpoint{}, canGrow, fmt.Errorf("app %s/%s: all %d replicas hold max_sessions %d: %w", tenant, app, ready, hard, ErrNoCapacity)
	}
	// spread: the least loaded. packed: the fullest still under the target, so
	// the others empty and can go; when all are at the target, the least loaded.
	pick := -1
	if ar.App.Strategy != apps.Spread {
		for i, c := range cands {
			if (soft == 0 || c.load < soft) && (pick < 0 || c.load > cands[pick].load) {
				pick = i
			}
		}
	}
	if pick < 0 {
		for i, c := range cands {
			if pick < 0 || c.load < cands[pick].load {
				pick = i
			}
		}
	}
	best := cands[pick].r
	ttl := ar.App.Reservation()
	id := apps.ReplicaID{Tenant: best.Tenant, App: best.App, Revision: best.Revision, Replica: best.Replica}
	a.counter.Reserve(id, ttl)
	return a.answer(id, *best, ttl, ar.App.ClientPath), false, nil
}

// answer returns the endpoint of a replica with its JSON, from the cache;
// mu held.
func (a *Allocator) answer(id apps.ReplicaID, r Route, ttl time.Duration, clientPath string) Endpoint {
	k := answerKey{id, ttl, clientPath}
	if ep, ok := a.answers[k]; ok {
		return ep
	}
	if a.answers == nil || len(a.answers) >= maxAnswers {
		a.answers = map[answerKey]Endpoint{}
	}
	ep := a.endpointFor(r, ttl, clientPath)
	if b, err := json.Marshal(ep); err == nil {
		ep.encoded = b
	}
	a.answers[k] = ep
	return ep
}

func (a *Allocator) endpointFor(r Route, ttl time.Duration, clientPath string) Endpoint {
	path := PathPrefix + r.Tenant + "/" + r.App + "/" + r.Revision + "/" + r.Replica + "/"
	httpURL := url.URL{Scheme: a.public.Scheme, Host: a.public.Host, Path: a.public.Path + path}
	wsURL := httpURL
	wsURL.Scheme = "ws"
	if a.public.Scheme == "https" {
		wsURL.Scheme = "wss"
	}
	ws := wsURL.String()
	return Endpoint{Socket: ws + strings.TrimPrefix(clientPath, "/"), Endpoint: ws, URL: httpURL.String(), Tenant: r.Tenant, App: r.App,
		Revision: r.Revision, Replica: r.Replica, ExpiresIn: int(ttl / time.Second)}
}
