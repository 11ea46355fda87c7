package discovery

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Notice stream tuning.
const (
	// streamIdleTimeout drops a stream silent that long: the platform
	// writes a comment every 15 s, so the connection is dead.
	streamIdleTimeout = 45 * time.Second
	// Reconnect backoff: from streamBackoffMin, doubling to
	// streamBackoffMax, each delay ±50 %.
	streamBackoffMin = 100 * time.Millisecond
	streamBackoffMax = 10 * time.Second
	// maxEventBytes bounds one event of the stream.
	maxEventBytes = 64 << 10
)

// FollowNotices reads the revision's notice stream (sdk/PROTOCOL.md §3b)
// with the replica's capability until ctx ends, delivering each new notice
// like DrainHook does (a notice that came both ways is delivered once). It
// reconnects when the stream drops, with exponential backoff.
//
// It returns ctx's error when ctx ends; nil when the stream says the
// revision is over (retired or failed: nothing more will be told); and an
// error matching ErrUnauthorized or ErrNotFound (or a 501: a platform that
// serves no notices) when reconnecting cannot help.
func (r *Replica) FollowNotices(ctx context.Context) error {
	backoff := streamBackoffMin
	for {
		heard, over, err := r.followOnce(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if over {
			return nil
		}
		var e *Error
		if errors.As(err, &e) && (errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrNotFound) || e.Status == http.StatusNotImplemented) {
			return err
		}
		if heard {
			backoff = streamBackoffMin // a stream that worked: start over
		}
		wait := jitter(backoff)
		if e != nil && e.RetryAfter > wait {
			wait = e.RetryAfter
		}
		r.logger().Info("discovery: notice stream dropped; reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, streamBackoffMax)
	}
}

// jitter spreads d by ±50 %.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d+1)
}

// followOnce reads one connection of the stream until it ends. heard says
// whether it delivered an event; over that the revision is over.
func (r *Replica) followOnce(ctx context.Context) (heard, over bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.API+r.revisionPath("notices"), nil)
	if err != nil {
		return false, false, fmt.Errorf("discovery: notice stream: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set(LeaseTokenHeader, r.LeaseToken)
	idle := r.streamIdle
	if idle <= 0 {
		idle = streamIdleTimeout
	}
	// A silent connection is cut: the body's Read then fails.
	var silent atomic.Bool
	watchdog := time.AfterFunc(idle, func() { silent.Store(true); cancel() })
	defer watchdog.Stop()
	resp, err := r.client().Do(req)
	if err != nil {
		if silent.Load() {
			err = fmt.Errorf("no answer for %s", idle)
		}
		return false, false, fmt.Errorf("discovery: notice stream: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, false, responseError("notice stream", resp)
	}

	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), maxEventBytes)
	var data []string
	for sc.Scan() {
		watchdog.Reset(idle)
		line := sc.Text()
		switch {
		case line == "": // the end of an event
			if len(data) == 0 {
				continue
			}
			payload := strings.Join(data, "\n")
			data = data[:0]
			var n Notice
			if err := json.Unmarshal([]byte(payload), &n); err != nil {
				r.logger().Warn("discovery: notice stream: not a notice", "err", err)
				continue
			}
			heard = true
			if n.State == "retired" || n.State == "failed" {
				return heard, true, nil
			}
			if r.check(n) == nil {
				r.offer(n)
			}
		case strings.HasPrefix(line, ":"): // a comment: the keep-alive
		default:
			field, value, _ := strings.Cut(line, ":")
			if field == "data" {
				data = append(data, strings.TrimPrefix(value, " "))
			} // event, id, retry: not used by the platform
		}
	}
	err = sc.Err()
	if silent.Load() {
		err = fmt.Errorf("silent for %s", idle)
	} else if err == nil {
		err = errors.New("the platform ended the stream")
	}
	return heard, false, fmt.Errorf("discovery: notice stream: %w", err)
}
