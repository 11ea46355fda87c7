package browser

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// endpoint is get-endpoint's answer, as a game client reads it.
type endpoint struct {
	Socket, URL, Revision, Replica string
}

// getEndpoint asks get-endpoint for app: a place reserved on a replica.
func getEndpoint(t *testing.T, p *Platform, app string) endpoint {
	var ep endpoint
	require.Equal(t, 200, p.Call("", "GET", "/tenants/default/apps/"+app+"/endpoint", nil, &ep))
	return ep
}

// handOff asks the replica ep pins (a testapp) to hand a player off with
// state, as a game server of a draining revision does; it returns the
// platform's status.
func handOff(t *testing.T, p *Platform, ep endpoint, state string) int {
	resp, err := p.HTTP().Post(ep.URL+"discovery/send", "application/octet-stream", strings.NewReader(state))
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// logCount is JavaScript reading a count chip of the newest activity line
// of a type about a revision.
func logCount(typ, revision, field string) string {
	return fmt.Sprintf(`document.querySelector('#activity li[data-type="%s"][data-revision="%s"] [data-field="%s"]')?.textContent`, typ, revision, field)
}

// TestBridgeDrainWithNoticesAndHandoffs is a deploy of a game that takes
// drain notices and handed-off players, watched in Bridge: the operator sets
// the game's client path and reservation TTL with the settings form (a bad
// path is refused, the form says why); a player is connected while another
// place is only reserved, and the revision shows 1 connection and 1
// reservation apart; the next deploy drains it, and the activity log marks
// the drain notice with the replicas told; the old server hands its player
// off (1 moved), then fails to (the handoff path changed to one it does not
// serve: 1 fell back), each with its counts.
func TestBridgeDrainWithNoticesAndHandoffs(t *testing.T) {
	b := NewBrowser(t)
	p := StartPlatform(t)
	const within = 30 * time.Second
	require.Equal(t, 201, p.Call(p.Token, "POST", "/tenants/default/apps", map[string]any{"name": "game", "health_path": "/healthz",
		"drain_hook": "/discovery/drain", "handoff_path": "/discovery/handoff", "reconnect_grace": "5m"}, nil))

	b.Do(chromedp.Navigate(p.URL() + "/bridge/#/t/default/a/game"))
	b.Wait("the login form", `document.querySelector('#login-form')`, within)
	b.Do(chromedp.SendKeys(chromedp.CSS("#f-token"), p.Token), chromedp.Click(chromedp.CSS("#login-form button[type=submit]")))
	b.Wait("the game's page with its settings form", `document.title === 'game · Bridge' && document.querySelector('#protocol-form')`, within)
	setting := func(key string) string {
		return fmt.Sprintf(`document.querySelector('#settings [data-setting="%s"]')?.textContent`, key)
	}
	assert.Equal(t, "drain hook /discovery/drain", Eval[string](b, setting("drain_hook")))
	assert.Equal(t, "clients dial the endpoint itself", Eval[string](b, setting("client_path")))
	assert.Equal(t, "/discovery/drain", Eval[string](b, `document.querySelector('#f-drain_hook').value`))

	// A client path that is no path: the platform's refusal next to the form.
	b.Do(chromedp.SetValue(chromedp.CSS("#f-client_path"), "ws"), chromedp.Click(chromedp.CSS("#protocol-btn")))
	b.Wait("the refusal next to the form", `document.querySelector('#settings-error').textContent.includes('client_path must be an absolute URL path')`, within)
	b.Do(chromedp.SetValue(chromedp.CSS("#f-client_path"), "/ws"), chromedp.SetValue(chromedp.CSS("#f-reservation_ttl"), "2m"),
		chromedp.Click(chromedp.CSS("#protocol-btn")))
	b.Wait("the settings saved", setting("client_path")+` === 'clients dial /ws' && `+setting("reservation_ttl")+` === 'reservations held 2m0s' && `+
		`document.querySelector('#settings-error').textContent === ''`, within)
	var app struct {
		ClientPath     string `json:"client_path"`
		DrainHook      string `json:"drain_hook"`
		ReservationTTL string `json:"reservation_ttl"`
	}
	require.Equal(t, 200, p.Call(p.Token, "GET", "/tenants/default/apps/game", nil, &app))
	assert.Equal(t, "/ws", app.ClientPath)
	assert.Equal(t, "2m0s", app.ReservationTTL)
	assert.Equal(t, "/discovery/drain", app.DrainHook, "a setting not changed keeps its value")

	// Revision 1; a player on its socket, and a place reserved for another
	// who has not connected yet.
	var rev1 struct{ ID string }
	require.Equal(t, 202, p.Call(p.Token, "POST", "/tenants/default/apps/game/revisions", map[string]any{"command": []string{p.App}}, &rev1))
	b.Wait("revision 1 active", rev(rev1.ID, "state")+` === 'active'`, 60*time.Second)
	player := getEndpoint(t, p, "game")
	require.Equal(t, rev1.ID, player.Revision)
	require.True(t, strings.HasSuffix(player.Socket, "/ws"), player.Socket)
	conn, _, err := websocket.DefaultDialer.Dial(player.Socket, nil)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.WriteMessage(websocket.TextMessage, []byte("hello")))
	_, msg, err := conn.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, "hello", string(msg))
	getEndpoint(t, p, "game") // reserved, never dialled
	b.Wait("1 connection and 1 reservation on revision 1", rev(rev1.ID, "connections")+` === '1 connection' && `+rev(rev1.ID, "reservations")+` === '1 reservation'`, within)
	b.Wait("the same on its replica", fmt.Sprintf(`document.querySelector('#revisions tr[data-rev="%s"] .replicas [data-field="replica-sessions"]')?.textContent === '1 connection1 reservation'`, rev1.ID), within)
	assert.Equal(t, "2", Eval[string](b, fmt.Sprintf(`document.querySelector('#revisions tr[data-rev="%s"] [data-field="sessions"]').dataset.total`, rev1.ID)),
		"what keeps the revision alive: both")
	assert.False(t, Eval[bool](b, rev(rev1.ID, "leases")+` !== undefined`), "no lease, none shown")
	b.Wait("the chart's legend splits the count", fmt.Sprintf(`document.querySelector('#chart .legend li[data-rev="%s"]')?.textContent.includes('2 sessions (1 connection, 1 reservation)')`, rev1.ID), within)
	b.Do(chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	b.Shot("app-sessions.png", false)

	// Revision 2: revision 1 drains, its replica is told at the drain hook.
	var rev2 struct{ ID string }
	require.Equal(t, 202, p.Call(p.Token, "POST", "/tenants/default/apps/game/revisions", map[string]any{"command": []string{p.App}}, &rev2))
	b.Wait("revision 2 active, revision 1 draining", rev(rev2.ID, "state")+` === 'active' && `+rev(rev1.ID, "state")+` === 'draining'`, 60*time.Second)
	b.Wait("the drain notice in the log", logCount("notice", rev1.ID, "told")+` === '1/1 replicas told'`, within)
	notice := Eval[string](b, fmt.Sprintf(`document.querySelector('#activity li[data-type="notice"][data-revision="%s"]').textContent`, rev1.ID))
	assert.Contains(t, notice, "drain notice")
	assert.Contains(t, notice, "new players go to "+rev2.ID)
	assert.Contains(t, Eval[string](b, `document.querySelector('#activity li[data-type="notice"] .ev-mark').textContent`), "⚑")

	// The old server hands its player off: 1 moved.
	require.Equal(t, 201, handOff(t, p, player, "hp=3"))
	b.Wait("the handoff in the log", logCount("handoff", rev1.ID, "moved")+` === '1 player moved' && `+logCount("handoff", rev1.ID, "fell-back")+` === '0 fell back'`, within)

	// The handoff path changed to one the game does not serve: the next
	// player cannot be moved, and falls back to get-endpoint.
	b.Do(chromedp.SetValue(chromedp.CSS("#f-handoff_path"), "/nowhere"), chromedp.Click(chromedp.CSS("#protocol-btn")))
	b.Wait("the new handoff path", setting("handoff_path")+` === 'handoff path /nowhere'`, within)
	assert.Contains(t, Eval[string](b, `document.querySelector('#flash').textContent`), "Settings saved: handoff_path.", "only what changed is sent")
	// (The gateway learns the new path from its watch, a moment after the
	// API answered: until then the state still goes through.)
	deadline := time.Now().Add(10 * time.Second)
	for handOff(t, p, player, "hp=1") != 502 {
		require.True(t, time.Now().Before(deadline), "the handoff path never changed for the gateway")
		time.Sleep(100 * time.Millisecond)
	}
	b.Wait("the fallback in the log", logCount("handoff", rev1.ID, "fell-back")+` === '1 fell back'`, within)
	assert.Contains(t, Eval[string](b, `document.querySelector('#activity li[data-type="handoff"] [data-field="fell-back"]').className`), "bad")
	b.Do(chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	b.Shot("app-drain.png", true)
	assert.Empty(t, b.Exceptions(), "the page threw")
}
