// Command arena is the demo game Discovery hosts: a small WebSocket MMO on a
// grid where players move, attack their neighbours and respawn (or, in the
// demo's "v2" with -respawn=false, stay dead). Its state lives in process
// memory and sessions survive reconnects, which is exactly what a
// zero-downtime rollout must not break. PROTOCOL.md documents the wire format.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	discovery "github.com/discovery-platform/discovery/sdk/go"
)

// config is everything the arena reads from flags and the environment.
type config struct {
	host  string // listen on host:port (a pod's IP on Kubernetes)
	port  string
	rules rules
	// revision and replica identify this process; the platform sets them.
	revision, replica string
	// platform is the replica's identity and the platform's API, from the
	// DISCOVERY_* variables; nil when the arena does not run on the
	// platform (it then hears no drain notices).
	platform *discovery.Replica
	// handoff moves players to the active revision when this one drains,
	// and takes in players moved here (needs the platform).
	handoff bool
}

// parseConfig reads flags, each defaulting to its environment variable.
func parseConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	var errs []error
	envInt := func(key string, def int) int {
		v := getenv(key)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("env %s=%q: not an integer", key, v))
		}
		return n
	}
	envBool := func(key string, def bool) bool {
		v := getenv(key)
		if v == "" {
			return def
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("env %s=%q: not a boolean", key, v))
		}
		return b
	}
	envDuration := func(key string, def time.Duration) time.Duration {
		v := getenv(key)
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("env %s=%q: not a duration like 5s", key, v))
		}
		return d
	}
	envString := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}

	var c config
	fs := flag.NewFlagSet("arena", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&c.host, "host", envString("HOST", "127.0.0.1"), "listen on this address; on Kubernetes the platform sets the pod's IP (env HOST)")
	fs.StringVar(&c.port, "port", envString("PORT", "8080"), "listen on host:`port` (env PORT)")
	fs.IntVar(&c.rules.size, "size", envInt("ARENA_SIZE", 16), "side of the square grid (env ARENA_SIZE)")
	fs.IntVar(&c.rules.hp, "hp", envInt("ARENA_HP", 1), "hit points a player (re)spawns with; each attack that reaches it takes one (env ARENA_HP)")
	fs.BoolVar(&c.rules.respawn, "respawn", envBool("RESPAWN", true), "bring dead players back; false is the demo's v2 (env RESPAWN)")
	fs.DurationVar(&c.rules.respawnDelay, "respawn-delay", envDuration("RESPAWN_DELAY", 5*time.Second), "time a dead player waits to respawn (env RESPAWN_DELAY)")
	fs.DurationVar(&c.rules.reconnectWindow, "reconnect-window", envDuration("RECONNECT_WINDOW", 60*time.Second), "time a disconnected player stays in the world (env RECONNECT_WINDOW)")
	fs.StringVar(&c.revision, "revision", getenv("DISCOVERY_REVISION"), "revision id to report (env DISCOVERY_REVISION, set by the platform)")
	fs.StringVar(&c.replica, "replica", getenv("DISCOVERY_REPLICA"), "replica id to report (env DISCOVERY_REPLICA, set by the platform)")
	fs.BoolVar(&c.handoff, "handoff", envBool("HANDOFF", false), "when this revision drains, move every player with its state to the active one; take in players moved here (env HANDOFF; needs the platform's DISCOVERY_* variables)")
	if err := errors.Join(errs...); err != nil {
		return config{}, err
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if p, err := strconv.Atoi(c.port); err != nil || p < 0 || p > 65535 {
		return config{}, fmt.Errorf("port %q: want a number 0-65535", c.port)
	}
	if c.rules.size < 1 || c.rules.size > 256 {
		return config{}, fmt.Errorf("size %d: want 1-256", c.rules.size)
	}
	if c.rules.hp < 1 || c.rules.hp > 100 {
		return config{}, fmt.Errorf("hp %d: want 1-100", c.rules.hp)
	}
	if c.rules.respawnDelay < 0 || c.rules.reconnectWindow < 0 {
		return config{}, errors.New("respawn-delay and reconnect-window must not be negative")
	}
	platform, err := discovery.FromLookup(getenv)
	switch {
	case err == nil:
		c.platform = platform
	case c.handoff:
		return config{}, fmt.Errorf("handoff: %w", err)
	case !errors.Is(err, discovery.ErrMissingEnv):
		return config{}, err // on the platform, but with a malformed URL
	}
	return c, nil
}

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "arena:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("revision", cfg.revision, "replica", cfg.replica)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.host, cfg.port))
	if err != nil {
		log.Error("listen", "err", err)
		os.Exit(1)
	}
	log.Info("arena listening", "addr", ln.Addr().String(), "size", cfg.rules.size, "hp", cfg.rules.hp,
		"respawn", cfg.rules.respawn, "respawn_delay", cfg.rules.respawnDelay, "reconnect_window", cfg.rules.reconnectWindow,
		"on_platform", cfg.platform != nil, "handoff", cfg.handoff)
	if err := newServer(cfg, log).serve(ctx, ln); err != nil {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
	log.Info("arena stopped")
}
