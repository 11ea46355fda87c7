package client

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The client's behaviour against the real platform is tested end to end by
// cmd/dsh's tests; these cover what a platform cannot be made to do on cue:
// answer any error body, hang, vanish.

func TestErrorKeepsTheAPIsCodeAndMessage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/tenants/default/apps/nope":
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"app default/nope: apps: not found"}}`))
		case "/api/v1/tenants/default/apps/busy/revisions":
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"code":"unavailable","message":"etcd unreachable; nothing was changed"}}`))
		default:
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("upstream said no"))
		}
	}))
	defer srv.Close()
	c, err := New(Config{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	_, err = c.GetApp(ctx, "default", "nope")
	var e *Error
	if !errors.As(err, &e) || e.Status != 404 || e.Code != "not_found" || e.Message != "app default/nope: apps: not found" {
		t.Fatalf("GetApp error = %#v, want the API's 404 not_found and its message", err)
	}
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		t.Errorf("errors.Is by code: NotFound %v, Conflict %v; want true, false", errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict))
	}
	if got, want := err.Error(), "app default/nope: apps: not found (not_found)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}

	_, err = c.Deploy(ctx, "default", "busy", RevisionSpec{Command: []string{"x"}})
	if !errors.As(err, &e) || !errors.Is(err, ErrUnavailable) || e.RetryAfter != 2*time.Second {
		t.Fatalf("Deploy error = %#v, want unavailable with Retry-After 2s", err)
	}

	_, err = c.ListTenants(ctx)
	if !errors.As(err, &e) || e.Status != 502 || e.Code != "bad_gateway" || e.Message != "upstream said no" {
		t.Fatalf("a non-JSON error = %#v, want status 502, code from the status, the body as message", err)
	}
}

func TestBearerTokenIsSentWhenSet(t *testing.T) {
	got := make(chan string, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Authorization")
		_, _ = w.Write([]byte(`{"tenants":[{"name":"default","namespace":"discovery-default"}]}`))
	}))
	defer srv.Close()
	for _, tc := range []struct{ token, want string }{{"s3cret", "Bearer s3cret"}, {"", ""}} {
		c, err := New(Config{URL: srv.URL, Token: tc.token})
		if err != nil {
			t.Fatal(err)
		}
		ts, err := c.ListTenants(context.Background())
		if err != nil || len(ts) != 1 || ts[0].Name != "default" {
			t.Fatalf("ListTenants = %v, %v", ts, err)
		}
		if h := <-got; h != tc.want {
			t.Errorf("token %q: Authorization %q, want %q", tc.token, h, tc.want)
		}
	}
}

func TestNoPlatformIsUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	c, err := New(Config{URL: addr})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListApps(context.Background(), "default")
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	if want := "cannot reach the platform at http://" + addr + " (connection refused)"; err.Error() != want {
		t.Errorf("message %q, want %q", err.Error(), want)
	}
}

func TestCancelStopsACallInFlight(t *testing.T) {
	arrived := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done() // hang until the client goes away
	}))
	defer srv.Close()
	c, _ := New(Config{URL: srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	_, err := c.ListApps(ctx, "default")
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want context.Canceled (not unreachable)", err)
	}
}

func TestTimeoutBoundsACallWithoutDeadline(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer srv.Close()
	c, _ := New(Config{URL: srv.URL, Timeout: 50 * time.Millisecond})
	_, err := c.ListApps(context.Background(), "default")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "did not answer in time") {
		t.Fatalf("err = %v, want a deadline saying the platform did not answer in time", err)
	}
}

func TestNewChecksTheURL(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"", DefaultURL, true},
		{"127.0.0.1:4000", "http://127.0.0.1:4000", true},
		{"https://discovery.example.com/", "https://discovery.example.com", true},
		{"ftp://x", "", false},
		{"http://", "", false},
	} {
		c, err := New(Config{URL: tc.in})
		if (err == nil) != tc.ok {
			t.Errorf("New(%q) error %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if err == nil && c.URL() != tc.want {
			t.Errorf("New(%q).URL() = %q, want %q", tc.in, c.URL(), tc.want)
		}
	}
}

