package endpoint_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/endpoint"
	"github.com/discovery-platform/discovery/endpoint/relay"
	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
)

const prefix = "/t"

// backend is a real replica stand-in: HTTP echo of the path and a WebSocket echo.
func backend(t *testing.T) *httptest.Server {
	up := websocket.Upgrader{}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if string(msg) == "bye" {
				_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
				return
			}
			if err := c.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"path": r.URL.Path, "query": r.URL.RawQuery,
			"prefix": r.Header.Get("X-Forwarded-Prefix")})
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// fixture is one app with one active revision and replicas in a real etcd,
// the watch-fed tables over it, and a gateway on a real socket.
type fixture struct {
	t        *testing.T
	cli      *clientv3.Client
	store    *apps.Store
	rev      apps.Revision
	routes   *endpoint.Routes
	counter  *endpoint.Counter
	sessions *endpoint.Sessions
	gw       *httptest.Server
}

func newFixture(t *testing.T, maxSessions int) *fixture {
	e := etcdtest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f := &fixture{t: t, cli: e.Client, store: apps.NewStore(e.Client, prefix)}
	svc := &apps.Service{Store: f.store}
	_, err := svc.CreateApp(ctx, "default", apps.AppSpec{Name: "arena", MaxSessions: &maxSessions})
	require.NoError(t, err)
	rev, err := svc.Deploy(ctx, "default", "arena", apps.RevisionSpec{Image: "x"})
	require.NoError(t, err)
	out, err := f.store.Transition(ctx, apps.Change{Rev: rev, To: apps.Starting, Reason: "t"})
	require.NoError(t, err)
	out, err = f.store.Transition(ctx, apps.Change{Rev: out[0], To: apps.Active, Reason: "t"})
	require.NoError(t, err)
	f.rev = out[0]

	f.routes = endpoint.NewRoutes(apps.NewStore(e.Client, prefix), nil)
	f.counter = endpoint.NewCounter(e.Client, endpoint.CounterConfig{Prefix: prefix, Instance: "gw1", Tick: 20 * time.Millisecond, LeaseTTL: 2})
	f.sessions = endpoint.NewSessions(e.Client, prefix, f.store, f.counter, nil)
	done := make(chan struct{}, 3)
	for _, run := range []func(context.Context){f.routes.Run, f.counter.Run, f.sessions.Run} {
		go func() { run(ctx); done <- struct{}{} }()
	}
	t.Cleanup(func() {
		cancel()
		for i := 0; i < 3; i++ {
			<-done
		}
	})
	// The route table knows the active revision before any test runs.
	require.Eventually(t, func() bool {
		ar, ok := f.routes.App("default", "arena")
		return ok && ar.Active == f.rev.ID
	}, 10*time.Second, 10*time.Millisecond)
	rl, err := relay.New(relay.Config{HalfCloseTimeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rl.Close() })
	f.gw = httptest.NewServer(endpoint.NewGateway(f.routes, f.counter, rl, nil))
	t.Cleanup(f.gw.Close)
	return f
}

func (f *fixture) addReplica(id, addr string, state apps.ReplicaState) apps.Replica {
	r, err := f.store.PutReplica(context.Background(), apps.Replica{ID: id, Tenant: "default", App: "arena", Revision: f.rev.ID, State: state, Address: addr}, nil)
	require.NoError(f.t, err)
	require.Eventually(f.t, func() bool {
		rt, ok := f.routes.Lookup("default", "arena", f.rev.ID, id)
		return ok && rt.State == state && rt.Stopping == r.Stop
	}, 10*time.Second, 10*time.Millisecond)
	return r
}

func (f *fixture) url(replica, rest string) string {
	return f.gw.URL + "/s/default/arena/" + f.rev.ID + "/" + replica + rest
}

func (f *fixture) ref(replica string) apps.ReplicaID {
	return apps.ReplicaID{Tenant: "default", App: "arena", Revision: f.rev.ID, Replica: replica}
}

