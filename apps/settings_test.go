package apps

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSettingsChangedListsOnlyWhatChangedAndStaysBounded(t *testing.T) {
	before := App{Tenant: "t", Name: "a", Replicas: 1, Strategy: Packed, ReconnectGrace: Duration(30 * time.Second), Generation: 3}
	after := before
	after.Replicas, after.ReconnectGrace = 2, Duration(5*time.Second)
	after.Generation, after.UpdatedAt = 4, time.Now() // bookkeeping, not settings
	assert.Equal(t, []SettingChange{{"reconnect_grace", "30s", "5s"}, {"replicas", "1", "2"}}, SettingsChanged(before, after))
	assert.Empty(t, SettingsChanged(before, before))

	// Long values are cut, and a change past the budget is counted, not listed.
	long := before
	long.HealthPath, long.ClientPath, long.DrainHook, long.HandoffPath = "/"+strings.Repeat("h", 300), "/"+strings.Repeat("c", 300),
		"/"+strings.Repeat("d", 300), "/"+strings.Repeat("o", 300)
	long.Port, long.MaxSessions, long.TargetSessions, long.MaxReplicas = 9, 9, 9, 9
	got := SettingsChanged(before, long)
	size := 0
	for _, c := range got[:len(got)-1] {
		assert.LessOrEqual(t, len(c.New), maxChangeValue+len("…"))
		size += len(c.Field) + len(c.Old) + len(c.New)
	}
	assert.LessOrEqual(t, size, maxChangeBytes)
	assert.LessOrEqual(t, len(got), maxChanges+1)
	assert.Equal(t, "…", got[len(got)-1].Field)
	assert.Regexp(t, `^\d+ more$`, got[len(got)-1].New)
}

func TestEventFilterKeepsTheNewestMatches(t *testing.T) {
	evs := []Event{{ID: "1", Actor: "dana", Type: EventDeployed}, {ID: "2", Actor: ActorPlatform, Type: EventTransition},
		{ID: "3", Actor: "dana", Type: EventAppUpdated}, {ID: "4", Actor: "dana", Type: EventDeployed}}
	assert.Equal(t, []Event{evs[2], evs[3]}, EventFilter{Actor: "dana"}.Keep(evs, 2))
	assert.Equal(t, []Event{evs[0], evs[3]}, EventFilter{Type: EventDeployed}.Keep(evs, 10))
	assert.Empty(t, EventFilter{Actor: "mallory"}.Keep(evs, 10))
	assert.Len(t, evs, 4, "Keep leaves its input alone")
}

func TestActorOfDefaultsToThePlatform(t *testing.T) {
	assert.Equal(t, ActorPlatform, ActorOf(context.Background()))
	assert.Equal(t, "dana", ActorOf(WithActor(context.Background(), "dana")))
	assert.Len(t, ActorOf(WithActor(context.Background(), strings.Repeat("x", 500))), MaxActor+len("…"))
}