// TestRequestsOfTheNewerRoutes checks what the catalog, trust, quota and
// lease methods send: method, path (an image's slashes kept as path
// separators, other characters escaped once) and body.
func TestRequestsOfTheNewerRoutes(t *testing.T) {
	type seen struct{ method, path, body string }
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.EscapedPath(), strings.TrimSpace(string(b))}
		switch {
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		case r.URL.Path == "/api/v1/images":
			_, _ = w.Write([]byte(`{"images":[{"image":"example/arena:0.2","command":["/srv/arena"],"updated_at":"2024-01-02T03:04:05Z"}]}`))
		case strings.HasSuffix(r.URL.Path, "/leases"):
			_, _ = w.Write([]byte(`{"leases":[{"lease":"7a","tenant":"acme","app":"arena","revision":"9d00cc18","ttl":"30s","holder":"alice","created_at":"2024-01-02T03:04:05Z","expires_in":"12s"}]}`))
		default:
			_, _ = w.Write([]byte(`{}`))
		}
	}))
	defer srv.Close()
	c, err := New(Config{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	expect := func(what string, err error, want seen) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if s := <-got; s != want {
			t.Errorf("%s sent %+v, want %+v", what, s, want)
		}
	}

	imgs, err := c.Images(ctx)
	expect("Images", err, seen{"GET", "/api/v1/images", ""})
	if len(imgs) != 1 || imgs[0].Ref != "example/arena:0.2" || imgs[0].Command[0] != "/srv/arena" {
		t.Errorf("Images = %+v", imgs)
	}
	_, err = c.PutImage(ctx, "example/arena:0.2", []string{"/srv/arena", "--fast"}, "the arena")
	expect("PutImage", err, seen{"PUT", "/api/v1/images/example/arena:0.2", `{"command":["/srv/arena","--fast"],"description":"the arena"}`})
	expect("DeleteImage", c.DeleteImage(ctx, "registry.example.com/team/arena@sha256:ab"),
		seen{"DELETE", "/api/v1/images/registry.example.com/team/arena@sha256:ab", ""})

	_, err = c.SetTenantTrust(ctx, "acme", false)
	expect("SetTenantTrust", err, seen{"PATCH", "/api/v1/tenants/acme", `{"allow_commands":false}`})
	_, err = c.SetQuota(ctx, "acme", Quota{MaxApps: 1, MaxReplicas: 2, MaxRevisions: 3, MaxCPUMillis: 4, MaxMemoryMB: 5})
	expect("SetQuota without the newer fields", err, seen{"PUT", "/api/v1/tenants/acme/quota",
		`{"max_apps":1,"max_replicas":2,"max_revisions":3,"max_cpu_millis":4,"max_memory_mb":5}`})
	_, err = c.PatchQuota(ctx, "acme", QuotaPatch{MaxStoredBytes: Int64(1 << 20), MaxApps: Int(0)})
	expect("PatchQuota", err, seen{"PUT", "/api/v1/tenants/acme/quota", `{"max_apps":0,"max_stored_bytes":1048576}`})

	ls, err := c.Leases(ctx, "acme", "arena")
	expect("Leases", err, seen{"GET", "/api/v1/tenants/acme/apps/arena/leases", ""})
	if len(ls) != 1 || ls[0].ExpiresIn.D() != 12*time.Second || ls[0].Holder != "alice" {
		t.Errorf("Leases = %+v", ls)
	}
	if want := "lease 7a on acme/arena revision 9d00cc18 held by alice, 12s left"; ls[0].String() != want {
		t.Errorf("a lease prints %q, want %q", ls[0], want)
	}
	expect("ReleaseLease", c.ReleaseLease(ctx, "acme", "arena", "7a"), seen{"DELETE", "/api/v1/tenants/acme/apps/arena/leases/7a", ""})
	_, err = c.TakeLease(ctx, "acme", "arena", "9d00cc18", LeaseSpec{TTL: Duration(time.Minute)})
	expect("TakeLease", err, seen{"POST", "/api/v1/tenants/acme/apps/arena/revisions/9d00cc18/leases", `{"ttl":"1m0s"}`})

	// A member's subject is one path segment, escaped once.
	expect("RemoveMember", c.RemoveMember(ctx, "acme", "a b/c"), seen{"DELETE", "/api/v1/tenants/acme/members/a%20b%2Fc", ""})
}

func TestBytesPrintShort(t *testing.T) {
	for _, tc := range []struct {
		b    Bytes
		want string
	}{{0, "0 B"}, {512, "512 B"}, {1536, "1.5 KiB"}, {4 << 20, "4 MiB"}, {5<<20 + 300<<10, "5.3 MiB"}, {1 << 30, "1 GiB"}} {
		if got := tc.b.String(); got != tc.want {
			t.Errorf("Bytes(%d) = %q, want %q", int64(tc.b), got, tc.want)
		}
	}
}