func getJSON(t *testing.T, url string) (int, map[string]any) {
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func TestGatewayProxiesHTTPWithPrefixStripped(t *testing.T) {
	f := newFixture(t, 0)
	be := backend(t)
	f.addReplica("aaaaaa", be.Listener.Addr().String(), apps.ReplicaReady)

	code, body := getJSON(t, f.url("aaaaaa", "/state?x=1"))
	require.Equal(t, 200, code)
	assert.Equal(t, "/state", body["path"])
	assert.Equal(t, "x=1", body["query"])
	assert.Equal(t, "/s/default/arena/"+f.rev.ID+"/aaaaaa", body["prefix"])

	code, body = getJSON(t, f.url("aaaaaa", ""))
	require.Equal(t, 200, code, "redirected to the trailing slash")
	assert.Equal(t, "/", body["path"])
}

// TestGatewayAnswers410AlikeNeverAnotherReplica: a gone replica, a replica
// that never existed and an app that never existed get the same answer, so
// the gateway tells nobody which tenants and apps exist (finding 8).
func TestGatewayAnswers410AlikeNeverAnotherReplica(t *testing.T) {
	f := newFixture(t, 0)
	be := backend(t)
	rec := f.addReplica("aaaaaa", be.Listener.Addr().String(), apps.ReplicaReady)

	for _, c := range []struct{ path, app string }{
		{"/s/default/nope/" + f.rev.ID + "/aaaaaa/", "nope"},
		{"/s/ghost-tenant/arena/" + f.rev.ID + "/aaaaaa/", "arena"},
		{strings.TrimPrefix(f.url("bbbbbb", "/"), f.gw.URL), "arena"},
	} {
		code, body := getJSON(t, f.gw.URL+c.path)
		assert.Equal(t, 410, code, c.path)
		assert.Equal(t, "gone", body["error"].(map[string]any)["code"], c.path)
		assert.Contains(t, body["get_endpoint"], "/apps/"+c.app+"/endpoint", c.path)
	}
	code, _ := getJSON(t, f.gw.URL+"/elsewhere")
	assert.Equal(t, 404, code, "a path that is no endpoint URL at all")

	rec.Stop = true
	_, err := f.store.PutReplica(context.Background(), rec, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool { rt, _ := f.routes.Lookup("default", "arena", f.rev.ID, "aaaaaa"); return rt.Stopping }, 5*time.Second, 10*time.Millisecond)
	code, _ = getJSON(t, f.url("aaaaaa", "/"))
	assert.Equal(t, 410, code, "a replica being stopped takes no new traffic")
}

func TestGatewayWebSocketSessionsAreCounted(t *testing.T) {
	f := newFixture(t, 0)
	be := backend(t)
	f.addReplica("aaaaaa", be.Listener.Addr().String(), apps.ReplicaReady)
	ws := "ws" + strings.TrimPrefix(f.url("aaaaaa", "/ws"), "http")
	ref := f.ref("aaaaaa")

	f.counter.Reserve(ref, time.Minute)
	assert.Equal(t, endpoint.Load{Reservations: 1}, f.counter.Local(ref))

	a, _, err := websocket.DefaultDialer.Dial(ws, nil)
	require.NoError(t, err)
	b, _, err := websocket.DefaultDialer.Dial(ws, nil)
	require.NoError(t, err)
	assert.Equal(t, endpoint.Load{Connections: 2}, f.counter.Local(ref), "the connect consumed the reservation")
	for i := 0; i < 50; i++ {
		msg := fmt.Sprintf("hello %d", i)
		require.NoError(t, a.WriteMessage(websocket.TextMessage, []byte(msg)))
		_, got, err := a.ReadMessage()
		require.NoError(t, err)
		require.Equal(t, msg, string(got))
	}
	// Counts reach etcd under the gateway's lease and the session table.
	require.Eventually(t, func() bool {
		return f.sessions.Revision("default", "arena", f.rev.ID).Count == 2
	}, 5*time.Second, 10*time.Millisecond)

	// Client closes.
	require.NoError(t, a.Close())
	require.Eventually(t, func() bool { return f.counter.Local(ref).Connections == 1 }, 5*time.Second, 10*time.Millisecond)
	// Backend closes: the client sees the close frame.
	require.NoError(t, b.WriteMessage(websocket.TextMessage, []byte("bye")))
	_, _, err = b.ReadMessage()
	assert.True(t, websocket.IsCloseError(err, websocket.CloseNormalClosure), "%v", err)
	require.NoError(t, b.Close())
	require.Eventually(t, func() bool { return f.counter.Local(ref).Connections == 0 }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		s := f.sessions.Revision("default", "arena", f.rev.ID)
		return s.Known && s.Count == 0 && !s.EmptySince.IsZero()
	}, 5*time.Second, 10*time.Millisecond)
}

