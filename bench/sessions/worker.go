package main

// A client process: this program run again with -worker. One process may
// hold 20000 fds, so 50,000 client sockets need several. The coordinator
// writes a plan (one JSON line) on the worker's stdin, then commands ("echo
// K", "close"); the worker answers with JSON lines on stdout. When its stdin
// closes (the coordinator is gone) it closes everything and exits.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// workerArg is the first argument that makes this program a client process.
const workerArg = "-worker"

// plan is what one client process is to open.
type plan struct {
	Sessions int `json:"sessions"`
	// Offset is the index of its first session among all of the run's: a
	// session's index picks its URL (replica) and its source address
	// round-robin, so the processes together spread evenly.
	Offset int `json:"offset"`
	// Rate is this process's share of -rate, sessions per second.
	Rate float64 `json:"rate"`
	// Concurrency bounds the handshakes under way at once.
	Concurrency int           `json:"concurrency"`
	DialTimeout time.Duration `json:"dial_timeout"`
	URLs        []string      `json:"urls"`
	Sources     []string      `json:"sources"`
}

// report is one line a client process writes.
type report struct {
	// Event is progress (while opening), opened, echo or closed.
	Event  string         `json:"event"`
	Held   int            `json:"held"`
	Failed int            `json:"failed"`
	Kinds  map[string]int `json:"kinds,omitempty"` // failures by kind
	First  string         `json:"first,omitempty"` // the first failure's message
	// Elapsed is how long opening took.
	Elapsed time.Duration `json:"elapsed,omitempty"`
	// EchoOK of EchoChecked sampled sessions echoed; EchoMax is the slowest.
	EchoOK      int           `json:"echo_ok,omitempty"`
	EchoChecked int           `json:"echo_checked,omitempty"`
	EchoMax     time.Duration `json:"echo_max,omitempty"`
}

// echoPayload is what an echo sends and expects back.
var echoPayload = []byte("discovery idle session: still here?")

// echoTimeout bounds one sampled round trip.
const echoTimeout = 10 * time.Second

// worker runs a client process over in and out; it returns the exit code.
func worker(in io.Reader, out io.Writer) int {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var p plan
	if !sc.Scan() {
		fmt.Fprintln(os.Stderr, "worker: no plan on stdin")
		return 2
	}
	if err := json.Unmarshal(sc.Bytes(), &p); err != nil || len(p.URLs) == 0 || len(p.Sources) == 0 || p.Rate <= 0 || p.Concurrency < 1 {
		fmt.Fprintf(os.Stderr, "worker: bad plan %q: %v\n", sc.Text(), err)
		return 2
	}
	var mu sync.Mutex // one line at a time on out
	enc := json.NewEncoder(out)
	send := func(r report) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(r)
	}
	// Commands come only once the sessions are open; an end of stdin before
	// (the coordinator gave up or died) stops the opening at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmds := make(chan string)
	go func() {
		defer close(cmds)
		defer cancel()
		for sc.Scan() {
			cmds <- strings.TrimSpace(sc.Text())
		}
	}()

	s := &sessions{plan: p, kinds: map[string]int{}}
	defer s.closeAll()
	s.open(ctx, send)
	send(s.report("opened"))
	for cmd := range cmds {
		switch verb, arg, _ := strings.Cut(cmd, " "); verb {
		case "echo":
			k, _ := strconv.Atoi(arg)
			r := s.report("echo")
			r.EchoOK, r.EchoChecked, r.EchoMax, r.First = s.echo(k)
			send(r)
		case "close":
			n := s.closeAll()
			send(report{Event: "closed", Held: n})
			return 0
		default:
			fmt.Fprintf(os.Stderr, "worker: unknown command %q\n", cmd)
		}
	}
	return 0
}

// sessions are a client process's open sessions.
type sessions struct {
	plan plan

	mu      sync.Mutex
	conns   []*websocket.Conn
	failed  int
	kinds   map[string]int
	first   string
	elapsed time.Duration
}

