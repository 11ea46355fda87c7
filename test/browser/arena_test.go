package browser

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/internal/testkit/platformtest"
)

// The arena page (examples/arena/client.html, on the JavaScript SDK) as a
// player sees it in a browser while the game is redeployed under it.

var arena struct {
	once sync.Once
	path string
	err  error
}

// arenaBinary builds examples/arena once per test process, beside the
// platform binary (a directory replicas running as other uids can reach).
func arenaBinary(t *testing.T) string {
	t.Helper()
	arena.once.Do(func() {
		arena.path = filepath.Join(filepath.Dir(platformtest.Binary(t)), "arena")
		arena.err = platformtest.GoBuild(arena.path, "github.com/discovery-platform/discovery/examples/arena")
	})
	require.NoError(t, arena.err)
	return arena.path
}

// me is JavaScript reading the player's own row of the page: where the
// board draws it and what the table shows (name, hp, kills, deaths).
const me = `(() => {
	const r = document.querySelector('#players tr.me');
	return r ? JSON.stringify({id: r.dataset.id, x: +r.dataset.x, y: +r.dataset.y, cells: [...r.cells].slice(0, 4).map(c => c.textContent)}) : '';
})()`

// sdkEvent is JavaScript: has the SDK reported an event of this type (and
// reason) since the mark'th one?
func sdkEvent(mark int, typ, reason string) string {
	return fmt.Sprintf(`window.sdkEvents.slice(%d).some(e => e.type === %q && (%q === '' || e.reason === %q))`, mark, typ, reason, reason)
}

