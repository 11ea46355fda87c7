package endpoint

import (
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/discovery-platform/discovery/apps"
)

// Errors of get-endpoint. ErrNoCapacity and ErrNotServing answer 503 with
// Retry-After: the app exists but cannot take a player right now.
var (
	ErrNoCapacity = errors.New("endpoint: no replica has room")
	ErrNotServing = errors.New("endpoint: app has no ready replica")
)

// Endpoint is get-endpoint's answer: where one client should connect.
type Endpoint struct {
	// Endpoint is the WebSocket URL (ws:// or wss://) pinning tenant, app,
	// revision and replica; URL is the same place over http(s).
	Endpoint  string `json:"endpoint"`
	URL       string `json:"url"`
	Tenant    string `json:"tenant"`
	App       string `json:"app"`
	Revision  string `json:"revision"`
	Replica   string `json:"replica"`
	ExpiresIn int    `json:"expires_in"`
}

// Allocator answers get-endpoint from memory: the watch-fed route table and
// session counts. It reserves a place on the chosen replica in the local
// counter; the reservation counts as a session until the client connects or it
// expires.
type Allocator struct {
	routes   *Routes
	sessions *Sessions
	counter  *Counter
	// public is the gateway's base URL as clients reach it.
	public *url.URL
	ttl    time.Duration
	mu     sync.Mutex
}

// NewAllocator returns an allocator handing out URLs under publicURL (e.g.
// "http://127.0.0.1:4001"); reservations last ttl.
func NewAllocator(routes *Routes, sessions *Sessions, counter *Counter, publicURL string, ttl time.Duration) (*Allocator, error) {
	u, err := url.Parse(publicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("public gateway URL %q: want http(s)://host[:port]", publicURL)
	}
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	return &Allocator{routes: routes, sessions: sessions, counter: counter, public: u, ttl: ttl}, nil
}

// Get chooses a ready replica of the app's active revision with room, the
// least loaded first, and reserves a place on it.
func (a *Allocator) Get(tenant, app string) (Endpoint, error) {
	ar, ok := a.routes.App(tenant, app)
	if !ok || ar.App.Deleting {
		return Endpoint{}, fmt.Errorf("app %s/%s: %w", tenant, app, apps.ErrNotFound)
	}
	if ar.Active == "" {
		return Endpoint{}, fmt.Errorf("app %s/%s has no active revision yet: %w", tenant, app, ErrNotServing)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var best *Route
	bestLoad, ready := 0, 0
	for i := range ar.Replicas {
		r := &ar.Replicas[i]
		if r.Revision != ar.Active || r.State != apps.ReplicaReady || !r.Routable() {
			continue
		}
		ready++
		load := a.sessions.Load(ReplicaRef{Tenant: r.Tenant, App: r.App, Revision: r.Revision, Replica: r.Replica})
		if ar.App.MaxSessions > 0 && load >= ar.App.MaxSessions {
			continue
		}
		if best == nil || load < bestLoad {
			best, bestLoad = r, load
		}
	}
	if ready == 0 {
		return Endpoint{}, fmt.Errorf("app %s/%s revision %s: %w", tenant, app, ar.Active, ErrNotServing)
	}
	if best == nil {
		return Endpoint{}, fmt.Errorf("app %s/%s: all %d replicas hold max_sessions %d: %w", tenant, app, ready, ar.App.MaxSessions, ErrNoCapacity)
	}
	a.counter.Reserve(ReplicaRef{Tenant: best.Tenant, App: best.App, Revision: best.Revision, Replica: best.Replica}, a.ttl)
	return a.endpointFor(*best), nil
}

func (a *Allocator) endpointFor(r Route) Endpoint {
	path := PathPrefix + r.Tenant + "/" + r.App + "/" + r.Revision + "/" + r.Replica + "/"
	httpURL := url.URL{Scheme: a.public.Scheme, Host: a.public.Host, Path: a.public.Path + path}
	wsURL := httpURL
	wsURL.Scheme = "ws"
	if a.public.Scheme == "https" {
		wsURL.Scheme = "wss"
	}
	return Endpoint{Endpoint: wsURL.String(), URL: httpURL.String(), Tenant: r.Tenant, App: r.App,
		Revision: r.Revision, Replica: r.Replica, ExpiresIn: int(a.ttl / time.Second)}
}
