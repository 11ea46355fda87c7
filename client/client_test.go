package client

import (
	"context"
	"errors"
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
