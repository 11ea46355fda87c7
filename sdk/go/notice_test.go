package discovery

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const drainingJSON = `{"state":"draining","tenant":"acme","app":"arena","revision":"9d00cc18",` +
	`"active_revision":"5be2a1f0","reason":"superseded by 5be2a1f0","deadline":"2026-12-02T17:10:00Z","sent_at":"2026-12-02T17:00:00.123Z"}`

// postHook posts body to the replica's drain hook as the platform does.
func postHook(t *testing.T, r *Replica, method, body string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	r.DrainHook().ServeHTTP(rec, httptest.NewRequest(method, "/discovery/drain", strings.NewReader(body)))
	return rec
}

func TestDrainHookDecodesTheNotice(t *testing.T) {
	r := testReplica(t, "http://api")
	rec := postHook(t, r, http.MethodPost, drainingJSON)

	assert.Equal(t, http.StatusNoContent, rec.Code)
	n := <-r.Notices()
	assert.Equal(t, Notice{State: StateDraining, Tenant: "acme", App: "arena", Revision: "9d00cc18",
		ActiveRevision: "5be2a1f0", Reason: "superseded by 5be2a1f0",
		Deadline: time.Date(2026, 12, 2, 17, 10, 0, 0, time.UTC),
		SentAt:   time.Date(2026, 12, 2, 17, 0, 0, 123e6, time.UTC)}, n)
	assert.True(t, n.Draining())
}

func TestDrainHookRefusesWhatIsNotANoticeForThisReplica(t *testing.T) {
	tests := []struct {
		name, method, body string
		want               int
	}{
		{"another tenant", "POST", strings.Replace(drainingJSON, `"tenant":"acme"`, `"tenant":"evil"`, 1), 400},
		{"another app", "POST", strings.Replace(drainingJSON, `"app":"arena"`, `"app":"chat"`, 1), 400},
		{"another revision", "POST", strings.Replace(drainingJSON, `"revision":"9d00cc18"`, `"revision":"00000000"`, 1), 400},
		{"unknown state", "POST", strings.Replace(drainingJSON, `"state":"draining"`, `"state":"retired"`, 1), 400},
		{"no state", "POST", `{"tenant":"acme","app":"arena","revision":"9d00cc18"}`, 400},
		{"not JSON", "POST", `draining`, 400},
		{"two values", "POST", drainingJSON + drainingJSON, 400},
		{"too big", "POST", `{"reason":"` + strings.Repeat("x", maxNoticeBytes) + `"}`, 400},
		{"not a POST", "GET", "", 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testReplica(t, "http://api")
			rec := postHook(t, r, tt.method, tt.body)
			assert.Equal(t, tt.want, rec.Code, rec.Body.String())
			select {
			case n := <-r.Notices():
				t.Fatalf("delivered %+v", n)
			default:
			}
		})
	}
}

func notice(state, active string, sentAt time.Time) Notice {
	return Notice{State: state, Tenant: "acme", App: "arena", Revision: "9d00cc18", ActiveRevision: active, SentAt: sentAt}
}

func TestNoticesAreDeliveredOnceInOrder(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 17, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		offered []Notice
		want    []Notice
	}{
		{"active and serving itself is not news",
			[]Notice{notice(StateActive, "9d00cc18", t0)}, nil},
		{"the same notice twice (hook, then stream)",
			[]Notice{notice(StateDraining, "5be2a1f0", t0), notice(StateDraining, "5be2a1f0", t0.Add(time.Second))},
			[]Notice{notice(StateDraining, "5be2a1f0", t0)}},
		{"drained, re-activated, drained again",
			[]Notice{notice(StateDraining, "5be2a1f0", t0), notice(StateActive, "9d00cc18", t0.Add(time.Second)), notice(StateDraining, "5be2a1f0", t0.Add(2*time.Second))},
			[]Notice{notice(StateDraining, "5be2a1f0", t0), notice(StateActive, "9d00cc18", t0.Add(time.Second)), notice(StateDraining, "5be2a1f0", t0.Add(2*time.Second))}},
		{"a newer active revision while draining",
			[]Notice{notice(StateDraining, "5be2a1f0", t0), notice(StateDraining, "77aa0011", t0.Add(time.Second))},
			[]Notice{notice(StateDraining, "5be2a1f0", t0), notice(StateDraining, "77aa0011", t0.Add(time.Second))}},
		{"a late retry older than the last notice",
			[]Notice{notice(StateDraining, "5be2a1f0", t0), notice(StateActive, "9d00cc18", t0.Add(time.Second)), notice(StateDraining, "5be2a1f0", t0)},
			[]Notice{notice(StateDraining, "5be2a1f0", t0), notice(StateActive, "9d00cc18", t0.Add(time.Second))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testReplica(t, "http://api")
			var got []Notice
			r.OnNotice(func(n Notice) { got = append(got, n) })
			for _, n := range tt.offered {
				r.offer(n)
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestNoticesChannelKeepsTheLatest(t *testing.T) {
	r := testReplica(t, "http://api")
	t0 := time.Now()
	r.offer(notice(StateDraining, "5be2a1f0", t0))
	r.offer(notice(StateActive, "9d00cc18", t0.Add(time.Second)))
	r.offer(notice(StateDraining, "77aa0011", t0.Add(2*time.Second))) // never blocks on an unread channel

	assert.Equal(t, notice(StateDraining, "77aa0011", t0.Add(2*time.Second)), <-r.Notices())
	select {
	case n := <-r.Notices():
		t.Fatalf("older notice kept: %+v", n)
	default:
	}
}

func TestNoticeCallbackMayReplaceItself(t *testing.T) {
	r := testReplica(t, "http://api")
	var mu sync.Mutex
	calls := 0
	r.OnNotice(func(Notice) {
		mu.Lock()
		calls++
		mu.Unlock()
		r.OnNotice(nil) // no deadlock
	})
	require.Equal(t, http.StatusNoContent, postHook(t, r, "POST", drainingJSON).Code)
	require.Equal(t, http.StatusNoContent, postHook(t, r, "POST", strings.Replace(drainingJSON, `"state":"draining"`, `"state":"active"`, 1)).Code)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 1, calls)
}
