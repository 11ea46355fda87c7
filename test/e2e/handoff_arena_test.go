package e2e

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/internal/testkit/proctest"
	discovery "github.com/discovery-platform/discovery/sdk/go"
)

// Issue 15's story with the real arena (examples/arena, handoff mode) and Go
// clients that follow sdk/PROTOCOL.md §2 as sdk/js does: a deploy moves
// every player to the new revision with its state; a new replica killed
// mid-handoff sends its players back through get-endpoint, none stuck.

// arenaRules hold in both versions: dead players stay dead (no respawn timer
// changes a state while it travels) and five hits kill, so hit points,
// scores and deaths differ from player to player.
var arenaRules = map[string]string{"HANDOFF": "1", "ARENA_SIZE": "16", "ARENA_HP": "5", "RESPAWN": "false"}

// arenaApp is the arena set up for handoff mode (examples/arena/PROTOCOL.md).
func arenaApp(name string, replicas int, grace string) map[string]any {
	return map[string]any{"name": name, "replicas": replicas, "strategy": "spread", "health_path": "/healthz",
		"client_path": "/ws", "drain_hook": "/discovery/drain", "handoff_path": "/discovery/handoff",
		"reconnect_grace": grace, "shutdown_grace": "3s", "reservation_ttl": "5s"}
}

// deployArena deploys the arena with arenaRules and version, and waits for
// the revision to be active.
func (f *Framework) deployArena(app, version string) string {
	f.t.Helper()
	env := map[string]string{"VERSION": version}
	for k, v := range arenaRules {
		env[k] = v
	}
	var rev Revision
	require.Equal(f.t, 202, f.Call("POST", "/apps/"+app+"/revisions", map[string]any{"command": []string{arenaBinary(f.t)}, "env": env}, &rev))
	f.WaitState(app, rev.ID, "active", 60*time.Second)
	return rev.ID
}

// revisionTimes are a revision's lifecycle timestamps.
type revisionTimes struct {
	ActivatedAt, DrainingAt, FinishedAt *time.Time
}

func (f *Framework) revisionTimes(app, rev string) revisionTimes {
	f.t.Helper()
	var r struct {
		ActivatedAt *time.Time `json:"activated_at"`
		DrainingAt  *time.Time `json:"draining_at"`
		FinishedAt  *time.Time `json:"finished_at"`
	}
	require.Equal(f.t, 200, f.Call("GET", "/apps/"+app+"/revisions/"+rev, nil, &r))
	return revisionTimes{r.ActivatedAt, r.DrainingAt, r.FinishedAt}
}

// arenaEvent is a line of the activity log, with a handoff's figures.
type arenaEvent struct {
	Type, Message, Revision string
	Handoff                 *struct {
		To            string
		Moved, Failed int
	}
}

func (f *Framework) arenaEvents(app string) []arenaEvent {
	var out struct{ Events []arenaEvent }
	f.Call("GET", "/apps/"+app+"/events?limit=500", nil, &out)
	return out.Events
}

