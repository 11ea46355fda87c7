package main

// The platform's side channels, as a game server built on them would use
// them (sdk/PROTOCOL.md), recorded so that tests can read them:
//
//	POST /discovery/drain      a drain notice; kept, with when it came
//	GET  /discovery/notices    the notices kept: [{"at": time, "notice": {...}}]
//	POST /discovery/handoff    a handed-off state, kept under X-Discovery-Ticket
//	GET  /discovery/states     the states kept: {"ticket": "state"}
//	POST /discovery/send       hand a player off: the body is the state, sent
//	                           to $DISCOVERY_API's handoffs route with this
//	                           replica's capability; answers what the
//	                           platform answered (status and body);
//	                           ?tenant=&app=&revision= aim it elsewhere
//	                           (hostile tests), with this replica's capability
//
// A WebSocket to /ws whose upgrade carries X-Discovery-Ticket (the gateway
// checked it) first receives "resumed:" + the state kept under that ticket.

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

type sideChannels struct {
	mu      sync.Mutex
	notices []json.RawMessage
	states  map[string]string
}

func (sc *sideChannels) routes(mux *http.ServeMux) {
	sc.states = map[string]string{}
	mux.HandleFunc("POST /discovery/drain", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil || !json.Valid(body) {
			http.Error(w, "not a JSON notice", http.StatusBadRequest)
			return
		}
		entry, _ := json.Marshal(map[string]any{"at": time.Now().UTC(), "notice": json.RawMessage(body)})
		sc.mu.Lock()
		sc.notices = append(sc.notices, entry)
		sc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /discovery/notices", func(w http.ResponseWriter, r *http.Request) {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(append([]json.RawMessage{}, sc.notices...))
	})
	mux.HandleFunc("POST /discovery/handoff", func(w http.ResponseWriter, r *http.Request) {
		ticket := r.Header.Get("X-Discovery-Ticket")
		body, err := io.ReadAll(io.LimitReader(r.Body, 2<<20))
		if ticket == "" || err != nil {
			http.Error(w, "no ticket", http.StatusBadRequest)
			return
		}
		sc.mu.Lock()
		sc.states[ticket] = string(body)
		sc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /discovery/states", func(w http.ResponseWriter, r *http.Request) {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(sc.states)
	})
	mux.HandleFunc("POST /discovery/send", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		or := func(k, env string) string {
			if v := q.Get(k); v != "" {
				return v
			}
			return os.Getenv(env)
		}
		url := os.Getenv("DISCOVERY_API") + "/api/v1/tenants/" + or("tenant", "DISCOVERY_TENANT") + "/apps/" +
			or("app", "DISCOVERY_APP") + "/revisions/" + or("revision", "DISCOVERY_REVISION") + "/handoffs"
		req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, url, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("X-Discovery-Lease-Token", os.Getenv("DISCOVERY_LEASE_TOKEN"))
		req.Header.Set("X-Discovery-Replica", os.Getenv("DISCOVERY_REPLICA"))
		req.ContentLength = r.ContentLength
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
}

// resumed is what a socket presenting ticket first receives ("" if none).
func (sc *sideChannels) resumed(ticket string) (string, bool) {
	if ticket == "" {
		return "", false
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	st, ok := sc.states[ticket]
	if ok {
		delete(sc.states, ticket)
	}
	return "resumed:" + st, ok
}
