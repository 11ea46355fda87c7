package main

// The arithmetic of a run, kept pure so it is tested apart from processes
// and sockets: how sessions are shared among client processes, which of them
// are sampled for an echo, how a failure is counted, what a session costs.

import (
	"fmt"
	"strings"
	"time"
)

// perClientProc is how many sessions one client process holds at most: one
// fd each under the 20000 limit, with room left for what else it opens.
const perClientProc = 9000

// perGatewayProc is about what one gateway process holds under the same
// limit (two fds per proxied session).
const perGatewayProc = 9900

// barKB is the memory bar of issue 20: 3.5 KB of gateway RSS per idle
// session (3.5 KB × 50,000 ≈ 175 MB).
const barKB = 3.5

// split shares n among parts as evenly as it goes, the first ones taking one
// more when it does not divide.
func split(n, parts int) []int {
	if parts < 1 {
		return nil
	}
	out := make([]int, parts)
	for i := range out {
		out[i] = n / parts
		if i < n%parts {
			out[i]++
		}
	}
	return out
}

// clientProcs is how many client processes hold sessions: the number asked
// for, or (0) just enough that none holds more than perClientProc.
func clientProcs(sessions, asked int) int {
	if asked > 0 {
		return asked
	}
	return max(1, (sessions+perClientProc-1)/perClientProc)
}

// sampleIndices picks k of held sessions, spread evenly over them (each
// client process opened its sessions in order, round-robin over replicas and
// source addresses, so an even spread reaches all of them).
func sampleIndices(held, k int) []int {
	k = min(k, held)
	if k <= 0 {
		return nil
	}
	out := make([]int, k)
	for i := range out {
		out[i] = i * held / k
	}
	return out
}

// classify names the kind of a failed session, so a report counts kinds
// rather than printing thousands of messages that differ by a port.
func classify(err string) string {
	for _, k := range []struct{ needle, kind string }{
		{"too many open files", "too many open files"},
		{"cannot assign requested address", "no free source port"},
		{"address already in use", "no free source port"},
		{"connection refused", "connection refused"},
		{"connection reset", "connection reset"},
		{"i/o timeout", "timeout"},
		{"deadline exceeded", "timeout"},
		{"bad handshake", "bad handshake"},
		{"EOF", "closed during the handshake"},
	} {
		if strings.Contains(err, k.needle) {
			return k.kind
		}
	}
	if len(err) > 60 {
		return err[:60]
	}
	return err
}

// kbPerSession is RSS growth (KB) divided by the sessions that caused it.
func kbPerSession(growthKB, sessions int) float64 {
	if sessions <= 0 {
		return 0
	}
	return float64(growthKB) / float64(sessions)
}

// againstBar compares a cost per session with barKB, for sessions sessions.
func againstBar(kb float64, sessions int) string {
	bar := barKB * float64(sessions) / 1000 // MB, as the issue counts (KB × sessions / 1000)
	got := kb * float64(sessions) / 1000
	rel := "under"
	if kb > barKB {
		rel = "OVER"
	}
	return fmt.Sprintf("%.2f KB/session × %d = %.1f MB; bar %.1f KB × %d ≈ %.0f MB: %s the bar (%.0f%% of it)",
		kb, sessions, got, barKB, sessions, bar, rel, 100*kb/barKB)
}

// steady reports whether an RSS reading (KB) moved by at most 0.2% (and at
// least 64 KB is allowed) since the previous one: a Go heap still grows for
// a moment after the last handshake, so peak figures wait for it.
func steady(prev, now int) bool {
	d := now - prev
	if d < 0 {
		d = -d
	}
	return d <= max(64, prev/500)
}

// sources are the client addresses sessions dial from: a socket bound to a
// source address takes a port on that address whatever the destination, so
// eight of them hold 50,000 sessions far below their ~28k ephemeral ports
// each.
var sources = []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.8", "127.0.0.9"}

// plans shares the run's sessions among its client processes: each its
// share of the sessions and of the rate, and the index of its first session
// so that, together, they go round robin over the URLs and sources.
func plans(c config, urls []string, dialTimeout time.Duration) []plan {
	var out []plan
	offset := 0
	for _, n := range split(c.sessions, c.clientProcs) {
		out = append(out, plan{Sessions: n, Offset: offset, Rate: c.rate * float64(max(n, 1)) / float64(c.sessions),
			Concurrency: c.concurrency, DialTimeout: dialTimeout, URLs: urls, Sources: sources})
		offset += n
	}
	return out
}

// fit is the least-squares line y ≈ a + b·x through the points; ok is false
// when the xs do not spread (a line through one x means nothing).
func fit(xs, ys []float64) (a, b float64, ok bool) {
	n := float64(len(xs))
	if len(xs) < 2 || len(xs) != len(ys) {
		return 0, 0, false
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if d <= 1e-9*max(1, sxx) {
		return 0, 0, false
	}
	b = (n*sxy - sx*sy) / d
	return (sy - b*sx) / n, b, true
}
