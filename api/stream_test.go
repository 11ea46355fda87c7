package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/apps"
)

// settledWorld is an authWorld served by a second instance, started after
// every grant: it loads the whole policy from etcd, so none of the first
// instance's policy reloads can still be in flight under a test.
func settledWorld(t *testing.T) (*authWorld, *instance) {
	w := newAuthWorld(t)
	return w, newInstance(t, w.etcd.Endpoint)
}

// serve runs the instance's API on a real loopback listener (a stream never
// ends, so app.Test cannot read it) and returns its base URL.
func serve(t *testing.T, inst *instance) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { defer close(done); _ = inst.srv.App().Listener(ln) }()
	t.Cleanup(func() { _ = inst.srv.App().ShutdownWithTimeout(5 * time.Second); <-done })
	return "http://" + ln.Addr().String()
}

// sse is an open event stream.
type sse struct {
	t    *testing.T
	resp *http.Response
	r    *bufio.Reader
}

// openStream GETs url with token; the stream is closed at cleanup.
func openStream(t *testing.T, url, token string) (*sse, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	return &sse{t: t, resp: resp, r: bufio.NewReader(resp.Body)}, resp.StatusCode
}

// next reads the next message with data (comments skipped); io.EOF when the
// server ended the stream.
func (s *sse) next() (event string, ev apps.Event, err error) {
	var data string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return "", ev, err
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && data != "":
			if event == "" {
				require.NoError(s.t, json.Unmarshal([]byte(data), &ev), data)
			}
			return event, ev, nil
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
}

func TestEventStreamDeliversEventsAppendedAfterItStarted(t *testing.T) {
	w, inst := settledWorld(t)
	url := serve(t, inst)
	stream := url + "/api/v1/tenants/a/apps/app1/events/stream"

	s, code := openStream(t, stream, w.tokens["viewer"])
	require.Equal(t, 200, code)
	assert.Equal(t, "text/event-stream; charset=utf-8", s.resp.Header.Get("Content-Type"))
	_, ev, err := s.next()
	require.NoError(t, err)
	assert.Equal(t, apps.EventAppCreated, ev.Type, "the recent events come first")

	// A change made after the stream opened arrives on it, without a new request.
	code, body := w.call(inst, "PATCH", "/api/v1/tenants/a/apps/app1", `{"max_sessions":7}`, w.tokens["deployer"])
	require.Equal(t, 200, code, body)
	for i := 0; i < 10 && ev.Type != apps.EventAppUpdated; i++ { // the world's deploy came before
		_, ev, err = s.next()
		require.NoError(t, err)
	}
	assert.Equal(t, apps.EventAppUpdated, ev.Type)
	assert.Equal(t, "app1", ev.App)

	// Resuming after the last id sees only what came later.
	s2, code := openStream(t, stream+"?after="+ev.ID, w.tokens["viewer"])
	require.Equal(t, 200, code)
	code, _ = w.call(inst, "POST", "/api/v1/tenants/a/apps/app1/revisions", `{"image":"example/app:1"}`, w.tokens["deployer"])
	require.Equal(t, 202, code)
	_, ev2, err := s2.next()
	require.NoError(t, err)
	assert.Equal(t, apps.EventDeployed, ev2.Type)

	// The server shutting down ends open streams (it would wait on them otherwise).
	require.NoError(t, inst.srv.App().ShutdownWithTimeout(5*time.Second))
	for err == nil {
		_, _, err = s.next()
	}
	assert.ErrorIs(t, err, io.EOF)
}

func TestEventStreamIsAuthorizedAndBounded(t *testing.T) {
	w, inst := settledWorld(t)
	url := serve(t, inst)
	stream := url + "/api/v1/tenants/a/apps/app1/events/stream"
	for _, c := range []struct {
		name, url, token string
		status           int
	}{
		{"no token", stream, "", 401},
		{"bad token", stream, "not-a-jwt", 401},
		{"stranger", stream, w.tokens["stranger"], 403},
		{"member of another tenant", url + "/api/v1/tenants/b/apps/app1/events/stream", w.tokens["viewer"], 403},
		{"unknown app", url + "/api/v1/tenants/a/apps/ghost/events/stream", w.tokens["viewer"], 404},
	} {
		_, code := openStream(t, c.url, c.token)
		assert.Equal(t, c.status, code, c.name)
	}
	// One subject holds at most 8 streams; a ninth is refused, others are not.
	for i := 0; i < 8; i++ {
		_, code := openStream(t, stream, w.tokens["owner"])
		require.Equal(t, 200, code)
	}
	_, code := openStream(t, stream, w.tokens["owner"])
	assert.Equal(t, http.StatusTooManyRequests, code)
	_, code = openStream(t, stream, w.tokens["viewer"])
	assert.Equal(t, 200, code)

	// A client that goes away frees its slot within seconds (the heartbeat's
	// write fails), so a tab that navigated away does not count.
	gone, code := openStream(t, stream, w.tokens["deployer"])
	require.Equal(t, 200, code)
	for i := 0; i < 7; i++ {
		_, code := openStream(t, stream, w.tokens["deployer"])
		require.Equal(t, 200, code)
	}
	gone.resp.Body.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s, code := openStream(t, stream, w.tokens["deployer"])
		if code == 200 {
			break
		}
		s.resp.Body.Close()
		require.True(t, time.Now().Before(deadline), "the closed stream's slot was not freed")
		time.Sleep(200 * time.Millisecond) // poll interval
	}
}

func TestWhoamiAndSessionsFollowTheRoles(t *testing.T) {
	w, inst := settledWorld(t)
	for _, role := range []string{"admin", "owner", "deployer", "viewer", "stranger"} {
		var me struct {
			Subject string
			Admin   bool
			Role    string
			Can     map[string]bool
		}
		code, body := w.call(inst, "GET", "/api/v1/whoami?tenant=a", "", w.tokens[role])
		require.Equal(t, 200, code, body)
		require.NoError(t, json.Unmarshal([]byte(body), &me), body)
		assert.Equal(t, role == "admin", me.Admin, role)
		if role != "admin" && role != "stranger" {
			assert.Equal(t, role, me.Role)
		}
		for _, perm := range []string{"apps:read", "apps:write", "revisions:write", "members:write", "logs:read"} {
			assert.Equal(t, role == "admin" || may[role][perm], me.Can[perm], "%s %s", role, perm)
		}

		code, body = w.call(inst, "GET", "/api/v1/tenants/a/apps/app1/sessions", "", w.tokens[role])
		if role == "stranger" {
			assert.Equal(t, 403, code, body)
		} else {
			assert.Equal(t, 200, code, body)
			assert.Contains(t, body, `"revisions":{}`, "no serving revision, no count")
		}
	}
	code, _ := w.call(inst, "GET", "/api/v1/whoami", "", "")
	assert.Equal(t, 401, code)
	code, _ = w.call(inst, "GET", "/api/v1/whoami?tenant=Not_A_Name", "", w.tokens["viewer"])
	assert.Equal(t, 400, code)
}