func percentile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// TestArenaHandoffOfAHundredPlayers: 100 players on v1, each with its own
// position, hit points, score and deaths; v2 is deployed in handoff mode.
// Every player lands on v2 with exactly the state it had, through its
// ticket (none falls back), and v1 is retired within reconnect_grace + 2 s
// of v2 becoming active.
func TestArenaHandoffOfAHundredPlayers(t *testing.T) {
	const players, grace = 100, 2 * time.Second
	f := New(t)
	f.Start()
	require.Equal(t, 201, f.Call("POST", "/apps", arenaApp("arena", 1, grace.String()), nil))
	v1 := f.deployArena("arena", "1")
	gs := f.joinArena("arena", players)

	// Each player moves its own way, then attacks 0-2 times: positions,
	// hit points, kills and deaths spread out.
	dirs := []string{"up", "right", "down", "left"}
	everyone(t, gs, func(i int, g *gamer) error {
		return g.act(slices.Repeat([]string{dirs[i%4]}, i%3), 0)
	})
	everyone(t, gs, func(i int, g *gamer) error { return g.act(nil, i%3) })
	settle(t, gs)

	wait := rideAll(t, gs, 60*time.Second, nil, nil)
	v2 := f.deployArena("arena", "2")
	rides := wait()

	var interruptions, lookups, dials, welcomes, states []time.Duration
	var stateBytes int
	var firstClose, lastClose time.Time
	hp, dead, scored, fellBack := map[int]int{}, 0, 0, 0
	for i, r := range rides {
		if !assert.NoError(t, r.err, gs[i].name) {
			continue
		}
		if r.fellBack != "" {
			fellBack++
			t.Errorf("%s fell back: %s", gs[i].name, r.fellBack)
			continue
		}
		assert.Equal(t, discovery.CloseMoved, r.code)
		assert.Equal(t, v2, r.welcome.Revision, "%s plays on v2", gs[i].name)
		assert.True(t, r.welcome.Resumed, "%s resumed", gs[i].name)
		assert.Equal(t, r.before, r.after, "%s has exactly the state it had", gs[i].name)
		interruptions = append(interruptions, r.backAt.Sub(r.closedAt))
		lookups = append(lookups, r.foundAt.Sub(r.closedAt))
		dials = append(dials, gs[i].openedAt.Sub(r.foundAt))
		welcomes = append(welcomes, gs[i].welcomedAt.Sub(gs[i].openedAt))
		states = append(states, r.backAt.Sub(gs[i].welcomedAt))
		stateBytes += r.before.stateBytes()
		if r.closedAt.After(lastClose) {
			lastClose = r.closedAt
		}
		if firstClose.IsZero() || r.closedAt.Before(firstClose) {
			firstClose = r.closedAt
		}
		hp[r.before.HP]++
		if !r.before.Alive {
			dead++
		}
		if r.before.Score > 0 {
			scored++
		}
	}
	require.Len(t, interruptions, players)
	assert.Zero(t, fellBack, "players fell back to a fresh get-endpoint")
	t.Logf("%d players moved to v2, hit points %v, %d dead, %d with kills, 0 fell back", players, hp, dead, scored)
	t.Logf("interruption (close frame -> first state from v2): p50 %s, p99 %s, max %s",
		percentile(interruptions, 0.5), percentile(interruptions, 0.99), percentile(interruptions, 1))
	t.Logf("its steps, p50: get-endpoint?ticket= %s, socket open (the gateway uses the ticket up) %s, welcome %s, first state %s",
		percentile(lookups, 0.5), percentile(dials, 0.5), percentile(welcomes, 0.5), percentile(states, 0.5))
	drained := f.revisionTimes("arena", v1).DrainingAt
	require.NotNil(t, drained)
	wave := lastClose.Sub(*drained)
	t.Logf("first player closed with its ticket %s after v1 started draining", firstClose.Sub(*drained).Round(time.Millisecond))
	t.Logf("handoff wave: %d state bytes in %s (v1 draining -> last player closed with its ticket): %.0f bytes/s",
		stateBytes, wave.Round(time.Millisecond), float64(stateBytes)/wave.Seconds())

	// v1 is empty: retired within reconnect_grace + 2 s of v2 becoming active.
	f.WaitState("arena", v1, "retired", grace+15*time.Second)
	active, finished := f.revisionTimes("arena", v2).ActivatedAt, f.revisionTimes("arena", v1).FinishedAt
	require.NotNil(t, active)
	require.NotNil(t, finished)
	t.Logf("v1 retired %s after v2 became active (reconnect_grace %s)", finished.Sub(*active).Round(time.Millisecond), grace)
	assert.LessOrEqual(t, finished.Sub(*active), grace+2*time.Second)

	// The activity log counts the moves.
	f.Eventually("the handoffs in the activity log", 15*time.Second, func() bool {
		moved, failed := 0, 0
		for _, e := range f.arenaEvents("arena") {
			if e.Type == "handoff" && e.Revision == v1 && e.Handoff != nil {
				moved, failed = moved+e.Handoff.Moved, failed+e.Handoff.Failed
			}
		}
		assert.Zero(t, failed)
		return moved == players
	})

	measureHandoffThroughput(t, f)
}