// open opens the plan's sessions at its rate, a bounded number of
// handshakes at a time, reporting progress every few seconds. A failed
// session is counted, not retried: the report says how many failed and why.
func (s *sessions) open(ctx context.Context, send func(report)) {
	p := s.plan
	dialers := make([]*websocket.Dialer, len(p.Sources))
	for i, src := range p.Sources {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: p.DialTimeout}
		// Small buffers: the client side's memory is not what is measured,
		// and 9,000 sessions in one process should not cost it much.
		dialers[i] = &websocket.Dialer{NetDialContext: nd.DialContext, HandshakeTimeout: p.DialTimeout, ReadBufferSize: 256, WriteBufferSize: 256}
	}
	interval := time.Duration(float64(time.Second) / p.Rate)
	sem := make(chan struct{}, p.Concurrency)
	var wg sync.WaitGroup
	s.mu.Lock()
	s.conns = make([]*websocket.Conn, 0, p.Sessions)
	s.mu.Unlock()
	t0 := time.Now()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	progress := make(chan struct{})
	go func() {
		for {
			select {
			case <-progress:
				return
			case <-tick.C:
				send(s.report("progress"))
			}
		}
	}()
	defer close(progress)
	for j := 0; j < p.Sessions; j++ {
		// The schedule is an upper bound: when handshakes take longer than
		// the interval, the semaphore holds the rest back.
		if wait := time.Until(t0.Add(time.Duration(j) * interval)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		g := p.Offset + j
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(ctx, p.DialTimeout)
			defer cancel()
			c, resp, err := dialers[g%len(dialers)].DialContext(dctx, p.URLs[g%len(p.URLs)], nil)
			s.mu.Lock()
			defer s.mu.Unlock()
			if err != nil {
				msg := err.Error()
				if resp != nil { // the gateway answered, but not 101: say what
					body := make([]byte, 200)
					n, _ := io.ReadFull(resp.Body, body)
					msg = fmt.Sprintf("%s: %s %s", msg, resp.Status, bytes.TrimSpace(body[:n]))
				}
				s.failed++
				s.kinds[classify(msg)]++
				if s.first == "" {
					s.first = msg
				}
				return
			}
			s.conns = append(s.conns, c)
		}()
	}
	wg.Wait()
	s.mu.Lock()
	s.elapsed = time.Since(t0)
	s.mu.Unlock()
}

func (s *sessions) report(event string) report {
	s.mu.Lock()
	defer s.mu.Unlock()
	kinds := make(map[string]int, len(s.kinds))
	for k, v := range s.kinds {
		kinds[k] = v
	}
	return report{Event: event, Held: len(s.conns), Failed: s.failed, Kinds: kinds, First: s.first, Elapsed: s.elapsed}
}

// echo sends one message on k sessions spread over the held ones and waits
// for each to come back, one after the other.
func (s *sessions) echo(k int) (ok, checked int, slowest time.Duration, first string) {
	s.mu.Lock()
	conns := s.conns
	s.mu.Unlock()
	for _, i := range sampleIndices(len(conns), k) {
		c := conns[i]
		checked++
		t0 := time.Now()
		err := roundTrip(c)
		if err != nil {
			if first == "" {
				first = err.Error()
			}
			continue
		}
		ok++
		slowest = max(slowest, time.Since(t0))
	}
	return ok, checked, slowest, first
}

func roundTrip(c *websocket.Conn) error {
	deadline := time.Now().Add(echoTimeout)
	_ = c.SetWriteDeadline(deadline)
	_ = c.SetReadDeadline(deadline)
	defer func() {
		_ = c.SetWriteDeadline(time.Time{})
		_ = c.SetReadDeadline(time.Time{})
	}()
	if err := c.WriteMessage(websocket.BinaryMessage, echoPayload); err != nil {
		return err
	}
	_, msg, err := c.ReadMessage()
	if err != nil {
		return err
	}
	if !bytes.Equal(msg, echoPayload) {
		return fmt.Errorf("echo came back as %q", msg)
	}
	return nil
}

// closeAll closes every held session (a TCP close; the gateway then closes
// its side to the replica) and returns how many it closed.
func (s *sessions) closeAll() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.conns)
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.conns = nil
	return n
}
