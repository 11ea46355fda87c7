package apps

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestNext(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { v := t0.Add(-d); return &v }
	app := App{Replicas: 2, ReconnectGrace: Duration(30 * time.Second), StartTimeout: Duration(time.Minute)}
	withDrain := app
	withDrain.DrainTimeout = Duration(10 * time.Minute)

	cases := []struct {
		name string
		app  App
		rev  Revision
		obs  Observation
		want RevisionState
	}{
		{"pending starts", app, Revision{State: Pending}, Observation{}, Starting},
		{"pending retired when app deleted", app, Revision{State: Pending}, Observation{Deleting: true}, Retired},
		{"starting waits for replicas", app, Revision{State: Starting, StartedAt: ago(time.Second)}, Observation{Desired: 2, Ready: 1, Live: 2}, Starting},
		{"starting becomes active when all ready", app, Revision{State: Starting, StartedAt: ago(time.Second)}, Observation{Desired: 2, Ready: 2, Live: 2}, Active},
		{"starting with zero desired needs one ready", app, Revision{State: Starting, StartedAt: ago(time.Second)}, Observation{Desired: 0, Ready: 0, Live: 1}, Starting},
		{"starting fails after crashes", app, Revision{State: Starting, Crashes: MaxStartCrashes, StartedAt: ago(time.Second)}, Observation{Desired: 2}, Failed},
		{"starting survives fewer crashes", app, Revision{State: Starting, Crashes: MaxStartCrashes - 1, StartedAt: ago(time.Second)}, Observation{Desired: 2}, Starting},
		{"starting fails on start timeout", app, Revision{State: Starting, StartedAt: ago(time.Minute)}, Observation{Desired: 2, Ready: 1, Live: 2}, Failed},
		{"healthy wins over timeout", app, Revision{State: Starting, StartedAt: ago(2 * time.Minute)}, Observation{Desired: 2, Ready: 2, Live: 2}, Active},
		{"starting superseded by newer active", app, Revision{State: Starting, Generation: 2, StartedAt: ago(time.Second)}, Observation{Desired: 2, Ready: 2, ActiveGeneration: 3}, Retired},
		{"starting older than active still activates when newer", app, Revision{State: Starting, Generation: 4, StartedAt: ago(time.Second)}, Observation{Desired: 2, Ready: 2, ActiveGeneration: 3}, Active},
		{"starting retired when app deleted", app, Revision{State: Starting}, Observation{Deleting: true}, Retired},
		{"active stays", app, Revision{State: Active}, Observation{Desired: 2, Ready: 0, Live: 0}, Active},
		{"active retired when app deleted", app, Revision{State: Active}, Observation{Deleting: true}, Retired},
		{"draining with unknown sessions stays", app, Revision{State: Draining, DrainingAt: ago(time.Hour)}, Observation{Live: 1}, Draining},
		{"draining with sessions stays", app, Revision{State: Draining, DrainingAt: ago(time.Hour)}, Observation{Live: 1, Sessions: Sessions{Known: true, Count: 3}}, Draining},
		{"draining empty within grace stays", app, Revision{State: Draining, DrainingAt: ago(time.Hour)}, Observation{Live: 1, Sessions: Sessions{Known: true, EmptySince: t0.Add(-10 * time.Second)}}, Draining},
		{"draining empty for grace retires", app, Revision{State: Draining, DrainingAt: ago(time.Hour)}, Observation{Live: 1, Sessions: Sessions{Known: true, EmptySince: t0.Add(-31 * time.Second)}}, Retired},
		{"grace counts from draining start", app, Revision{State: Draining, DrainingAt: ago(5 * time.Second)}, Observation{Live: 1, Sessions: Sessions{Known: true}}, Draining},
		{"draining without replicas retires", app, Revision{State: Draining, DrainingAt: ago(time.Second)}, Observation{Live: 0}, Retired},
		{"drain timeout retires with sessions", withDrain, Revision{State: Draining, DrainingAt: ago(11 * time.Minute)}, Observation{Live: 1, Sessions: Sessions{Known: true, Count: 5}}, Retired},
		{"drain timeout not reached", withDrain, Revision{State: Draining, DrainingAt: ago(9 * time.Minute)}, Observation{Live: 1, Sessions: Sessions{Known: true, Count: 5}}, Draining},
		{"deleting with drain: active drains", app, Revision{State: Active}, Observation{Deleting: true, DrainFirst: true, Live: 2}, Draining},
		{"deleting with drain: players keep a draining revision", app, Revision{State: Draining, DrainingAt: ago(time.Hour)}, Observation{Deleting: true, DrainFirst: true, Live: 1, Sessions: Sessions{Known: true, Count: 2}}, Draining},
		{"deleting with drain: empty for grace retires", app, Revision{State: Draining, DrainingAt: ago(time.Hour)}, Observation{Deleting: true, DrainFirst: true, Live: 1, Sessions: Sessions{Known: true, EmptySince: t0.Add(-31 * time.Second)}}, Retired},
		{"deleting with drain: starting retires", app, Revision{State: Starting}, Observation{Deleting: true, DrainFirst: true}, Retired},
		{"retired is terminal", app, Revision{State: Retired}, Observation{Deleting: true, Ready: 3}, Retired},
		{"failed is terminal", app, Revision{State: Failed}, Observation{Ready: 3}, Failed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Next(c.app, c.rev, c.obs, t0)
			assert.Equal(t, c.want, d.To, d.Reason)
			if d.Changed(c.rev) {
				assert.True(t, CanTransition(c.rev.State, d.To), "Next chose an illegal edge %s -> %s", c.rev.State, d.To)
				assert.NotEmpty(t, d.Reason)
			}
		})
	}
}

func TestCanTransition(t *testing.T) {
	all := []RevisionState{Pending, Starting, Active, Draining, Retired, Failed}
	legal := map[[2]RevisionState]bool{
		{Pending, Starting}: true, {Pending, Retired}: true,
		{Starting, Active}: true, {Starting, Failed}: true, {Starting, Retired}: true,
		{Active, Draining}: true, {Active, Retired}: true,
		{Draining, Active}: true, {Draining, Retired}: true,
	}
	for _, from := range all {
		for _, to := range all {
			assert.Equal(t, legal[[2]RevisionState{from, to}], CanTransition(from, to), "%s -> %s", from, to)
		}
	}
}

func TestOperatorChecks(t *testing.T) {
	cases := []struct {
		state            RevisionState
		activate, retire bool // allowed
	}{
		{Pending, false, true},
		{Starting, false, true},
		{Active, true, false},
		{Draining, true, true},
		{Retired, false, true},
		{Failed, false, true},
	}
	for _, c := range cases {
		r := Revision{ID: "abc", State: c.state}
		assert.Equal(t, c.activate, CheckActivate(r) == nil, "activate %s", c.state)
		assert.Equal(t, c.retire, CheckRetire(r) == nil, "retire %s", c.state)
	}
}
