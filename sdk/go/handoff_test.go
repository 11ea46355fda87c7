package discovery

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const handoffsPath = "/api/v1/tenants/acme/apps/arena/revisions/9d00cc18/handoffs"

func TestHandoffSendsTheStateAndReturnsTheTicket(t *testing.T) {
	state := bytes.Repeat([]byte{0, 1, 2, 0xff}, 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "POST", r.Method)
		assert.Equal(t, handoffsPath, r.URL.Path)
		assert.Equal(t, "cap-secret", r.Header.Get(LeaseTokenHeader))
		assert.Equal(t, "r-0", r.Header.Get(ReplicaHeader))
		assert.Equal(t, "application/octet-stream", r.Header.Get("Content-Type"))
		b, _ := io.ReadAll(r.Body)
		assert.Equal(t, state, b)
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"ticket":"K7Q2M4XW9D3H5JZC8B6N1RTVPA",
			"socket":"ws://127.0.0.1:4001/s/acme/arena/5be2a1f0/r-2/ws?discovery_ticket=K7Q2M4XW9D3H5JZC8B6N1RTVPA",
			"revision":"5be2a1f0","replica":"r-2","expires_in":60}`)
	}))
	defer srv.Close()

	m, err := testReplica(t, srv.URL).Handoff(context.Background(), state)

	require.NoError(t, err)
	assert.Equal(t, Moved{Ticket: "K7Q2M4XW9D3H5JZC8B6N1RTVPA",
		Socket:   "ws://127.0.0.1:4001/s/acme/arena/5be2a1f0/r-2/ws?discovery_ticket=K7Q2M4XW9D3H5JZC8B6N1RTVPA",
		Revision: "5be2a1f0", Replica: "r-2", ExpiresIn: time.Minute}, m)
	assert.Equal(t, "ticket=K7Q2M4XW9D3H5JZC8B6N1RTVPA", m.CloseReason())
	ticket, ok := TicketFromReason(m.CloseReason())
	assert.True(t, ok)
	assert.Equal(t, m.Ticket, ticket)
}

func TestHandoffErrors(t *testing.T) {
	tests := []struct {
		status int
		body   string
		want   error
		code   string
	}{
		{404, `{"error":{"code":"not_found","message":"revision 9d00cc18 of acme/arena: not found"}}`, ErrNotFound, "not_found"},
		{409, `{"error":{"code":"conflict","message":"revision 9d00cc18 is active; only a draining revision hands players off"}}`, ErrConflict, "conflict"},
		{413, `{"error":{"code":"too_large","message":"state too large"}}`, ErrTooLarge, "too_large"},
		{502, `{"error":{"code":"bad_gateway","message":"the target replica did not take the handoff"}}`, ErrTargetFailed, "bad_gateway"},
		{503, `{"error":{"code":"no_capacity","message":"no replica has room"}}`, ErrUnavailable, "no_capacity"},
		{403, `{"error":{"code":"forbidden","message":"not your revision"}}`, ErrUnauthorized, "forbidden"},
		{500, `upstream broke`, nil, ""},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "2")
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()

			_, err := testReplica(t, srv.URL).Handoff(context.Background(), []byte("state"))

			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tt.status, e.Status)
			assert.Equal(t, tt.code, e.Code)
			assert.Equal(t, 2*time.Second, e.RetryAfter)
			if tt.want != nil {
				assert.ErrorIs(t, err, tt.want)
			} else {
				assert.Nil(t, e.Unwrap())
				assert.Equal(t, "upstream broke", e.Message)
			}
			assert.Contains(t, err.Error(), "handoff")
		})
	}
}

func TestHandoffRefusesAnOversizedStateWithoutCallingThePlatform(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	_, err := testReplica(t, srv.URL).Handoff(context.Background(), make([]byte, MaxState+1))
	assert.ErrorIs(t, err, ErrTooLarge)
	assert.Zero(t, calls.Load())
}

func TestHandoffWithoutAnAnswerIsAnError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	_, err := testReplica(t, srv.URL).Handoff(context.Background(), nil)
	assert.ErrorContains(t, err, "no ticket")

	srv.Close()
	_, err = testReplica(t, srv.URL).Handoff(context.Background(), nil)
	require.Error(t, err, "platform unreachable")
	assert.True(t, strings.HasPrefix(err.Error(), "discovery: handoff: "), err.Error())
}

func TestTicketFromReason(t *testing.T) {
	for reason, want := range map[string]string{"ticket=ABC": "ABC", "ticket=": "", "moved": "", "": ""} {
		got, ok := TicketFromReason(reason)
		assert.Equal(t, want, got, reason)
		assert.Equal(t, want != "", ok, reason)
	}
}
