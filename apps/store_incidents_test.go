package apps_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/apps"
)

func incidentEvents(t *testing.T, svc *apps.Service, tenant, app string) []apps.Event {
	t.Helper()
	evs, err := svc.Events(context.Background(), tenant, app, "", 0)
	require.NoError(t, err)
	var out []apps.Event
	for _, e := range evs {
		if e.Type == apps.EventEtcdOutage {
			out = append(out, e)
		}
	}
	return out
}

// TestAnIncidentIsToldToEveryAppOnce: every app of every tenant gets one
// event, however many instances saw the incident; a later one is recorded too.
func TestAnIncidentIsToldToEveryAppOnce(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t)
	for _, ta := range [][2]string{{"default", "arena"}, {"default", "chat"}, {"acme", "arena"}} {
		_, err := svc.CreateApp(ctx, ta[0], apps.AppSpec{Name: ta[1]})
		require.NoError(t, err)
	}
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	in := apps.Incident{Type: apps.EventEtcdOutage, Start: start, End: start.Add(12 * time.Second), Message: "store unreachable"}
	ok, err := svc.Store.RecordIncident(ctx, in)
	require.NoError(t, err)
	assert.True(t, ok)

	// Another instance's view of the same outage: its probe saw it a little later.
	other := in
	other.Start, other.End = start.Add(time.Second), start.Add(13*time.Second)
	ok, err = svc.Store.RecordIncident(ctx, other)
	require.NoError(t, err)
	assert.False(t, ok, "one incident is recorded once")

	for _, ta := range [][2]string{{"default", "arena"}, {"default", "chat"}, {"acme", "arena"}} {
		evs := incidentEvents(t, svc, ta[0], ta[1])
		require.Len(t, evs, 1, "%s/%s", ta[0], ta[1])
		assert.Equal(t, "store unreachable", evs[0].Message)
		assert.Equal(t, ta[1], evs[0].App)
	}

	later := in
	later.Start, later.End = start.Add(time.Hour), start.Add(time.Hour+time.Second)
	ok, err = svc.Store.RecordIncident(ctx, later)
	require.NoError(t, err)
	assert.True(t, ok, "a later outage is a new incident")
	assert.Len(t, incidentEvents(t, svc, "acme", "arena"), 2)
}
