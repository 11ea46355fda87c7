// Package events is dsh's view of an app's activity log: deployed, became
// active, draining with N sessions, retired, crashed, scaled, capped, drain
// notices (how many replicas were told) and handoffs (how many players moved,
// how many fell back to get-endpoint). Each line is marked with its type's
// symbol (client.Event.Symbol).
package events

import (
	"errors"
	"fmt"

	"github.com/discovery-platform/discovery/client"
	"github.com/discovery-platform/discovery/shell/lib/dsh"
)

// kept is how many events the platform keeps per app.
const kept = 500

// All returns every event the platform keeps for app (at most 500), oldest
// first.
func All(app string) ([]client.Event, error) {
	c, err := dsh.Connected()
	if err != nil {
		return nil, err
	}
	return c.ListEvents(dsh.Context(), dsh.Tenant(), app, "", kept)
}

// List returns app's last 30 events, oldest first.
func List(app string) ([]client.Event, error) { return Last(app, 30) }

// Last returns app's last n events, oldest first.
func Last(app string, n int) ([]client.Event, error) {
	evs, err := All(app)
	if len(evs) > n {
		evs = evs[len(evs)-n:]
	}
	return evs, err
}

// Notices returns the drain notices of app's activity log, oldest first:
// which revision's replicas were told what, and how many of them.
func Notices(app string) ([]client.DrainNotice, error) {
	evs, err := All(app)
	var out []client.DrainNotice
	for _, e := range evs {
		if n, ok := e.Notice(); ok {
			out = append(out, n)
		}
	}
	return out, err
}

// Handoffs returns the handoff counts of app's activity log, oldest first:
// players moved from a draining revision to the active one, and those that
// could not be (they reconnect through get-endpoint).
func Handoffs(app string) ([]client.HandoffCount, error) {
	evs, err := All(app)
	var out []client.HandoffCount
	for _, e := range evs {
		if h, ok := e.Handoff(); ok {
			out = append(out, h)
		}
	}
	return out, err
}

// After returns app's events after the event id after, oldest first.
func After(app, after string) ([]client.Event, error) {
	c, err := dsh.Connected()
	if err != nil {
		return nil, err
	}
	return c.ListEvents(dsh.Context(), dsh.Tenant(), app, after, kept)
}

// Follow prints app's last 10 events, then each new one as it happens, until
// Ctrl-C.
func Follow(app string) error {
	last := ""
	recent, err := Last(app, 10)
	if err != nil {
		return err
	}
	for _, e := range recent {
		fmt.Fprintln(dsh.Output(), e)
		last = e.ID
	}
	return Watch(app, last, func(e client.Event) bool {
		fmt.Fprintln(dsh.Output(), e)
		return true
	})
}

// errStop ends Watch when fn returns false.
var errStop = errors.New("stop")

// Watch calls fn with each of app's events after the event id after ("" for
// the oldest kept), as they happen, until fn returns false or Ctrl-C. A
// panic in fn ends Watch with an error, never dsh.
func Watch(app, after string, fn func(client.Event) bool) error {
	c, err := dsh.Connected()
	if err != nil {
		return err
	}
	err = c.FollowEvents(dsh.Context(), dsh.Tenant(), app, after, func(e client.Event) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("events.Watch: the function panicked: %v", r)
			}
		}()
		if !fn(e) {
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}
