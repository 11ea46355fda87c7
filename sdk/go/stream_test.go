package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const noticesPath = "/api/v1/tenants/acme/apps/arena/revisions/9d00cc18/notices"

// streamPlatform serves the notice stream: connection k (from 0) writes
// conns[k] (raw SSE text), then ends the connection, or holds it open when
// k is the last one. It checks the path and the capability.
func streamPlatform(t *testing.T, conns ...string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := int(n.Add(1)) - 1
		if r.URL.Path != noticesPath || r.Header.Get(LeaseTokenHeader) != "cap-secret" {
			http.Error(w, `{"error":{"code":"forbidden","message":"wrong path or capability"}}`, http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		if k < len(conns) {
			_, _ = fmt.Fprint(w, conns[k])
			w.(http.Flusher).Flush()
		}
		if k >= len(conns)-1 {
			select { // hold the last connection open
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func sse(notices ...string) string {
	s := ""
	for _, n := range notices {
		s += "data: " + n + "\n\n"
	}
	return s
}

func noticeJSON(state, active, sentAt string) string {
	return fmt.Sprintf(`{"state":%q,"tenant":"acme","app":"arena","revision":"9d00cc18","active_revision":%q,"reason":"r","deadline":null,"sent_at":%q}`,
		state, active, sentAt)
}

// follow runs FollowNotices until the test ends; done tells its result
// once, ended when it has returned.
func follow(t *testing.T, r *Replica) (done <-chan error, cancel context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		result <- r.FollowNotices(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-ended
	})
	return result, cancel
}

func awaitNotice(t *testing.T, r *Replica) Notice {
	t.Helper()
	select {
	case n := <-r.Notices():
		return n
	case <-time.After(5 * time.Second):
		t.Fatal("no notice within 5 s")
		return Notice{}
	}
}

func TestFollowNoticesReconnectsAndDeliversEachNoticeOnce(t *testing.T) {
	srv, conns := streamPlatform(t,
		// The stream starts with the current state (active: not news), then
		// tells the drain, then drops.
		": hello\n\n"+sse(noticeJSON("active", "9d00cc18", "2026-12-02T17:00:00Z"), noticeJSON("draining", "5be2a1f0", "2026-12-02T17:01:00Z")),
		// Reconnected: the current state again (no news), then a
		// re-activation, split over two data lines.
		sse(noticeJSON("draining", "5be2a1f0", "2026-12-02T17:02:00Z"))+
			"data: {\"state\":\"active\",\"tenant\":\"acme\",\"app\":\"arena\",\n"+
			"data: \"revision\":\"9d00cc18\",\"active_revision\":\"9d00cc18\",\"sent_at\":\"2026-12-02T17:03:00Z\"}\n\n",
	)
	r := testReplica(t, srv.URL)
	var got []string
	delivered := make(chan struct{}, 10)
	r.OnNotice(func(n Notice) {
		got = append(got, n.State+" "+n.ActiveRevision)
		delivered <- struct{}{}
	})
	done, _ := follow(t, r)

	for range 2 {
		select {
		case <-delivered:
		case err := <-done:
			t.Fatalf("FollowNotices returned %v", err)
		case <-time.After(5 * time.Second):
			t.Fatalf("delivered only %q", got)
		}
	}
	assert.Equal(t, []string{"draining 5be2a1f0", "active 9d00cc18"}, got)
	assert.Equal(t, int32(2), conns.Load(), "reconnected once")
}

func TestFollowNoticesAndTheHookDeliverANoticeOnce(t *testing.T) {
	srv, _ := streamPlatform(t, sse(noticeJSON("draining", "5be2a1f0", "2026-12-02T17:00:00.123Z"), noticeJSON("active", "9d00cc18", "2026-12-02T17:05:00Z")))
	r := testReplica(t, srv.URL)
	require.Equal(t, http.StatusNoContent, postHook(t, r, "POST", drainingJSON).Code)
	assert.Equal(t, StateDraining, awaitNotice(t, r).State, "from the hook")

	follow(t, r)

	n := awaitNotice(t, r)
	assert.Equal(t, StateActive, n.State, "the stream's draining was the hook's: only the re-activation is news")
}

func TestFollowNoticesDropsASilentStream(t *testing.T) {
	srv, conns := streamPlatform(t, "", "", sse(noticeJSON("draining", "5be2a1f0", "2026-12-02T17:00:00Z")))
	r := testReplica(t, srv.URL)
	r.streamIdle = 50 * time.Millisecond
	follow(t, r)

	assert.Equal(t, StateDraining, awaitNotice(t, r).State)
	assert.Equal(t, int32(3), conns.Load())
}

func TestFollowNoticesEndsWhenItCannotHelp(t *testing.T) {
	tests := []struct {
		name   string
		status int
		want   error
	}{
		{"capability refused", http.StatusForbidden, ErrUnauthorized},
		{"unauthenticated", http.StatusUnauthorized, ErrUnauthorized},
		{"no such revision", http.StatusNotFound, ErrNotFound},
		{"no notices served", http.StatusNotImplemented, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, `{"error":{"code":"x","message":"no"}}`, tt.status)
			}))
			defer srv.Close()
			err := testReplica(t, srv.URL).FollowNotices(context.Background())
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tt.status, e.Status)
			if tt.want != nil {
				assert.ErrorIs(t, err, tt.want)
			}
		})
	}
}

func TestFollowNoticesRetriesServerErrors(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			http.Error(w, "etcd down", http.StatusServiceUnavailable)
		case 2:
			w.Header().Set("Retry-After", "0")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		default:
			_, _ = fmt.Fprint(w, sse(noticeJSON("draining", "5be2a1f0", "2026-12-02T17:00:00Z")))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}
	}))
	t.Cleanup(srv.Close) // after FollowNotices has ended
	r := testReplica(t, srv.URL)
	follow(t, r)
	assert.Equal(t, "5be2a1f0", awaitNotice(t, r).ActiveRevision)
	assert.Equal(t, int32(3), calls.Load())
}

func TestFollowNoticesEndsWhenTheRevisionIsOver(t *testing.T) {
	srv, conns := streamPlatform(t, sse(noticeJSON("draining", "5be2a1f0", "2026-12-02T17:00:00Z"), noticeJSON("retired", "5be2a1f0", "2026-12-02T17:09:00Z")), "")
	r := testReplica(t, srv.URL)
	assert.NoError(t, r.FollowNotices(context.Background()))
	assert.Equal(t, StateDraining, awaitNotice(t, r).State)
	assert.Equal(t, int32(1), conns.Load())
}

func TestFollowNoticesStopsWithItsContext(t *testing.T) {
	srv, _ := streamPlatform(t, "")
	r := testReplica(t, srv.URL)
	done, cancel := follow(t, r)
	cancel()
	select {
	case err := <-done:
		assert.True(t, errors.Is(err, context.Canceled), "got %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("still following 5 s after cancel")
	}
}
