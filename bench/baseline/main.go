// Command baseline checks that the gateway gives back what sessions take:
// it opens -sessions WebSocket sessions through -gateways platform
// processes, closes them all, and fails unless every process's goroutines,
// open file descriptors and heap in use return to within a margin of their
// baseline before -settle passes. It prints each process's figures before,
// at the peak and after (RSS too, which is reported but not checked).
//
// One process may hold 20000 fds and a gateway holds 2 per session, so 10k
// sessions need two gateway processes: each is a platform instance
// (`--role all`, sharing one etcd and one replica dir), read through its
// API's /metrics (go_goroutines, go_memstats_heap_inuse_bytes, …). -tls
// serves them with a self-signed certificate, so the sessions are wss://. Clients are spread over the
// gateways and over source addresses 127.0.0.2-9. Everything listens on
// loopback and is stopped at the end.
//
// Each check prints the KB of RSS (and of live heap) per idle session at
// the peak, over all gateway processes. -both runs the check over ws://,
// then over wss:// on fresh processes, and prints both figures side by
// side: the memory an idle wss session costs beyond a ws one.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Config shapes one check.
type Config struct {
	// Sessions is how many sessions are opened at once, then closed.
	Sessions int
	// Gateways is how many platform processes carry them.
	Gateways int
	// Replicas is the echo app's replica count.
	Replicas int
	// Settle bounds the return to baseline after the last session closed. A
	// Go heap shrinks at the next GC; the runtime forces one every 2 minutes
	// at the latest, and the plain HTTP traffic the check keeps flowing
	// through the gateways (as any live gateway has) usually brings it sooner.
	Settle time.Duration
	// HeapMargin is the allowed heap growth over the baseline, as a fraction
	// of it; HeapSlack the allowed growth in bytes; the larger one applies.
	HeapMargin float64
	HeapSlack  float64
	// GoroutineSlack and FDSlack are the allowed counts over the baseline.
	GoroutineSlack, FDSlack int
	// Dir is the work dir (empty: a temp dir, removed at the end).
	Dir string
	// TLS serves the platforms with --tls-cert: the sessions are wss://.
	TLS bool
	// Platform and Testapp are prebuilt binaries; empty: built from this module.
	Platform, Testapp string
	Out               io.Writer
}

func main() {
	c := Config{Out: os.Stdout}
	flag.IntVar(&c.Sessions, "sessions", 10000, "sessions to open at once, then close")
	flag.IntVar(&c.Gateways, "gateways", 2, "gateway processes sharing the sessions (2 fds per session each; the fd limit is 20000)")
	flag.IntVar(&c.Replicas, "replicas", 4, "replicas of the echo app")
	flag.DurationVar(&c.Settle, "settle", 150*time.Second, "bound on the return to baseline after the sessions closed")
	flag.Float64Var(&c.HeapMargin, "heap-margin", 0.10, "allowed heap over baseline, as a fraction of it")
	flag.Float64Var(&c.HeapSlack, "heap-slack-mb", 2, "allowed heap over baseline in MB (the larger allowance applies)")
	flag.IntVar(&c.GoroutineSlack, "goroutine-slack", 10, "allowed goroutines over baseline")
	flag.IntVar(&c.FDSlack, "fd-slack", 10, "allowed open fds over baseline")
	flag.BoolVar(&c.TLS, "tls", false, "serve the platforms over TLS (a self-signed certificate): the sessions are wss://")
	both := flag.Bool("both", false, "run the check over ws://, then over wss:// (fresh processes), and print KB per idle session for each")
	flag.StringVar(&c.Platform, "platform", "", "prebuilt platform binary (default: build it)")
	flag.StringVar(&c.Testapp, "testapp", "", "prebuilt testapp binary (default: build it)")
	flag.Parse()
	c.HeapSlack *= 1 << 20

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	modes := []bool{c.TLS}
	if *both {
		modes = []bool{false, true}
	}
	failed := false
	var summary []string
	for _, tls := range modes {
		c.TLS = tls
		if *both {
			fmt.Fprintf(c.Out, "\n===== %s:// sessions =====\n", c.scheme())
		}
		res, err := Run(ctx, c)
		if err != nil {
			fmt.Fprintln(os.Stderr, "baseline:", err)
			os.Exit(2)
		}
		failed = failed || len(res.Failures) > 0
		rss, live := res.PerSession()
		summary = append(summary, fmt.Sprintf("%-4s RSS %6.2f KB   live heap %6.2f KB", c.scheme(), rss, live))
	}
	if *both {
		fmt.Fprintf(c.Out, "\n== KB per idle session at the peak (%d sessions over %d gateway processes) ==\n", c.Sessions, max(c.Gateways, 1))
		for _, line := range summary {
			fmt.Fprintln(c.Out, line)
		}
	}
	if failed {
		os.Exit(1)
	}
}