func TestGatewayPassesRefusedUpgradeThrough(t *testing.T) {
	f := newFixture(t, 0)
	be := backend(t)
	f.addReplica("aaaaaa", be.Listener.Addr().String(), apps.ReplicaReady)
	// "/" is not a WebSocket handler: the app answers 200, passed on as is.
	_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(f.url("aaaaaa", "/"), "http"), nil)
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, endpoint.Load{}, f.counter.Local(f.ref("aaaaaa")))

	// A replica that does not answer: 502, nothing counted.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := l.Addr().String()
	require.NoError(t, l.Close())
	f.addReplica("cccccc", dead, apps.ReplicaReady)
	code, body := getJSON(t, f.url("cccccc", "/"))
	assert.Equal(t, 502, code)
	assert.Equal(t, "bad_gateway", body["error"].(map[string]any)["code"])
}

func TestAllocatorIsCapacityAwareAndReserves(t *testing.T) {
	f := newFixture(t, 2)
	be := backend(t)
	f.addReplica("aaaaaa", be.Listener.Addr().String(), apps.ReplicaReady)
	f.addReplica("bbbbbb", be.Listener.Addr().String(), apps.ReplicaReady)
	f.addReplica("cccccc", be.Listener.Addr().String(), apps.ReplicaStarting)
	require.Eventually(t, func() bool { return f.sessions.Replica("default", "arena", f.rev.ID, "x").Known }, 5*time.Second, 10*time.Millisecond)
	alloc, err := endpoint.NewAllocator(f.routes, f.sessions, f.counter, "http://gw.example:4001", 30*time.Second)
	require.NoError(t, err)

	seen := map[string]int{}
	for i := 0; i < 4; i++ {
		ep, err := alloc.Get(context.Background(), "", "default", "arena")
		require.NoError(t, err)
		assert.Equal(t, f.rev.ID, ep.Revision)
		assert.Equal(t, 10, ep.ExpiresIn, "the app's reservation_ttl (default 10 s)")
		assert.Equal(t, "ws://gw.example:4001/s/default/arena/"+f.rev.ID+"/"+ep.Replica+"/", ep.Endpoint)
		seen[ep.Replica]++
	}
	assert.Equal(t, map[string]int{"aaaaaa": 2, "bbbbbb": 2}, seen, "spread over ready replicas, never the starting one")
	_, err = alloc.Get(context.Background(), "", "default", "arena")
	assert.ErrorIs(t, err, endpoint.ErrNoCapacity, "every ready replica holds max_sessions")
	_, err = alloc.Get(context.Background(), "", "default", "ghost")
	assert.ErrorIs(t, err, apps.ErrNotFound)

	_, err = endpoint.NewAllocator(f.routes, f.sessions, f.counter, "gw:4001", 0)
	assert.Error(t, err)
}

