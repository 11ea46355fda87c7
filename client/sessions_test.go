package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestSessionsSplitByKind reads the sessions view as the platform answers
// it: totals, and the same counts split into connections, reservations and
// leases; and as a platform answered before the split.
func TestSessionsSplitByKind(t *testing.T) {
	body := `{"revisions":{"9d00cc18":3,"5be2a1f0":0},"replicas":{"a1b2c3":3,"d4e5f6":0},
		"revision_kinds":{"9d00cc18":{"connections":1,"reservations":1,"leases":1},"5be2a1f0":{"connections":0,"reservations":0,"leases":0}},
		"replica_kinds":{"a1b2c3":{"connections":1,"reservations":1,"leases":1},"d4e5f6":{"connections":0,"reservations":0,"leases":0}},"known":true}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/tenants/acme/apps/arena/sessions" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	c, err := New(Config{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Sessions(context.Background(), "acme", "arena")
	if err != nil {
		t.Fatal(err)
	}
	k, ok := s.Revision("9d00cc18")
	if !ok || k != (SessionKinds{Connections: 1, Reservations: 1, Leases: 1}) || k.Total() != s.Revisions["9d00cc18"] {
		t.Errorf("revision 9d00cc18: %+v (%v), total %d", k, ok, s.Revisions["9d00cc18"])
	}
	if k, ok := s.Replica("a1b2c3"); !ok || k.Connections != 1 || k.Reservations != 1 {
		t.Errorf("replica a1b2c3: %+v (%v)", k, ok)
	}
	if want := "sessions: 5be2a1f0 0, 9d00cc18 3 (1 connection, 1 reservation, 1 lease)"; s.String() != want {
		t.Errorf("prints %q, want %q", s, want)
	}

	// A platform without the split: totals only, and no kinds to read.
	body = `{"revisions":{"9d00cc18":2},"replicas":{"a1b2c3":2},"known":true}`
	s, err = c.Sessions(context.Background(), "acme", "arena")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Revision("9d00cc18"); ok {
		t.Error("kinds read from a platform that sent none")
	}
	if want := "sessions: 9d00cc18 2"; s.String() != want {
		t.Errorf("prints %q, want %q", s, want)
	}
}

func TestSessionKindsPrint(t *testing.T) {
	for _, tc := range []struct {
		k    SessionKinds
		want string
	}{
		{SessionKinds{}, "0 connections, 0 reservations"},
		{SessionKinds{Connections: 1, Reservations: 1}, "1 connection, 1 reservation"},
		{SessionKinds{Connections: 2, Reservations: 0, Leases: 1}, "2 connections, 0 reservations, 1 lease"},
		{SessionKinds{Leases: 3}, "0 connections, 0 reservations, 3 leases"},
	} {
		if got := tc.k.String(); got != tc.want {
			t.Errorf("%+v prints %q, want %q", tc.k, got, tc.want)
		}
	}
}

// TestGetEndpointAnswersTheSocket: get-endpoint's socket is what a client
// dials; with a ticket the call names it, and a used ticket is ErrGone.
func TestGetEndpointAnswersTheSocket(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Query().Get("ticket") {
		case "":
			_, _ = w.Write([]byte(`{"socket":"ws://gw/s/acme/arena/9d00cc18/a1b2c3/ws","endpoint":"ws://gw/s/acme/arena/9d00cc18/a1b2c3/",
				"url":"http://gw/s/acme/arena/9d00cc18/a1b2c3/","tenant":"acme","app":"arena","revision":"9d00cc18","replica":"a1b2c3","expires_in":10}`))
		case "K7Q2":
			_, _ = w.Write([]byte(`{"socket":"ws://gw/s/acme/arena/5be2a1f0/d4e5f6/ws?discovery_ticket=K7Q2","endpoint":"ws://gw/s/acme/arena/5be2a1f0/d4e5f6/",
				"revision":"5be2a1f0","replica":"d4e5f6","expires_in":60}`))
		default:
			w.WriteHeader(http.StatusGone)
			_, _ = w.Write([]byte(`{"error":{"code":"gone","message":"ticket unknown, used or expired"},"get_endpoint":"http://api/x"}`))
		}
	}))
	defer srv.Close()
	c, _ := New(Config{URL: srv.URL})
	ctx := context.Background()

	ep, err := c.GetEndpoint(ctx, "acme", "arena")
	if err != nil {
		t.Fatal(err)
	}
	if ep.Dial() != "ws://gw/s/acme/arena/9d00cc18/a1b2c3/ws" || ep.Endpoint != "ws://gw/s/acme/arena/9d00cc18/a1b2c3/" {
		t.Errorf("endpoint %+v", ep)
	}
	if want := "ws://gw/s/acme/arena/9d00cc18/a1b2c3/ws (revision 9d00cc18, replica a1b2c3, held 10s)"; ep.String() != want {
		t.Errorf("prints %q, want %q", ep, want)
	}
	ep, err = c.GetEndpointForTicket(ctx, "acme", "arena", "K7Q2")
	if err != nil || ep.Socket != "ws://gw/s/acme/arena/5be2a1f0/d4e5f6/ws?discovery_ticket=K7Q2" || ep.Revision != "5be2a1f0" {
		t.Errorf("with the ticket: %+v, %v", ep, err)
	}
	if _, err = c.GetEndpointForTicket(ctx, "acme", "arena", "USED"); !errors.Is(err, ErrGone) {
		t.Errorf("a used ticket: %v, want ErrGone", err)
	}
	// A platform older than the socket field: dial the endpoint.
	if old := (Endpoint{Endpoint: "ws://gw/x/"}); old.Dial() != "ws://gw/x/" {
		t.Errorf("Dial without a socket = %q", old.Dial())
	}
}
