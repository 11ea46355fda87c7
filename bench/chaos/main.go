// Command chaos runs the soak (WebSocket players through the gateways,
// exchanging numbered messages, new players arriving as others leave, a
// rollout every few seconds) while, at seeded random moments, it SIGKILLs
// the platform, SIGKILLs one of the extra gateways, SIGKILLs a replica, or
// stops etcd and starts it again. It restarts what it killed the way an
// operator's supervisor would, prints per iteration what it did and saw, and
// at the end checks the promise: no session dropped except those on a killed
// replica or gateway, no orphaned or double-started replica, no revision
// stuck in a transitional state, no lost event, and how long the platform
// took to converge after the last fault. It exits 1 when a goal is missed.
//
// Everything runs on loopback: an etcd embedded in this program on fixed
// ports and data dir (so it can be stopped and restarted under the
// platform), the real platform binary with --etcd, extra `--role gateway`
// processes, and testapp replicas. Every process it starts carries a marker
// in its environment and is killed at the end, on failure too.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Config bounds and shapes one chaos run.
type Config struct {
	// Iterations caps the faults injected (0: as many as Duration allows).
	Iterations int
	// Duration bounds the fault phase; the checks after it take up to
	// Converge + reconnect grace + a minute more.
	Duration time.Duration
	// Clients is how many players are connected at any time.
	Clients int
	// Seed drives every random choice (0: from the clock); it is printed so a
	// run can be replayed, as far as timing allows.
	Seed int64
	// Gateways is how many `--role gateway` processes run beside the
	// platform's own gateway (which dies with the platform).
	Gateways int
	// GatewayProcs is the platform's --gateway-procs: processes sharing its
	// gateway port (its workers drain, not die, when it is killed).
	GatewayProcs int
	// Faults names the kinds of fault to inject (empty: every kind): any of
	// platform, gateway, replica, etcd, etcd+platform; and sabotage, never
	// chosen by default, which proves the checks can fail (see sabotage).
	Faults []string
	// Gap is the mean pause between two faults.
	Gap time.Duration
	// RolloutEvery is the mean time between two rollouts.
	RolloutEvery time.Duration
	// SessionLife is a player's mean session length; players who leave are
	// replaced by new ones, so old revisions empty and retire.
	SessionLife time.Duration
	// Interval is how often each player sends a message (and waits for its echo).
	Interval time.Duration
	// Grace is the app's reconnect_grace.
	Grace time.Duration
	// Converge bounds the time the platform may take to settle after the
	// last fault, and (after reconnect grace) to retire every drained
	// revision once the players have left, before the run counts it stuck.
	Converge time.Duration
	// Dir is the work dir (etcd data, platform data, logs); empty: a temp
	// dir, removed after a run that met every goal.
	Dir string
	// Platform and Testapp are prebuilt binaries; empty: built from this module.
	Platform, Testapp string
	// Out receives the report; Verbose adds each unexpected event as it happens.
	Out     io.Writer
	Verbose bool
}

func main() {
	c := Config{Out: os.Stdout}
	flag.IntVar(&c.Iterations, "iterations", 0, "faults to inject (0: until -duration)")
	flag.DurationVar(&c.Duration, "duration", 2*time.Minute, "how long to inject faults")
	flag.IntVar(&c.Clients, "clients", 100, "players connected at any time")
	flag.Int64Var(&c.Seed, "seed", 0, "random seed (0: from the clock; printed)")
	flag.IntVar(&c.Gateways, "gateways", 1, "extra --role gateway processes beside the platform's own gateway")
	flag.IntVar(&c.GatewayProcs, "gateway-procs", 2, "the platform's --gateway-procs")
	faults := flag.String("faults", "", "comma-separated kinds of fault to inject (default: all): platform, gateway, replica, etcd, etcd+platform;\nsabotage (never by default) breaks the promise on purpose, to see the checks fail")
	flag.DurationVar(&c.Gap, "gap", 4*time.Second, "mean pause between faults")
	flag.DurationVar(&c.RolloutEvery, "rollout-every", 8*time.Second, "mean time between rollouts")
	flag.DurationVar(&c.SessionLife, "session-life", 20*time.Second, "mean session length of a player")
	flag.DurationVar(&c.Interval, "interval", 250*time.Millisecond, "message interval per player")
	flag.DurationVar(&c.Grace, "grace", 5*time.Second, "the app's reconnect_grace")
	flag.DurationVar(&c.Converge, "converge", 90*time.Second, "bound on convergence after the last fault")
	flag.StringVar(&c.Dir, "dir", "", "work dir (default: a temp dir, kept when a goal is missed)")
	flag.StringVar(&c.Platform, "platform", "", "prebuilt platform binary (default: build it)")
	flag.StringVar(&c.Testapp, "testapp", "", "prebuilt testapp binary (default: build it)")
	flag.BoolVar(&c.Verbose, "v", false, "print every unexpected drop and connect failure as it happens")
	flag.Parse()
	if *faults != "" {
		c.Faults = strings.Split(*faults, ",")
	}

	// Ctrl-C ends the run early but still stops every process it started.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := Run(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	if len(sum.Failures()) > 0 {
		os.Exit(1)
	}
}