func TestCountsVanishWithADeadGatewaysLease(t *testing.T) {
	f := newFixture(t, 0)
	e2, err := clientv3.New(clientv3.Config{Endpoints: f.cli.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	other := endpoint.NewCounter(e2, endpoint.CounterConfig{Prefix: prefix, Instance: "gw2", Tick: 20 * time.Millisecond, LeaseTTL: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go other.Run(ctx)
	ref := f.ref("aaaaaa")
	other.Connect(ref)
	other.Connect(ref)
	require.Eventually(t, func() bool { return f.sessions.Load(ref) == 2 }, 5*time.Second, 10*time.Millisecond)

	// The other gateway dies without a word: its client connection is gone, so
	// nothing revokes its lease; the counts expire with it.
	require.NoError(t, e2.Close())
	require.Eventually(t, func() bool { return f.sessions.Load(ref) == 0 }, 10*time.Second, 50*time.Millisecond)
}

func TestHoldsKeepARevisionBusy(t *testing.T) {
	f := newFixture(t, 0)
	holds := f.store
	ctx := context.Background()
	require.Eventually(t, func() bool { return f.sessions.Revision("default", "arena", f.rev.ID).Known }, 5*time.Second, 10*time.Millisecond)

	h, err := holds.CreateLease(ctx, apps.LeaseRequest{Tenant: "default", App: "arena", Revision: f.rev.ID, Replica: "aaaaaa", TTL: apps.Duration(2 * time.Second)}, 10)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return f.sessions.Revision("default", "arena", f.rev.ID).Count == 1 && f.sessions.Load(f.ref("aaaaaa")) == 1
	}, 5*time.Second, 10*time.Millisecond)
	_, err = holds.KeepLease(ctx, h.ID)
	require.NoError(t, err)
	wrong := h.ID[:len(h.ID)-1] + "0"
	if strings.HasSuffix(h.ID, "0") {
		wrong = h.ID[:len(h.ID)-1] + "1"
	}
	_, err = holds.KeepLease(ctx, wrong)
	assert.ErrorIs(t, err, apps.ErrNotFound, "a wrong secret finds nothing")
	require.NoError(t, holds.ReleaseLease(ctx, h.ID))
	require.Eventually(t, func() bool { return f.sessions.Revision("default", "arena", f.rev.ID).Count == 0 }, 5*time.Second, 10*time.Millisecond)
	_, err = holds.KeepLease(ctx, h.ID)
	assert.ErrorIs(t, err, apps.ErrNotFound)

	// A hold nobody keeps alive expires on its own.
	_, err = holds.CreateLease(ctx, apps.LeaseRequest{Tenant: "default", App: "arena", Revision: f.rev.ID, TTL: apps.Duration(time.Second)}, 10)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return f.sessions.Revision("default", "arena", f.rev.ID).Count == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return f.sessions.Revision("default", "arena", f.rev.ID).Count == 0 }, 10*time.Second, 50*time.Millisecond)
}

func TestGatewayBoundsSessionsPerAddressAndTenant(t *testing.T) {
	for _, c := range []struct {
		name   string
		limits endpoint.SessionLimits
		status int
		code   string
	}{
		{"per address", endpoint.SessionLimits{PerAddress: 2}, 429, "too_many_sessions"},
		{"per tenant", endpoint.SessionLimits{PerTenant: 2}, 503, "tenant_sessions_full"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, 0)
			be := backend(t)
			f.addReplica("aaaaaa", be.Listener.Addr().String(), apps.ReplicaReady)
			rl, err := relay.New(relay.Config{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = rl.Close() })
			gw := endpoint.NewGateway(f.routes, f.counter, rl, nil)
			gw.SetLimits(c.limits)
			srv := httptest.NewServer(gw)
			t.Cleanup(srv.Close)
			ws := "ws" + strings.TrimPrefix(srv.URL, "http") + "/s/default/arena/" + f.rev.ID + "/aaaaaa/ws"
			a, _, err := websocket.DefaultDialer.Dial(ws, nil)
			require.NoError(t, err)
			b, _, err := websocket.DefaultDialer.Dial(ws, nil)
			require.NoError(t, err)
			_, resp, err := websocket.DefaultDialer.Dial(ws, nil)
			require.Error(t, err, "the third session crosses the bound")
			require.NotNil(t, resp)
			assert.Equal(t, c.status, resp.StatusCode)
			assert.NotEmpty(t, resp.Header.Get("Retry-After"))
			// The two sessions in are unaffected.
			require.NoError(t, a.WriteMessage(websocket.TextMessage, []byte("hi")))
			_, got, err := a.ReadMessage()
			require.NoError(t, err)
			assert.Equal(t, "hi", string(got))
			// A session that ends gives its place back.
			require.NoError(t, b.Close())
			require.Eventually(t, func() bool {
				c, _, err := websocket.DefaultDialer.Dial(ws, nil)
				if err != nil {
					return false
				}
				_ = c.Close()
				return true
			}, 5*time.Second, 20*time.Millisecond)
			_ = a.Close()
		})
	}
}

