// Command testapp is the small server tests run as a replica. It behaves like
// a well-mannered app (serves on $PORT, answers a health check, stops on
// SIGTERM) and can be told through its environment to misbehave:
//
//	PORT=<n>                 listen on $HOST:<n> (0 or unset: any port)
//	HOST=<ip>                the address to listen on (unset: 127.0.0.1; a pod gets its IP)
//	NEVER_HEALTHY=1          GET /healthz always answers 503
//	HEALTH_DELAY=<duration>  GET /healthz answers 503 until that long after start
//	FAIL_START=1             print "failing on purpose" to stderr, exit 3
//	SHUTDOWN_DELAY=<dur>     on SIGTERM, keep serving that long, then exit 0
//	IGNORE_SIGTERM=1         on SIGTERM, keep running (SIGKILL is needed)
//	VERSION=<s>              reported by GET /
//	PROBE=1 (and PROBE_*)    act as a hostile replica: see probe.go
//
// Routes (besides those of handoff.go): GET /healthz; GET / answers {"revision","replica","pid","version"}
// from $DISCOVERY_REVISION, $DISCOVERY_REPLICA, its pid and $VERSION; GET
// /echo?msg=x answers x; GET /ws is a WebSocket echo (each message sent back
// as it came, prefixed by nothing). It prints "listening on <addr>" once it listens and
// "got SIGTERM" when it receives SIGTERM.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	if os.Getenv("FAIL_START") == "1" {
		fmt.Fprintln(os.Stderr, "failing on purpose")
		os.Exit(3)
	}
	probe()
	start := time.Now()
	healthDelay := duration("HEALTH_DELAY")
	shutdownDelay := duration("SHUTDOWN_DELAY")
	neverHealthy := os.Getenv("NEVER_HEALTHY") == "1"

	// Subscribe before listening, so a SIGTERM that follows "listening on"
	// is always handled.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)

	port := os.Getenv("PORT")
	if port == "" {
		port = "0"
	}
	host := os.Getenv("HOST")
	if host == "" {
		host = "127.0.0.1"
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}

	mux := http.NewServeMux()
	var sc sideChannels
	sc.routes(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if neverHealthy || time.Since(start) < healthDelay {
			http.Error(w, "not healthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	})
	// /burn?ms=N spins one core for N ms (at most 10 s): a replica that
	// burns CPU, for the figures that measure it.
	mux.HandleFunc("GET /burn", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 || ms > 10000 {
			http.Error(w, "ms must be 0-10000", http.StatusBadRequest)
			return
		}
		n, end := 0, time.Now().Add(time.Duration(ms)*time.Millisecond)
		for time.Now().Before(end) {
			n++
		}
		fmt.Fprint(w, n)
	})
	mux.HandleFunc("GET /echo", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.URL.Query().Get("msg"))
	})
	upgrader := websocket.Upgrader{}
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		if msg, ok := sc.resumed(r.Header.Get("X-Discovery-Ticket")); ok {
			if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				return
			}
		}
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"revision": os.Getenv("DISCOVERY_REVISION"),
			"replica":  os.Getenv("DISCOVERY_REPLICA"),
			"pid":      os.Getpid(),
			"version":  os.Getenv("VERSION"),
		})
	})
	go func() {
		err := http.Serve(l, mux)
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}()
	fmt.Println("listening on", l.Addr())

	for range sigs {
		if os.Getenv("IGNORE_SIGTERM") == "1" {
			fmt.Println("got SIGTERM, ignoring it")
			continue
		}
		fmt.Println("got SIGTERM")
		time.Sleep(shutdownDelay) // keep serving meanwhile, like a draining server
		os.Exit(0)
	}
}

// duration reads a Go duration from the environment; unset or invalid is 0.
func duration(key string) time.Duration {
	d, err := time.ParseDuration(os.Getenv(key))
	if err != nil && os.Getenv(key) != "" {
		fmt.Fprintf(os.Stderr, "ignoring %s: %v\n", key, err)
	}
	return d
}