// measureHandoffThroughput sends larger states (64 KiB each) through the
// handoffs API, as a draining replica would, to a replica of the active
// revision of a second app, and prints the bytes per second sustained.
func measureHandoffThroughput(t *testing.T, f *Framework) {
	const n, size, workers = 256, 64 << 10, 8
	require.Equal(t, 201, f.Call("POST", "/apps", arenaApp("bulk", 1, "5m"), nil))
	from := f.deployArena("bulk", "1")
	f.deployArena("bulk", "2")
	f.WaitState("bulk", from, "draining", 10*time.Second)

	url := f.APIURL() + "/api/v1/tenants/default/apps/bulk/revisions/" + from + "/handoffs"
	state := bytes.Repeat([]byte("s"), size)
	codes := make(chan int, n)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			for range n / workers {
				req, err := http.NewRequest("POST", url, bytes.NewReader(state))
				if err != nil {
					codes <- 0
					continue
				}
				req.Header.Set("Authorization", "Bearer "+f.Token)
				req.Header.Set("Content-Type", "application/octet-stream")
				resp, err := f.HTTP().Do(req)
				if err != nil {
					codes <- 0
					continue
				}
				if resp.StatusCode != 201 && w == 0 {
					b, _ := io.ReadAll(resp.Body)
					t.Logf("handoff: %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
				}
				resp.Body.Close()
				codes <- resp.StatusCode
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(codes)
	byCode := map[int]int{}
	for c := range codes {
		byCode[c]++
	}
	assert.Equal(t, map[int]int{201: n}, byCode, "every handoff answered 201")
	t.Logf("handoffs API: %d states of %d KiB to one arena replica, %d at a time, in %s: %.1f MiB/s, %.0f handoffs/s (platform built with -race)",
		byCode[201], size>>10, workers, took.Round(time.Millisecond), float64(byCode[201]*size)/(1<<20)/took.Seconds(), float64(byCode[201])/took.Seconds())
}

// TestArenaHandoffTargetKilled: the replica of v2 that received the first
// player's state is SIGKILLed before that player arrives, while the handoff
// wave is under way. Its players find their ticket dead (410, or a socket
// that does not open), fall back to a fresh get-endpoint and play again on
// v2; the players moved to the other replica keep their state; none is
// stuck.
func TestArenaHandoffTargetKilled(t *testing.T) {
	const players = 20
	f := New(t)
	f.Start()
	require.Equal(t, 201, f.Call("POST", "/apps", arenaApp("arena", 2, "2s"), nil))
	f.deployArena("arena", "1")
	gs := f.joinArena("arena", players)
	dirs := []string{"up", "right", "down", "left"}
	everyone(t, gs, func(i int, g *gamer) error { return g.act([]string{dirs[i%4]}, i%2) })
	settle(t, gs)

	moved, hold := make(chan string, players), make(chan struct{})
	wait := rideAll(t, gs, 60*time.Second, moved, hold)
	var once sync.Once
	release := func() { once.Do(func() { close(hold) }) }
	t.Cleanup(release) // before rideAll's cleanup waits for the rides
	v2 := f.deployArena("arena", "2")

	// The first ticket's target dies before anyone follows a ticket.
	var first string
	select {
	case first = <-moved:
	case <-time.After(30 * time.Second):
		t.Fatal("no player was moved within 30s")
	}
	ep, code, err := endpointAt(f, "arena", first)
	require.NoError(t, err)
	require.Equal(t, 200, code)
	killed := ep.Replica
	pid, ok := f.Running(v2)[killed]
	require.True(t, ok, "replica %s runs", killed)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	t.Logf("SIGKILLed %s once %d of %d players had a ticket", killed, 1+len(moved), players)
	f.Eventually("the target is gone", 10*time.Second, func() bool { return !proctest.Alive(pid) })
	released := time.Now()
	release()
	rides := wait()
	var back time.Duration
	fellBack, lost, kept := 0, 0, 0
	for i, r := range rides {
		if !assert.NoError(t, r.err, "%s is not stuck", gs[i].name) {
			continue
		}
		back = max(back, r.backAt.Sub(released))
		assert.Equal(t, v2, r.welcome.Revision, "%s plays on v2", gs[i].name)
		assert.NotEqual(t, killed, r.welcome.Replica, "%s plays on a live replica", gs[i].name)
		switch {
		case r.fellBack != "":
			fellBack++
			if r.code == discovery.CloseMoved {
				lost++ // its ticket led nowhere
			}
			assert.False(t, r.welcome.Resumed, "%s starts afresh", gs[i].name)
			t.Logf("%s fell back (%s) and plays on %s", gs[i].name, r.fellBack, r.welcome.Replica)
		default:
			kept++
			assert.NotEqual(t, killed, r.target)
			assert.Equal(t, r.before, r.after, "%s, moved to a live replica, has the state it had", gs[i].name)
		}
		if r.ticket == first {
			assert.NotEmpty(t, r.fellBack, "the first ticket's player falls back")
		}
	}
	assert.Positive(t, lost, "players found their ticket dead")
	t.Logf("killed %s: %d players fell back through get-endpoint (%d of them with a dead ticket), %d moved with their state; all playing on v2 %s after the release",
		killed, fellBack, lost, kept, back.Round(time.Millisecond))

	// The activity log tells of the crash, and of the players who could not
	// arrive: as many as found their ticket dead.
	f.Eventually("the crash in the activity log", 15*time.Second, func() bool {
		for _, e := range f.arenaEvents("arena") {
			if e.Type == "replica_crashed" && strings.Contains(e.Message, killed) {
				return true
			}
		}
		return false
	})
	var handoffs []string
	f.Eventually("the players who could not arrive in the activity log", 15*time.Second, func() bool {
		handoffs = nil
		n := 0
		for _, e := range f.arenaEvents("arena") {
			if e.Type != "handoff" {
				continue
			}
			handoffs = append(handoffs, e.Message)
			if strings.Contains(e.Message, "replica "+killed+" exited before they arrived") {
				n += e.Handoff.Failed
			}
		}
		return n == lost
	})
	t.Logf("activity log: %q", handoffs)
}
