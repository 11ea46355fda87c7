package browser

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/internal/testkit/platformtest"
	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
)

// TestBridgeShowsWhatHappenedBeforeThePageOpened: a rollout happens with
// nobody watching (two players on revision 1, then revision 2, the players
// leave, revision 1 retires), then a deploy fails. An operator who opens
// Bridge afterwards sees the rollout on the app's sessions chart (the
// platform kept the history: revision 1's line peaks at 2), the failed
// deploy flagged on the apps list, and the failure's output on the app page;
// the activity log's search finds lines and who did them; and a replica's
// CPU figure moves when it burns a core.
func TestBridgeShowsWhatHappenedBeforeThePageOpened(t *testing.T) {
	p := &Platform{Platform: platformtest.New(t), t: t, App: build.Binary(t)}
	p.Args = append(p.Args, "--history-step", "200ms")
	p.Start()
	const within = 30 * time.Second
	base := "/tenants/default/apps/story"
	require.Equal(t, 201, p.Call(p.Token, "POST", "/tenants/default/apps", map[string]any{"name": "story", "client_path": "/ws",
		"reconnect_grace": "1s", "start_timeout": "20s"}, nil))
	deploy := func(body map[string]any) string {
		var r struct{ ID string }
		require.Equal(t, 202, p.Call(p.Token, "POST", base+"/revisions", body, &r))
		return r.ID
	}
	state := func(id string) string {
		var r struct{ State string }
		p.Call(p.Token, "GET", base+"/revisions/"+id, nil, &r)
		return r.State
	}
	waitState := func(id, want string) {
		deadline := time.Now().Add(60 * time.Second)
		for state(id) != want {
			require.True(t, time.Now().Before(deadline), "revision %s never became %s", id, want)
			time.Sleep(100 * time.Millisecond) // poll interval
		}
	}
	v1 := deploy(map[string]any{"command": []string{p.App}, "label": "v1.0"})
	waitState(v1, "active")
	var players []*websocket.Conn
	for range 2 {
		c, _, err := websocket.DefaultDialer.Dial(getEndpoint(t, p, "story").Socket, nil)
		require.NoError(t, err)
		defer c.Close()
		players = append(players, c)
	}
	var hist struct {
		StepSeconds float64 `json:"step_seconds"`
		Revisions   map[string][]struct{ T, N int64 }
	}
	deadline := time.Now().Add(within)
	for {
		require.Equal(t, 200, p.Call(p.Token, "GET", base+"/sessions/history", nil, &hist))
		if pts := hist.Revisions[v1]; len(pts) > 0 && pts[len(pts)-1].N == 2 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the history never saw both players: %+v", hist)
		assert.InDelta(t, 0.2, hist.StepSeconds, 0.001)
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	v2 := deploy(map[string]any{"command": []string{p.App}, "label": "v2.0"})
	waitState(v2, "active")
	for _, c := range players {
		require.NoError(t, c.Close())
	}
	waitState(v1, "retired")
	bad := deploy(map[string]any{"command": []string{"/bin/sh", "-c", "echo 'fatal: no map file' >&2; exit 3"}, "label": "v3.0-rc"})
	waitState(bad, "failed")

	b := NewBrowser(t)
	b.Do(chromedp.Navigate(p.URL() + "/bridge/#/t/default"))
	b.Wait("the login form", `document.querySelector('#login-form')`, within)
	b.Do(chromedp.SendKeys(chromedp.CSS("#f-token"), p.Token), chromedp.Click(chromedp.CSS("#login-form button[type=submit]")))
	b.Wait("the apps list flags the failed deploy",
		`document.querySelector('tr[data-app="story"] [data-field="last-deploy"]')?.textContent === 'last deploy failed (v3.0-rc)'`, within)
	b.Shot("apps-failed-deploy.png", false)

	b.Do(chromedp.Navigate(p.URL() + "/bridge/#/t/default/a/story"))
	b.Wait("revision 1's line on the chart, from before the page opened, peaking at 2",
		fmt.Sprintf(`document.querySelector('#chart polyline[data-rev="%s"]')?.dataset.peak === '2'`, v1), within)
	assert.True(t, Eval[bool](b, fmt.Sprintf(`!!document.querySelector('#chart polyline[data-rev="%s"]')`, v2)), "revision 2 on the chart too")
	assert.Equal(t, "v2.0", Eval[string](b, fmt.Sprintf(`document.querySelector('#revisions tr[data-rev="%s"] [data-field="label"]')?.textContent.trim()`, v2)))
	assert.Contains(t, Eval[string](b, fmt.Sprintf(`document.querySelector('#revisions tr[data-rev="%s"] .last-output pre')?.textContent`, bad)),
		"fatal: no map file", "the failed revision's output, kept after its replicas are gone")
	b.Do(chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	b.Shot("app-history.png", false)

	// The activity log's search: the failed revision's crashes, by words;
	// then only deploys, by type; each deploy names who asked (admin).
	visible := `[...document.querySelectorAll('#activity li')].filter(li => !li.hidden)`
	b.Wait("the activity log", `document.querySelectorAll('#activity li').length > 5`, within)
	b.Do(chromedp.SendKeys(chromedp.CSS("#activity-search"), bad+" exited no map"))
	b.Wait("only the failed revision's crash lines", visible+`.length > 0 && `+visible+`.every(li => li.dataset.type === 'replica_crashed' && li.dataset.revision === '`+bad+`')`, within)
	b.Do(chromedp.Evaluate[chromedp.Void](`(() => { const q = document.querySelector('#activity-search'), s = document.querySelector('#activity-type');
		q.value = ''; q.dispatchEvent(new Event('input')); s.value = 'deployed'; s.dispatchEvent(new Event('change')); })()`))
	b.Wait("the three deploys", visible+`.length === 3 && `+visible+`.every(li => li.dataset.type === 'deployed')`, within)
	assert.True(t, Eval[bool](b, visible+`.every(li => li.querySelector('[data-field="actor"]')?.textContent === ' by admin')`), "each deploy names who asked")

	// The replica's CPU and memory, measured from /proc: idle, then
	// burning a core.
	usage := fmt.Sprintf(`document.querySelector('#revisions tr[data-rev="%s"] [data-field="usage"]')`, v2)
	b.Wait("the replica's figures", usage+`?.textContent.includes('MB')`, within)
	assert.Less(t, Eval[float64](b, `Number(`+usage+`.dataset.cpu)`), 50.0, "an idle replica")
	burn := getEndpoint(t, p, "story").URL + "burn?ms=6000"
	done := make(chan int, 1)
	go func() {
		resp, err := p.HTTP().Get(burn)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	b.Wait("the replica burning a core", `Number(`+usage+`?.dataset.cpu) > 50`, within)
	b.Shot("app-replica-usage.png", false)
	assert.Equal(t, 200, <-done)
}
