package main

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSplit(t *testing.T) {
	for _, c := range []struct {
		n, parts int
		want     []int
	}{
		{50000, 6, []int{8334, 8334, 8333, 8333, 8333, 8333}},
		{5000, 1, []int{5000}},
		{7, 3, []int{3, 2, 2}},
		{2, 4, []int{1, 1, 0, 0}},
		{0, 2, []int{0, 0}},
		{5, 0, nil},
	} {
		got := split(c.n, c.parts)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("split(%d, %d) = %v, want %v", c.n, c.parts, got, c.want)
		}
		sum := 0
		for _, v := range got {
			sum += v
		}
		if c.parts > 0 && sum != c.n {
			t.Errorf("split(%d, %d) sums to %d", c.n, c.parts, sum)
		}
	}
}

func TestClientProcs(t *testing.T) {
	for _, c := range []struct{ sessions, asked, want int }{
		{50000, 0, 6},
		{54000, 0, 6},
		{54001, 0, 7},
		{5000, 0, 1},
		{0, 0, 1},
		{50000, 8, 8},
	} {
		if got := clientProcs(c.sessions, c.asked); got != c.want {
			t.Errorf("clientProcs(%d, %d) = %d, want %d", c.sessions, c.asked, got, c.want)
		}
	}
}

func TestSampleIndices(t *testing.T) {
	for _, c := range []struct {
		held, k int
		want    []int
	}{
		{10, 5, []int{0, 2, 4, 6, 8}},
		{3, 5, []int{0, 1, 2}},
		{8334, 1, []int{0}},
		{0, 5, nil},
		{10, 0, nil},
	} {
		if got := sampleIndices(c.held, c.k); !reflect.DeepEqual(got, c.want) {
			t.Errorf("sampleIndices(%d, %d) = %v, want %v", c.held, c.k, got, c.want)
		}
	}
	// Spread over all sessions, distinct, in range.
	got := sampleIndices(8334, 17)
	seen := map[int]bool{}
	for _, i := range got {
		if i < 0 || i >= 8334 || seen[i] {
			t.Fatalf("sampleIndices(8334, 17) = %v: out of range or repeated", got)
		}
		seen[i] = true
	}
	if got[len(got)-1] < 8334*15/17 {
		t.Errorf("sampleIndices(8334, 17) = %v: does not reach the last sessions", got)
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct{ err, want string }{
		{"dial tcp 127.0.0.2:0->127.0.0.1:4001: socket: too many open files", "too many open files"},
		{"dial tcp 127.0.0.3:0->127.0.0.1:4001: bind: address already in use", "no free source port"},
		{"dial tcp 127.0.0.1:4001: connect: connection refused", "connection refused"},
		{"read tcp 127.0.0.2:40001->127.0.0.1:4001: i/o timeout", "timeout"},
		{"context deadline exceeded", "timeout"},
		{"websocket: bad handshake", "bad handshake"},
		{"unexpected EOF", "closed during the handshake"},
		{"something else entirely", "something else entirely"},
	} {
		if got := classify(c.err); got != c.want {
			t.Errorf("classify(%q) = %q, want %q", c.err, got, c.want)
		}
	}
	if got := classify(strings.Repeat("x", 100)); len(got) != 60 {
		t.Errorf("a long unknown error is kept whole (%d chars): kinds must stay few", len(got))
	}
}

func TestAgainstBar(t *testing.T) {
	if got := kbPerSession(175000, 50000); got != 3.5 {
		t.Errorf("kbPerSession(175000, 50000) = %v, want 3.5", got)
	}
	if got := kbPerSession(100, 0); got != 0 {
		t.Errorf("kbPerSession(_, 0) = %v, want 0", got)
	}
	for _, c := range []struct {
		kb   float64
		want string
	}{
		{2.8, "2.80 KB/session × 50000 = 140.0 MB; bar 3.5 KB × 50000 ≈ 175 MB: under the bar (80% of it)"},
		{3.5, "under the bar (100% of it)"},
		{4.2, "OVER the bar (120% of it)"},
	} {
		if got := againstBar(c.kb, 50000); !strings.Contains(got, c.want) {
			t.Errorf("againstBar(%v, 50000) = %q, want it to hold %q", c.kb, got, c.want)
		}
	}
}

func TestSteady(t *testing.T) {
	for _, c := range []struct {
		prev, now int
		want      bool
	}{
		{100000, 100100, true},  // within 0.2%
		{100000, 100300, false}, // 0.3%
		{100000, 99800, true},
		{1000, 1064, true}, // 64 KB is always allowed
		{1000, 1065, false},
	} {
		if got := steady(c.prev, c.now); got != c.want {
			t.Errorf("steady(%d, %d) = %v, want %v", c.prev, c.now, got, c.want)
		}
	}
}

func TestPlans(t *testing.T) {
	urls := []string{"ws://a/", "ws://b/", "ws://c/"}
	ps := plans(config{sessions: 50000, clientProcs: 6, rate: 1200, concurrency: 32}, urls, time.Second)
	if len(ps) != 6 {
		t.Fatalf("%d plans, want 6", len(ps))
	}
	sessions, rate, next := 0, 0.0, 0
	for i, p := range ps {
		if p.Offset != next {
			t.Errorf("plan %d starts at session %d, want %d: the processes' sessions must follow each other", i, p.Offset, next)
		}
		if p.Sessions > perClientProc {
			t.Errorf("plan %d holds %d sessions, over %d", i, p.Sessions, perClientProc)
		}
		if len(p.URLs) != 3 || len(p.Sources) != 8 || p.Concurrency != 32 || p.DialTimeout != time.Second {
			t.Errorf("plan %d = %+v: URLs, sources and bounds not passed on", i, p)
		}
		next += p.Sessions
		sessions += p.Sessions
		rate += p.Rate
	}
	if sessions != 50000 || math.Abs(rate-1200) > 1e-6 {
		t.Errorf("plans hold %d sessions at %.3f/s, want 50000 at 1200/s", sessions, rate)
	}
}

func TestFit(t *testing.T) {
	// growth (KB) = 4800 + 3.0 × sessions
	xs := []float64{9203, 4778, 6160, 4386}
	var ys []float64
	for _, x := range xs {
		ys = append(ys, 4800+3.0*x)
	}
	a, b, ok := fit(xs, ys)
	if !ok || math.Abs(a-4800) > 1e-6 || math.Abs(b-3.0) > 1e-9 {
		t.Errorf("fit = %v + %v·x (ok %v), want 4800 + 3·x", a, b, ok)
	}
	for _, c := range []struct{ xs, ys []float64 }{
		{[]float64{5000, 5000, 5000}, []float64{1, 2, 3}}, // no spread
		{[]float64{1}, []float64{1}},
		{[]float64{1, 2}, []float64{1}},
	} {
		if _, _, ok := fit(c.xs, c.ys); ok {
			t.Errorf("fit(%v, %v) ok: want no line", c.xs, c.ys)
		}
	}
}