func TestAllocatorBoundsReservationsPerClient(t *testing.T) {
	f := newFixture(t, 0)
	be := backend(t)
	f.addReplica("aaaaaa", be.Listener.Addr().String(), apps.ReplicaReady)
	require.Eventually(t, func() bool { return f.sessions.Replica("default", "arena", f.rev.ID, "x").Known }, 5*time.Second, 10*time.Millisecond)
	alloc, err := endpoint.NewAllocator(f.routes, f.sessions, f.counter, "http://gw:4001", 30*time.Second)
	require.NoError(t, err)
	alloc.PerClient = 3
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		_, err := alloc.Get(ctx, "10.0.0.1", "default", "arena")
		require.NoError(t, err)
	}
	_, err = alloc.Get(ctx, "10.0.0.1", "default", "arena")
	assert.ErrorIs(t, err, endpoint.ErrTooManyReservations)
	assert.Equal(t, 3, f.counter.Local(f.ref("aaaaaa")).Reservations, "the refused call reserved nothing")
	_, err = alloc.Get(ctx, "10.0.0.2", "default", "arena")
	assert.NoError(t, err, "another address is not affected")
}

// TestRoutesCatchUpSeesEveryCommittedWrite: once CatchUp returns, the table
// holds every write etcd had committed when it was called, even where the
// watch has not delivered it yet and on prefixes that saw no event (their
// watches are moved on by a progress request).
func TestRoutesCatchUpSeesEveryCommittedWrite(t *testing.T) {
	f := newFixture(t, 0)
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		id := fmt.Sprintf("c%05d", i)
		_, err := f.store.PutReplica(ctx, apps.Replica{ID: id, Tenant: "default", App: "arena", Revision: f.rev.ID, State: apps.ReplicaReady, Address: "127.0.0.1:1"}, nil)
		require.NoError(t, err)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		require.NoError(t, f.routes.CatchUp(cctx))
		cancel()
		_, ok := f.routes.Lookup("default", "arena", f.rev.ID, id)
		require.True(t, ok, "replica %s written before CatchUp is in the table after it", id)
	}
}

// TestGatewayRoutesAReplicaItHasNotHeardOfYet: an endpoint another instance
// handed out reaches this gateway before its watch brought the replica: the
// gateway catches up and proxies instead of answering 410.
func TestGatewayRoutesAReplicaItHasNotHeardOfYet(t *testing.T) {
	f := newFixture(t, 0)
	be := backend(t)
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("n%05d", i)
		_, err := f.store.PutReplica(context.Background(), apps.Replica{ID: id, Tenant: "default", App: "arena", Revision: f.rev.ID,
			State: apps.ReplicaReady, Address: be.Listener.Addr().String()}, nil)
		require.NoError(t, err)
		code, body := getJSON(t, f.url(id, "/x"))
		require.Equal(t, 200, code, "replica %s: %v", id, body)
		assert.Equal(t, "/x", body["path"])
	}
}

// TestRouteTableDecodesOnlyWhatChanged: with a hundred apps in the table, a
// change to one app decodes that app's record and nothing else, and touches
// no other app's published entry (issue: the table re-decoded every app on
// every change).
func TestRouteTableDecodesOnlyWhatChanged(t *testing.T) {
	f := newFixture(t, 0)
	ctx := context.Background()
	svc := &apps.Service{Store: f.store}
	for i := range 100 {
		_, err := svc.CreateApp(ctx, "default", apps.AppSpec{Name: fmt.Sprintf("bulk%03d", i)})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { _, ok := f.routes.App("default", "bulk099"); return ok }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, f.routes.CatchUp(ctx))
	other, _ := f.routes.App("default", "bulk042")
	before := f.routes.Decoded()

	_, err := svc.UpdateApp(ctx, "default", "bulk007", apps.AppSpec{MaxSessions: ptr(9)})
	require.NoError(t, err)
	require.Eventually(t, func() bool { ar, _ := f.routes.App("default", "bulk007"); return ar.App.MaxSessions == 9 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, f.routes.CatchUp(ctx))
	assert.Equal(t, int64(1), f.routes.Decoded()-before, "one record changed, one record decoded")
	same, _ := f.routes.App("default", "bulk042")
	assert.Same(t, other, same, "another app's published entry is untouched")
}
func ptr[T any](v T) *T { return &v }
