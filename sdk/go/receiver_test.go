package discovery

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// deliver POSTs a state to rc as the platform does.
func deliver(rc *Receiver, ticket string, state []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/discovery/handoff", bytes.NewReader(state))
	if ticket != "" {
		req.Header.Set(TicketHeader, ticket)
	}
	req.Header.Set("X-Discovery-From-Revision", "9d00cc18")
	rec := httptest.NewRecorder()
	rc.ServeHTTP(rec, req)
	return rec
}

const ticketA = "K7Q2M4XW9D3H5JZC8B6N1RTVPA"

func TestReceiverKeepsAStateForOneTake(t *testing.T) {
	var rc Receiver
	require.Equal(t, http.StatusNoContent, deliver(&rc, ticketA, []byte(`{"x":3}`)).Code)
	assert.Equal(t, 1, rc.Len())

	got, ok := rc.Take(ticketA)
	assert.True(t, ok)
	assert.Equal(t, []byte(`{"x":3}`), got)
	_, ok = rc.Take(ticketA)
	assert.False(t, ok, "single use")
	_, ok = rc.Take("NEVERSEEN")
	assert.False(t, ok)
	assert.Zero(t, rc.Len())
}

func TestReceiverForgetsStatesAfterTheirTime(t *testing.T) {
	now := time.Date(2026, 12, 2, 17, 0, 0, 0, time.UTC)
	rc := &Receiver{now: func() time.Time { return now }}
	require.Equal(t, http.StatusNoContent, deliver(rc, "EARLY", []byte("a")).Code)
	now = now.Add(30 * time.Second)
	require.Equal(t, http.StatusNoContent, deliver(rc, "LATE", []byte("b")).Code)

	now = now.Add(StateTTL - 30*time.Second - time.Nanosecond)
	assert.Equal(t, 2, rc.Len(), "both within their time")
	now = now.Add(time.Nanosecond)
	_, ok := rc.Take("EARLY")
	assert.False(t, ok, "expired after 60 s")
	got, ok := rc.Take("LATE")
	assert.True(t, ok)
	assert.Equal(t, []byte("b"), got)
	assert.Zero(t, rc.bytes, "expired bytes are given back")
}

func TestReceiverRefuses(t *testing.T) {
	tests := []struct {
		name   string
		method string
		ticket string
		state  []byte
		want   int
	}{
		{"no ticket", "POST", "", []byte("s"), http.StatusBadRequest},
		{"malformed ticket", "POST", "a b/c", []byte("s"), http.StatusBadRequest},
		{"state over 1 MiB", "POST", ticketA, make([]byte, MaxState+1), http.StatusRequestEntityTooLarge},
		{"not a POST", "GET", ticketA, nil, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rc Receiver
			req := httptest.NewRequest(tt.method, "/discovery/handoff", bytes.NewReader(tt.state))
			req.Header.Set(TicketHeader, tt.ticket)
			rec := httptest.NewRecorder()
			rc.ServeHTTP(rec, req)
			assert.Equal(t, tt.want, rec.Code)
			assert.Zero(t, rc.Len())
		})
	}

	t.Run("state over 1 MiB without a length", func(t *testing.T) {
		var rc Receiver
		req := httptest.NewRequest("POST", "/discovery/handoff", struct{ *bytes.Reader }{bytes.NewReader(make([]byte, MaxState+1))})
		req.ContentLength = -1
		req.Header.Set(TicketHeader, ticketA)
		rec := httptest.NewRecorder()
		rc.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
	})
	t.Run("exactly 1 MiB is fine", func(t *testing.T) {
		var rc Receiver
		assert.Equal(t, http.StatusNoContent, deliver(&rc, ticketA, make([]byte, MaxState)).Code)
	})
	t.Run("a ticket already held keeps its first state", func(t *testing.T) {
		var rc Receiver
		require.Equal(t, http.StatusNoContent, deliver(&rc, ticketA, []byte("first")).Code)
		assert.Equal(t, http.StatusConflict, deliver(&rc, ticketA, []byte("forged")).Code)
		got, _ := rc.Take(ticketA)
		assert.Equal(t, []byte("first"), got)
	})
}

func TestReceiverIsBounded(t *testing.T) {
	t.Run("in count", func(t *testing.T) {
		rc := &Receiver{MaxStates: 3}
		for i := range 3 {
			require.Equal(t, http.StatusNoContent, deliver(rc, fmt.Sprint("T", i), []byte("s")).Code)
		}
		assert.Equal(t, http.StatusServiceUnavailable, deliver(rc, "T3", []byte("s")).Code)
		rc.Take("T0")
		assert.Equal(t, http.StatusNoContent, deliver(rc, "T3", []byte("s")).Code, "room again once one is taken")
	})
	t.Run("in bytes", func(t *testing.T) {
		rc := &Receiver{MaxBytes: 10}
		require.Equal(t, http.StatusNoContent, deliver(rc, "T0", make([]byte, 6)).Code)
		assert.Equal(t, http.StatusServiceUnavailable, deliver(rc, "T1", make([]byte, 5)).Code)
		assert.Equal(t, http.StatusNoContent, deliver(rc, "T2", make([]byte, 4)).Code)
	})
	t.Run("taken tickets do not pile up", func(t *testing.T) {
		var rc Receiver
		for i := range 10000 {
			ticket := fmt.Sprint("T", i)
			require.Equal(t, http.StatusNoContent, deliver(&rc, ticket, []byte("s")).Code)
			_, ok := rc.Take(ticket)
			require.True(t, ok)
		}
		assert.Less(t, len(rc.queue), 200)
	})
}

func TestTicketReadsTheGatewaysHeader(t *testing.T) {
	req := httptest.NewRequest("GET", "/ws?discovery_ticket=IGNORED", nil)
	assert.Empty(t, Ticket(req), "the query is the gateway's to check, not the server's")
	req.Header.Set("X-Discovery-Ticket", ticketA)
	assert.Equal(t, ticketA, Ticket(req))
}