// TestArenaPageKeepsPlayingThroughHandoffAnd410 is a player's view of
// issue 15: the arena page, opened where get-endpoint points, joins and
// moves; v2 is deployed in handoff mode and the page plays on, on v2, with
// the same player at the same place with the same hit points, told it
// moved; then the handoff path is switched off, v3 deployed and v2 retired
// under the page: the replica it was on answers 410, and the page finds v3
// through get-endpoint and plays on under its name.
func TestArenaPageKeepsPlayingThroughHandoffAnd410(t *testing.T) {
	b := NewBrowser(t)
	p := StartPlatform(t)
	bin := arenaBinary(t)
	const within = 20 * time.Second
	start := time.Now()
	base := "/tenants/default/apps/arena"
	require.Equal(t, 201, p.Call(p.Token, "POST", "/tenants/default/apps", map[string]any{"name": "arena", "health_path": "/healthz",
		"client_path": "/ws", "drain_hook": "/discovery/drain", "handoff_path": "/discovery/handoff",
		"reconnect_grace": "30s", "shutdown_grace": "3s", "reservation_ttl": "5s"}, nil))
	state := func(rev string) string {
		var r struct{ State string }
		p.Call(p.Token, "GET", base+"/revisions/"+rev, nil, &r)
		return r.State
	}
	waitState := func(rev, want string) {
		t.Helper()
		deadline := time.Now().Add(within)
		for s := state(rev); s != want; s = state(rev) {
			require.True(t, time.Now().Before(deadline), "revision %s is %s, never became %s", rev, s, want)
			time.Sleep(100 * time.Millisecond) // poll interval
		}
	}
	deploy := func(version string) string {
		t.Helper()
		var r struct{ ID string }
		require.Equal(t, 202, p.Call(p.Token, "POST", base+"/revisions", map[string]any{"command": []string{bin},
			"env": map[string]string{"HANDOFF": "1", "ARENA_HP": "3", "VERSION": version}}, &r))
		waitState(r.ID, "active")
		return r.ID
	}
	shot := func(name string) {
		t.Helper()
		b.Do(chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
		b.Shot(name, false)
		path, err := filepath.Abs(filepath.Join("..", "..", "docs", "screenshots", name))
		require.NoError(t, err)
		t.Logf("screenshot %s (%s)", path, time.Since(start).Round(time.Millisecond))
	}
	player := func() string {
		t.Helper()
		return Eval[string](b, me)
	}

	// v1; a player opens the page where get-endpoint points, joins and
	// walks three steps right and two down (or to the wall).
	v1 := deploy("1")
	ep := getEndpoint(t, p, "arena")
	require.Equal(t, v1, ep.Revision)
	b.Do(chromedp.Navigate(ep.URL))
	b.Wait("the join form, connected", `!document.querySelector('#join').hidden && document.querySelector('#status').textContent === 'connected'`, within)
	assert.Equal(t, v1, Eval[string](b, `document.querySelector('#revision').textContent`))
	b.Do(chromedp.SendKeys(chromedp.CSS("#name"), "alice"), chromedp.Click(chromedp.CSS("#join button")))
	b.Wait("the player on the board", `document.querySelector('#players tr.me')`, within)
	b.Do(chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`)) // keys go to the board, not the hidden form
	var spawn struct{ X, Y int }
	require.NoError(t, json.Unmarshal([]byte(player()), &spawn))
	wantX, wantY := min(spawn.X+3, 15), min(spawn.Y+2, 15)
	for _, k := range []string{"d", "d", "d", "s", "s"} {
		b.Do(chromedp.KeyEvent(k))
	}
	b.Wait("the player moved", fmt.Sprintf(`document.querySelector('#players tr.me')?.dataset.x === '%d' && document.querySelector('#players tr.me')?.dataset.y === '%d'`, wantX, wantY), within)
	before := player()
	t.Logf("on v1 (replica %s): %s", ep.Replica, before)
	assert.Contains(t, before, `"cells":["alice","3","0","0"]`)
	shot("arena-v1.png")

	// v2 in handoff mode: v1 moves the player there with its state; the
	// page follows the ticket and plays on.
	mark := Eval[int](b, `window.sdkEvents.length`)
	v2 := deploy("2")
	b.Wait("the page on v2, saying it moved", fmt.Sprintf(`document.querySelector('#revision').textContent === %q && document.querySelector('#status').textContent === 'connected' && `+
		`document.querySelector('#players tr.me') && document.querySelector('#note').textContent === 'Moved to the new version with everything you had.'`, v2), within)
	b.Wait("the SDK's move", sdkEvent(mark, "moved", "")+` && window.sdkEvents.slice(`+fmt.Sprint(mark)+`).some(e => e.type === 'reconnected' && e.handoff)`, within)
	assert.Equal(t, before, player(), "the same player, place, hit points and score on v2")
	moved := Eval[map[string]any](b, fmt.Sprintf(`window.sdkEvents.slice(%d).find(e => e.type === 'moved')`, mark))
	v2Replica := Eval[string](b, `document.querySelector('#replica').textContent`)
	assert.Equal(t, v2Replica, moved["toReplica"])
	shot("arena-v2-handoff.png")
	b.Do(chromedp.KeyEvent("a"))
	b.Wait("the player moves on v2", fmt.Sprintf(`document.querySelector('#players tr.me')?.dataset.x === '%d'`, wantX-1), within)

	// The handoff path switched off, v3 deployed: v2 drains and tells the
	// page, but cannot move its player, who stays. Then v2 is retired
	// under it: the replica answers 410 and the page finds v3 through
	// get-endpoint, joining again under its name.
	require.Equal(t, 200, p.Call(p.Token, "PATCH", base, map[string]any{"handoff_path": ""}, nil))
	v3 := deploy("3")
	waitState(v2, "draining")
	b.Wait("the page told a new version is out", fmt.Sprintf(`document.querySelector('#banner').textContent.includes(%q)`, v3), within)
	assert.Equal(t, v2, Eval[string](b, `document.querySelector('#revision').textContent`), "still on v2")
	mark = Eval[int](b, `window.sdkEvents.length`)
	require.Equal(t, 202, p.Call(p.Token, "POST", base+"/revisions/"+v2+"/retire", nil, nil))
	b.Wait("the page on v3", fmt.Sprintf(`document.querySelector('#revision').textContent === %q && document.querySelector('#status').textContent === 'connected' && document.querySelector('#players tr.me')`, v3), within)
	assert.True(t, Eval[bool](b, sdkEvent(mark, "reconnecting", "gone")), "the SDK found the replica gone (410): %s",
		Eval[string](b, fmt.Sprintf(`JSON.stringify(window.sdkEvents.slice(%d).map(e => [e.type, e.reason ?? '']))`, mark)))
	assert.Equal(t, v3, Eval[string](b, fmt.Sprintf(`window.sdkEvents.slice(%d).findLast(e => e.type === 'open').endpoint.revision`, mark)),
		"through a new get-endpoint")
	after := player()
	t.Logf("on v3 after the 410: %s", after)
	assert.Contains(t, after, `"cells":["alice","3","0","0"]`, "playing on under its name")
	b.Do(chromedp.KeyEvent("w"))
	var v3Spawn struct{ X, Y int }
	require.NoError(t, json.Unmarshal([]byte(after), &v3Spawn))
	if v3Spawn.Y > 0 {
		b.Wait("the player moves on v3", fmt.Sprintf(`document.querySelector('#players tr.me')?.dataset.y === '%d'`, v3Spawn.Y-1), within)
	}
	shot("arena-410.png")
	assert.Empty(t, b.Exceptions(), "the page threw")
}
