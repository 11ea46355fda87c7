package apps

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNoticeForAndNotable(t *testing.T) {
	now := time.Date(2026, 12, 2, 17, 0, 0, 0, time.UTC)
	since := now.Add(-time.Minute)
	app := App{Tenant: "acme", Name: "arena", DrainTimeout: Duration(10 * time.Minute)}
	rev := Revision{ID: "r1", Tenant: "acme", App: "arena", State: Draining, Reason: "superseded by r2", DrainingAt: &since}

	n := NoticeFor(app, rev, "r2", now)
	assert.Equal(t, since, n.SentAt, "stamped with the change, not the delivery")
	assert.Equal(t, Draining, n.State)
	assert.Equal(t, "r2", n.ActiveRevision)
	assert.Equal(t, "superseded by r2", n.Reason)
	require.NotNil(t, n.Deadline)
	assert.Equal(t, since.Add(10*time.Minute), *n.Deadline)

	app.DrainTimeout = 0
	assert.Nil(t, NoticeFor(app, rev, "r2", now).Deadline, "no drain_timeout: drains until empty")

	rev.State, rev.Reason = Active, ""
	n = NoticeFor(app, rev, "r1", now)
	assert.Equal(t, Active, n.State)
	assert.Nil(t, n.Deadline)
	assert.Equal(t, "active", n.Reason)

	cases := []struct {
		prev, next RevisionState
		want       bool
	}{
		{Active, Draining, true},
		{Draining, Active, true}, // re-activated
		{Starting, Active, false},
		{Draining, Draining, false},
		{Draining, Retired, false},
		{Pending, Draining, true},
		{Active, Retired, false},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, Notable(c.prev, c.next), "%s -> %s", c.prev, c.next)
	}
}
