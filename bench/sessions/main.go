// Command sessions shows the platform holding -sessions (50,000) idle
// WebSocket sessions on one machine, and prints what they cost (issue 20).
//
// It runs the real platform binary on an etcd it embeds: a control plane
// (`--role api`) and the gateway under test, `--role gateway --gateway-procs
// N`, whose N processes share one listening socket (each holds ~10k
// sessions: the fd limit is 20000 per process and a proxied session takes
// two; the kernel hands each connection to whichever process accepts first,
// which shares them out unevenly, so the default is 8 processes for 50,000,
// not 6), in front of an echo app of -replicas testapp replicas. Client
// sockets need fds too, so the program runs itself again as -client-procs
// client processes of at most 9,000 sessions each, dialling from
// 127.0.0.2-9 so that no source address runs out of ephemeral ports.
//
// Sessions are real WebSocket sessions through the gateway's port to a
// replica: each client process opens its share at its part of -rate, round
// robin over one endpoint URL per replica (asked from get-endpoint once per
// replica; a URL pins its replica, and reusing it is what a reconnecting
// player does). Once all are open and the gateway's RSS holds still (over
// two readings a second apart: what the GC has not yet given back counts, as
// in bench/gateway's KB per idle session) it reads every gateway process's
// RSS and fds, sends one echo on -sample sessions spread over all of them,
// closes them all and waits for every process's descriptors to come back. It prints sessions requested/opened/failed, the
// time to open them, per gateway process its pid, RSS and fds before, at the
// peak and after, the RSS growth of all gateway processes per session set
// against the bar of 3.5 KB a session (3.5 KB × 50,000 ≈ 175 MB), and the
// echo sample. It exits 1 unless every session opened, every sampled one
// echoed and every process's descriptors returned.
//
// Everything listens on 127.0.0.1, every wait is bounded (-timeout bounds
// the whole run), and every process it starts is stopped at the end, on an
// error or a Ctrl-C too.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/discovery-platform/discovery/bench/internal/rig"
)

// config is what the flags ask for.
type config struct {
	sessions     int
	gatewayProcs int
	replicas     int
	clientProcs  int
	rate         float64
	concurrency  int
	sample       int
	timeout      time.Duration
	platform     string
	testapp      string
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == workerArg {
		os.Exit(worker(os.Stdin, os.Stdout))
	}
	var c config
	flag.IntVar(&c.sessions, "sessions", 50000, "idle WebSocket sessions to open and hold")
	flag.IntVar(&c.gatewayProcs, "gateway-procs", 8, "processes serving the gateway port (--gateway-procs; each holds ~9.9k sessions at the 20000 fd limit, and the kernel shares connections out unevenly: keep the mean well below)")
	flag.IntVar(&c.replicas, "replicas", 8, "replicas of the echo app (each holds sessions/replicas fds)")
	flag.IntVar(&c.clientProcs, "client-procs", 0, "client processes holding the sessions; 0 = one per 9,000 sessions")
	flag.Float64Var(&c.rate, "rate", 1000, "sessions opened per second, all client processes together (an upper bound)")
	flag.IntVar(&c.concurrency, "concurrency", 32, "handshakes under way at once in each client process")
	flag.IntVar(&c.sample, "sample", 100, "sessions sampled for an echo round trip while all are open")
	flag.DurationVar(&c.timeout, "timeout", 30*time.Minute, "bound on the whole run")
	flag.StringVar(&c.platform, "platform", "", "prebuilt platform binary (default: build it, with discovery-supervisor beside it)")
	flag.StringVar(&c.testapp, "testapp", "", "prebuilt testapp binary (default: build it)")
	flag.Parse()
	if err := c.check(); err != nil {
		fmt.Fprintln(os.Stderr, "sessions:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ok, err := run(ctx, c)
	switch {
	case err != nil && errors.Is(ctx.Err(), context.Canceled):
		fmt.Fprintln(os.Stderr, "sessions: interrupted; everything it started is stopped")
		os.Exit(130)
	case err != nil:
		fmt.Fprintln(os.Stderr, "sessions:", err)
		os.Exit(1)
	case !ok:
		os.Exit(1)
	}
}

func (c *config) check() error {
	if c.sessions < 1 || c.gatewayProcs < 1 || c.gatewayProcs > 64 || c.replicas < 1 || c.clientProcs < 0 || c.rate <= 0 || c.concurrency < 1 || c.sample < 0 {
		return fmt.Errorf("-sessions, -replicas, -rate and -concurrency must be positive, -gateway-procs 1-64, -client-procs and -sample not negative")
	}
	c.clientProcs = clientProcs(c.sessions, c.clientProcs)
	if per := (c.sessions + c.clientProcs - 1) / c.clientProcs; per > 2*perClientProc {
		return fmt.Errorf("%d sessions per client process cannot fit its 20000 fds: raise -client-procs", per)
	}
	return nil
}

// run does one run; ok reports whether every session opened, every sampled
// one echoed and every descriptor came back.
func run(ctx context.Context, c config) (ok bool, err error) {
	dir, err := os.MkdirTemp("", "discovery-sessions-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	b := &bench{cfg: c, in: &installation{dir: dir, marker: rig.NewMarker()}}
	defer b.teardown()
	if err := setup(ctx, c, b.in); err != nil {
		return false, err
	}
	return b.measure(ctx)
}
