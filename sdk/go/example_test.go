package discovery_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	discovery "github.com/discovery-platform/discovery/sdk/go"
)

// A game server on the platform: it mounts the drain hook and the handoff
// receiver, hears that its revision drains, and moves a player to the
// active revision with its state. A stand-in platform plays the other
// side here; on the platform, FromEnv reads the same values.
func Example() {
	mux := http.NewServeMux()
	game := httptest.NewServer(mux)
	defer game.Close()
	platform := httptest.NewServer(standInPlatform(game.URL))
	defer platform.Close()
	env := map[string]string{
		"DISCOVERY_API": platform.URL, "DISCOVERY_LEASE_TOKEN": "capability",
		"DISCOVERY_TENANT": "acme", "DISCOVERY_APP": "arena", "DISCOVERY_REVISION": "9d00cc18", "DISCOVERY_REPLICA": "r-0",
	}
	replica, err := discovery.FromLookup(func(k string) string { return env[k] }) // discovery.FromEnv() on the platform
	if err != nil {
		log.Fatal(err)
	}

	// The app's drain_hook and handoff_path settings name these paths.
	receiver := &discovery.Receiver{}
	mux.Handle("POST /discovery/drain", replica.DrainHook())
	mux.Handle("POST /discovery/handoff", receiver)
	// A player's socket: arriving with a ticket, it resumes its state.
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		if state, ok := receiver.Take(discovery.Ticket(r)); ok {
			fmt.Printf("player resumed with %s\n", state)
		}
	})
	// go replica.FollowNotices(ctx) also follows the platform's stream.

	// The platform tells the revision it drains.
	resp, err := http.Post(game.URL+"/discovery/drain", "application/json", strings.NewReader(
		`{"state":"draining","tenant":"acme","app":"arena","revision":"9d00cc18","active_revision":"5be2a1f0","reason":"superseded by 5be2a1f0","deadline":null}`))
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	n := <-replica.Notices()
	fmt.Println(n.State, "; new players go to", n.ActiveRevision)

	// Move a player: send its state, then close its socket with
	// CloseMoved and the ticket, e.g. with gorilla/websocket:
	//   conn.WriteControl(websocket.CloseMessage,
	//     websocket.FormatCloseMessage(discovery.CloseMoved, moved.CloseReason()), deadline)
	moved, err := replica.Handoff(context.Background(), []byte(`{"name":"alice","x":3,"y":4}`))
	if err != nil {
		log.Fatal(err) // on failure: close with discovery.CloseGoElsewhere instead
	}
	fmt.Println("close", discovery.CloseMoved, moved.CloseReason())

	// The stand-in platform forwarded the state to this same server; the
	// player arrives through the gateway, which adds the ticket header.
	req, _ := http.NewRequest("GET", game.URL+"/ws", nil)
	req.Header.Set(discovery.TicketHeader, moved.Ticket)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	// Output:
	// draining ; new players go to 5be2a1f0
	// close 4901 ticket=K7Q2M4XW9D3H5JZC8B6N1RTVPA
	// player resumed with {"name":"alice","x":3,"y":4}
}

// standInPlatform answers a handoff as the platform does, after
// forwarding the state to the handoff_path of the target it picked.
func standInPlatform(target string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/tenants/acme/apps/arena/revisions/9d00cc18/handoffs" || r.Header.Get(discovery.LeaseTokenHeader) != "capability" {
			http.Error(w, `{"error":{"code":"forbidden","message":"no"}}`, http.StatusForbidden)
			return
		}
		const ticket = "K7Q2M4XW9D3H5JZC8B6N1RTVPA"
		fwd, _ := http.NewRequest("POST", target+"/discovery/handoff", r.Body)
		fwd.Header.Set(discovery.TicketHeader, ticket)
		resp, err := http.DefaultClient.Do(fwd)
		if err != nil || resp.StatusCode != http.StatusNoContent {
			http.Error(w, `{"error":{"code":"bad_gateway","message":"the target did not take it"}}`, http.StatusBadGateway)
			return
		}
		resp.Body.Close()
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"ticket":"`+ticket+`","socket":"ws://gateway/s/acme/arena/5be2a1f0/r-2/ws?discovery_ticket=`+ticket+`","revision":"5be2a1f0","replica":"r-2","expires_in":60}`)
	}
}
