package client

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrWillNotReach is returned by WaitRevision when the revision moved past
// the state waited for, or ended (failed, retired) without reaching it.
var ErrWillNotReach = errors.New("the revision will not reach that state")

// order ranks the states a healthy revision goes through.
var order = map[RevisionState]int{Pending: 0, Starting: 1, Active: 2, Draining: 3, Retired: 4, Failed: 5}

// WaitRevision polls a revision until it is in state want and returns it. It
// stops early, with ErrWillNotReach, when the revision can no longer get
// there (it failed, or is already past want), and with the context's error
// when ctx ends: bound it with context.WithTimeout.
func (c *Client) WaitRevision(ctx context.Context, tenant, app, rev string, want RevisionState) (Revision, error) {
	if _, ok := order[want]; !ok {
		return Revision{}, fmt.Errorf("wait for revision %s: unknown state %q (pending, starting, active, draining, retired, failed)", rev, want)
	}
	interval := c.poll
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	for {
		r, err := c.GetRevision(ctx, tenant, app, rev)
		switch {
		case err == nil && r.State == want:
			return r, nil
		case err == nil && !reachable(r.State, want):
			why := ""
			if r.Reason != "" {
				why = ": " + r.Reason
			}
			return r, fmt.Errorf("revision %s of %s is %s%s: %w (%s)", rev, app, r.State, why, ErrWillNotReach, want)
		case err != nil && !errors.Is(err, ErrUnavailable):
			return r, err
		}
		select {
		case <-ctx.Done():
			return r, fmt.Errorf("revision %s of %s is %s, still not %s: %w", rev, app, r.State, want, ctx.Err())
		case <-time.After(interval):
		}
		if interval < time.Second {
			interval += interval / 2
		}
	}
}

// reachable reports whether a revision in state have may still get to want.
func reachable(have, want RevisionState) bool {
	switch {
	case want == Failed:
		return have == Pending || have == Starting
	case have == Failed:
		return false
	default:
		return order[have] <= order[want]
	}
}

// FollowEvents calls fn with each event of an app's activity log after the
// event id after ("" from the oldest kept), as they happen, until ctx ends
// (then it returns ctx's error) or fn returns an error (then it returns that
// error). It polls; a lost platform ends it with ErrUnreachable.
func (c *Client) FollowEvents(ctx context.Context, tenant, app, after string, fn func(Event) error) error {
	interval := c.poll
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	for {
		evs, err := c.ListEvents(ctx, tenant, app, after, 500)
		if err != nil && !errors.Is(err, ErrUnavailable) {
			return err
		}
		for _, e := range evs {
			if err := fn(e); err != nil {
				return err
			}
			after = e.ID
		}
		if len(evs) == 500 {
			continue // more are waiting
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
