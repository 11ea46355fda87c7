package browser

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rev is JavaScript reading one revision row of the app page.
func rev(id, field string) string {
	return fmt.Sprintf(`document.querySelector('#revisions tr[data-rev="%s"] [data-field="%s"]')?.textContent`, id, field)
}

// logHas is JavaScript: does the live activity log show a line of this type
// (and revision, and text)?
func logHas(typ, revision, text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#activity li[data-type="%s"]')].some(li => ('%s' === '' || li.dataset.revision === '%s') && li.textContent.includes(%q))`,
		typ, revision, revision, text)
}

// player opens a WebSocket session to the app the way a game client does:
// get-endpoint, then a dial of the endpoint it answered; it checks an echo.
func player(t *testing.T, p *Platform, app string) (revision string) {
	var ep struct{ Endpoint, Revision string }
	require.Equal(t, 200, p.Call("", "GET", "/tenants/default/apps/"+app+"/endpoint", nil, &ep))
	conn, _, err := websocket.DefaultDialer.Dial(ep.Endpoint+"ws", nil)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.WriteMessage(websocket.TextMessage, []byte("hello")))
	_, msg, err := conn.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, "hello", string(msg))
	return ep.Revision
}

// The catalog image the story adds, and JavaScript finding its row.
const (
	image       = "example/arena:1.0"
	imageRowCSS = `tr[data-image="` + image + `"]`
	imageRow    = `document.querySelector('` + imageRowCSS + `')`
)

// leaseRow is JavaScript finding one lease's row of the app page; leaseCell
// reads one of its fields.
func leaseRow(lease string) string {
	return fmt.Sprintf(`document.querySelector('#leases tr[data-lease="%s"]')`, lease)
}

func leaseCell(lease, field string) string {
	return leaseRow(lease) + fmt.Sprintf(`?.querySelector('[data-field="%s"]')?.textContent`, field)
}

// TestBridgeRolloutStory is the dashboard's story: an operator signs in with
// the admin token, creates an app, deploys it and watches it become active,
// deploys again while a player is connected and watches the first revision
// drain with its session, rolls back with the button, and sees every step in
// the live activity log, all on one page load. The admin adds the test app to
// the image catalog and trusts the tenant with commands; a deployer, signed
// in with a token bound to the tenant, sees the platform's refusal once the
// trust is gone, deploys the catalog's image from the select, and releases a
// lease taken through the API with its button. Then a viewer signs in: no
// button to deploy, release a lease or edit the catalog, and a forged deploy
// is refused.
func TestBridgeRolloutStory(t *testing.T) {
	b := NewBrowser(t) // first: without chromium nothing else is worth starting
	p := StartPlatform(t)
	const within = 30 * time.Second

	// Sign in.
	b.Do(chromedp.Navigate(p.URL() + "/bridge/"))
	b.Wait("the login form", `document.querySelector('#login-form')`, within)
	assert.Equal(t, "Sign in · Bridge", Eval[string](b, `document.title`))
	b.Shot("login.png", false)
	signIn := func(token string) {
		b.Do(chromedp.SendKeys(chromedp.CSS("#f-token"), token), chromedp.Click(chromedp.CSS("#login-form button[type=submit]")))
	}
	signIn(p.Token)
	b.Wait("the tenants page with default's quota bars", `document.querySelector('[data-tenant="default"] [role="meter"][aria-label="Stored specs"]')`, within)
	assert.Contains(t, Eval[string](b, `document.querySelector('[data-tenant="default"] [data-field="quota-limits"]').textContent`), "100 leases per revision")
	assert.Equal(t, "0 B / 4 MiB", Eval[string](b, `document.querySelector('[data-tenant="default"] [aria-label="Stored specs"]').closest('.bar').querySelector('b').textContent`))
	assert.Equal(t, "Tenants · Bridge", Eval[string](b, `document.title`))
	b.Shot("tenants.png", false)

	// The admin lowers one bound of the quota; the others keep their value.
	b.Do(chromedp.Click(chromedp.CSS(`[data-tenant="default"] details summary`)),
		chromedp.SetValue(chromedp.CSS("#f-default-max_leases_per_revision"), "50"),
		chromedp.Click(chromedp.CSS(`[data-tenant="default"] .quota-form button[type=submit]`)))
	b.Wait("the new bound on the tenant's card", `document.querySelector('[data-tenant="default"] [data-field="quota-limits"]')?.textContent.includes('50 leases per revision')`, within)
	var quota struct {
		MaxLeases int   `json:"max_leases_per_revision"`
		MaxStored int64 `json:"max_stored_bytes"`
		MaxApps   int   `json:"max_apps"`
	}
	require.Equal(t, 200, p.Call(p.Token, "GET", "/tenants/default/quota", nil, &quota))
	assert.Equal(t, 50, quota.MaxLeases)
	assert.Equal(t, int64(4<<20), quota.MaxStored, "a field not changed keeps its value")
	assert.Equal(t, 20, quota.MaxApps, "a field not changed keeps its value")

	// Create an app with the form.
	b.Do(chromedp.Click(chromedp.CSS(`[data-tenant="default"] h2 a`)))
	b.Wait("the create-app form", `document.querySelector('#create-app-form')`, within)
	b.Do(chromedp.SendKeys(chromedp.CSS("#f-name"), "arena"),
		chromedp.SetValue(chromedp.CSS("#f-reconnect_grace"), "5m"),
		chromedp.Click(chromedp.CSS("#create-app-btn")))
	b.Wait("the app page", `document.title === 'arena · Bridge' && document.querySelector('#deploy-form')`, within)
	b.Wait("the live activity log", `document.querySelector('#live.on')`, within)
	b.Wait("app_created in the activity log", logHas("app_created", "", ""), within)
	loaded := Eval[float64](b, `window.__marker = 1, window.__bridgeLoadedAt`)

	// Deploy revision 1 and watch it go active, with progress shown.
	b.Do(chromedp.SendKeys(chromedp.CSS("#f-command"), p.App),
		chromedp.SendKeys(chromedp.CSS("#f-env"), "VERSION=v1"),
		chromedp.Click(chromedp.CSS("#deploy-btn")))
	b.Wait("revision 1 in the table", `document.querySelector('#revisions tr[data-rev]')`, within)
	rev1 := Eval[string](b, `document.querySelector('#revisions tr[data-rev]').dataset.rev`)
	b.Wait("revision 1 active", rev(rev1, "state")+` === 'active'`, within)
	b.Wait("the rollout progress done", `document.querySelectorAll('#progress .steps li.done').length === 3`, within)
	b.Wait("deployed, then active, in the log", logHas("deployed", rev1, "")+" && "+logHas("transition", rev1, "active"), within)

	// A player connects: the page counts the session.
	require.Equal(t, rev1, player(t, p, "arena"))
	b.Wait("revision 1 shows 1 connection", rev(rev1, "connections")+` === '1 connection'`, within)

	// Deploy revision 2: revision 1 drains, keeping its player.
	b.Do(chromedp.SetValue(chromedp.CSS("#f-env"), "VERSION=v2"), chromedp.Click(chromedp.CSS("#deploy-btn")))
	b.Wait("revision 2 in the table", fmt.Sprintf(`[...document.querySelectorAll('#revisions tr[data-rev]')].some(r => r.dataset.rev !== '%s')`, rev1), within)
	rev2 := Eval[string](b, fmt.Sprintf(`[...document.querySelectorAll('#revisions tr[data-rev]')].find(r => r.dataset.rev !== '%s').dataset.rev`, rev1))
	b.Wait("revision 2 active", rev(rev2, "state")+` === 'active'`, within)
	b.Wait("revision 1 draining with its 1 connection", rev(rev1, "state")+` === 'draining' && `+rev(rev1, "connections")+` === '1 connection'`, within)
	b.Wait("revision 1 draining, in the log", logHas("transition", rev1, "draining"), within)
	// New players go to revision 2: the chart shows both lines.
	require.Equal(t, rev2, player(t, p, "arena"))
	require.Equal(t, rev2, player(t, p, "arena"))
	b.Wait("revision 2 shows 2 connections", rev(rev2, "connections")+` === '2 connections'`, within)
	b.Wait("the chart draws both revisions", fmt.Sprintf(`document.querySelector('#chart polyline[data-rev="%s"]') && document.querySelector('#chart polyline[data-rev="%s"]')`, rev1, rev2), within)

	// Roll back with the button, through the confirmation dialog.
	b.Do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#revisions tr[data-rev="%s"] button[data-action="activate"]`, rev1))))
	b.Wait("the confirmation dialog", `document.querySelector('#confirm').open`, within)
	assert.Contains(t, Eval[string](b, `document.querySelector('#confirm-title').textContent`), rev1)
	b.Do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.Wait("revision 1 active again, revision 2 draining", rev(rev1, "state")+` === 'active' && `+rev(rev2, "state")+` === 'draining'`, within)
	b.Wait("the rollback in the log", logHas("transition", rev1, "re-activated")+" && "+logHas("transition", rev2, "draining"), within)
	b.Wait("the chart's legend", `document.querySelectorAll('#chart .legend li').length >= 2`, within)
	b.Shot("app.png", true)

	// All of it on one page load: the activity log streamed, nothing reloaded.
	assert.Equal(t, 1.0, Eval[float64](b, `window.__marker || 0`), "the page was reloaded")
	assert.Equal(t, loaded, Eval[float64](b, `window.__bridgeLoadedAt`))

	// The same page at phone width.
	b.Do(chromedp.EmulateViewport(390, 844))
	b.Wait("the revisions at phone width", `document.querySelector('#revisions tr[data-rev]').getBoundingClientRect().width <= 390`, within)
	b.Shot("app-phone.png", false)
	b.Do(chromedp.EmulateViewport(1280, 800))

	// A replica's log tail.
	b.Do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#revisions tr[data-rev="%s"] .replicas a`, rev1))))
	b.Wait("the replica's output", `document.querySelector('#log-tail')?.textContent.includes('listening on')`, within)
	b.Shot("replica-log.png", false)

	// The apps of the tenant.
	b.Do(chromedp.Click(chromedp.CSS(`#crumbs a[href="#/t/default"]`)))
	b.Wait("the apps list", `document.querySelector('tr[data-app="arena"]')`, within)
	b.Shot("apps.png", false)

	// Scale with the form: the active revision gets a second replica.
	b.Do(chromedp.Click(chromedp.CSS(`tr[data-app="arena"] a`)))
	b.Wait("the scale form", `document.querySelector('#scale-form')`, within)
	b.Do(chromedp.SetValue(chromedp.CSS("#f-replicas"), "2"), chromedp.Click(chromedp.CSS("#scale-btn")))
	b.Wait("the settings say 2 replicas", `document.querySelector('#settings').textContent.startsWith('2 replicas')`, within)
	b.Wait("2 ready replicas of the active revision", fmt.Sprintf(`document.querySelectorAll('#revisions tr[data-rev="%s"] .replicas .dot.ready').length === 2`, rev1), within)
	b.Wait("app_updated in the log", logHas("app_updated", "", ""), within)

	// The admin adds the test app to the image catalog, then corrects its
	// description.
	b.Do(chromedp.Click(chromedp.CSS("#nav-images")))
	b.Wait("the images page", `document.title === 'Images · Bridge' && document.querySelector('#image-form') && document.querySelector('#no-images')`, within)
	b.Do(chromedp.SendKeys(chromedp.CSS("#f-ref"), image),
		chromedp.SendKeys(chromedp.CSS("#f-image_command"), p.App),
		chromedp.SendKeys(chromedp.CSS("#f-description"), "the test arena"),
		chromedp.Click(chromedp.CSS("#image-btn")))
	b.Wait("the image in the catalog", imageRow+`?.textContent.includes('the test arena')`, within)
	b.Do(chromedp.Click(chromedp.CSS(imageRowCSS + ` button[data-action="edit-image"]`)))
	b.Wait("the form, filled to replace it", `document.querySelector('#f-ref').value === '`+image+`' && document.querySelector('#f-image_command').value === '`+p.App+`'`, within)
	b.Do(chromedp.SetValue(chromedp.CSS("#f-description"), "the test arena, v1"), chromedp.Click(chromedp.CSS("#image-btn")))
	b.Wait("the new description", imageRow+`?.textContent.includes('the test arena, v1')`, within)
	var catalog struct {
		Images []struct {
			Image       string
			Command     []string
			Description string
		}
	}
	require.Equal(t, 200, p.Call(p.Token, "GET", "/images", nil, &catalog))
	require.Len(t, catalog.Images, 1)
	assert.Equal(t, []string{p.App}, catalog.Images[0].Command)
	assert.Equal(t, "the test arena, v1", catalog.Images[0].Description)
	b.Shot("images.png", false)

	// On the tenant's page the admin trusts it with raw commands.
	allowsCommands := func() bool {
		var ten struct {
			AllowCommands bool `json:"allow_commands"`
		}
		require.Equal(t, 200, p.Call(p.Token, "GET", "/tenants/default", nil, &ten))
		return ten.AllowCommands
	}
	b.Do(chromedp.Evaluate[chromedp.Void](`location.hash = '#/t/default'`))
	b.Wait("the tenant's trust switch, off", `document.querySelector('#allow-commands') && !document.querySelector('#allow-commands').checked`, within)
	b.Do(chromedp.Click(chromedp.CSS("#allow-commands")))
	b.Wait("the confirmation dialog", `document.querySelector('#confirm').open`, within)
	b.Do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.Wait("the tenant trusted", `document.querySelector('#allow-commands').checked && document.querySelector('#trust-text').textContent.includes('an admin trusts it')`, within)
	assert.True(t, allowsCommands())

	// A lease taken through the API, as a server holding its revision open.
	var lease struct{ Lease, Holder string }
	require.Equal(t, 201, p.Call(p.Token, "POST", "/tenants/default/apps/arena/revisions/"+rev1+"/leases", map[string]string{"ttl": "10m"}, &lease))

	// dana, a deployer, signs in with a token bound to the tenant.
	require.Equal(t, 200, p.Call(p.Token, "PUT", "/tenants/default/members/dana", map[string]string{"role": "deployer"}, nil))
	var dana struct{ Token, Tenant string }
	require.Equal(t, 201, p.Call(p.Token, "POST", "/tokens", map[string]string{"subject": "dana", "tenant": "default"}, &dana))
	require.Equal(t, "default", dana.Tenant)
	b.Do(chromedp.Click(chromedp.CSS(`#who button`)))
	b.Wait("the login form", `document.querySelector('#login-form')`, within)
	b.Do(chromedp.Evaluate[chromedp.Void](`location.hash = '#/t/default/a/arena'`))
	signIn(dana.Token)
	b.Wait("dana's app page, with the command field of a trusted tenant", `document.querySelector('#deploy-form #f-command') && document.querySelector('#leases')`, within)
	assert.Contains(t, Eval[string](b, `document.querySelector('#who').textContent`), "default only")
	// The lease is listed, with a button to release it.
	b.Wait("the lease in the table", leaseCell(lease.Lease, "holder")+` === 'admin' && `+leaseCell(lease.Lease, "revision")+` === '`+rev1+`'`, within)
	assert.True(t, Eval[bool](b, leaseRow(lease.Lease)+`.querySelector('button[data-action="release-lease"]') !== null`))

	// The admin withdraws the trust meanwhile: the platform refuses dana's
	// command, and the form says why.
	require.Equal(t, 200, p.Call(p.Token, "PATCH", "/tenants/default", map[string]bool{"allow_commands": false}, nil))
	b.Do(chromedp.SendKeys(chromedp.CSS("#f-command"), p.App), chromedp.Click(chromedp.CSS("#deploy-btn")))
	b.Wait("the refusal next to the form", `document.querySelector('#deploy-error').textContent.includes("a platform admin's right")`, within)
	// The page anew: no command field, the catalog's image in the select.
	b.Do(chromedp.Evaluate[chromedp.Void](`route()`))
	b.Wait("the deploy form without the command field", `document.querySelector('#deploy-form') && !document.querySelector('#f-command') && `+
		`[...document.querySelectorAll('select#f-image option')].some(o => o.value === '`+image+`')`, within)
	b.Do(chromedp.SetValue(chromedp.CSS("#f-image"), image), chromedp.Click(chromedp.CSS("#deploy-btn")))
	newRev := fmt.Sprintf(`[...document.querySelectorAll('#revisions tr[data-rev]')].find(r => r.dataset.rev !== '%s' && r.dataset.rev !== '%s')`, rev1, rev2)
	b.Wait("revision 3 in the table", newRev, within)
	rev3 := Eval[string](b, newRev+`.dataset.rev`)
	b.Wait("revision 3 active, running the image", rev(rev3, "state")+` === 'active' && document.querySelector('#revisions tr[data-rev="`+rev3+`"] .what code').textContent === '`+image+`'`, within)
	b.Wait("revision 1 draining, held by its session and the lease", rev(rev1, "state")+` === 'draining'`, within)
	b.Shot("app-deployer.png", true)

	// dana releases the lease with its button.
	b.Do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#leases tr[data-lease="%s"] button[data-action="release-lease"]`, lease.Lease))))
	b.Wait("the confirmation dialog", `document.querySelector('#confirm').open`, within)
	assert.Contains(t, Eval[string](b, `document.querySelector('#confirm-title').textContent`), lease.Lease)
	b.Do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.Wait("the lease gone from the table", `!`+leaseRow(lease.Lease), within)
	var held struct{ Leases []struct{ Lease string } }
	require.Equal(t, 200, p.Call(p.Token, "GET", "/tenants/default/apps/arena/leases", nil, &held))
	assert.Empty(t, held.Leases, "the lease was released")

	// A viewer: no button it may not use, and the API refuses a forged deploy.
	require.Equal(t, 201, p.Call(p.Token, "POST", "/tenants/default/apps/arena/revisions/"+rev3+"/leases", map[string]string{"ttl": "10m"}, &lease))
	require.Equal(t, 200, p.Call(p.Token, "PUT", "/tenants/default/members/vic", map[string]string{"role": "viewer"}, nil))
	var tok struct{ Token string }
	require.Equal(t, 201, p.Call(p.Token, "POST", "/tokens", map[string]string{"subject": "vic"}, &tok))
	b.Do(chromedp.Click(chromedp.CSS(`#who button`)))
	b.Wait("the login form", `document.querySelector('#login-form')`, within)
	signIn(tok.Token)
	b.Wait("the viewer's tenants", `document.querySelector('[data-tenant="default"]')`, within)
	assert.False(t, Eval[bool](b, `!!document.querySelector('.quota-form')`), "a viewer sees the quota form")
	b.Do(chromedp.Evaluate[chromedp.Void](`location.hash = '#/t/default/a/arena'`))
	b.Wait("the viewer's app page", rev(rev3, "state")+` === 'active' && document.querySelector('#activity li') && `+leaseCell(lease.Lease, "revision")+` === '`+rev3+`'`, within)
	assert.Contains(t, Eval[string](b, `document.querySelector('#who').textContent`), "viewer")
	for _, sel := range []string{"#deploy-form", "#deploy-btn", "#scale-form", "#protocol-form", "#delete-app-btn", "#revisions button", "#leases button"} {
		assert.False(t, Eval[bool](b, fmt.Sprintf(`!!document.querySelector('%s')`, sel)), "a viewer sees %s", sel)
	}
	b.Shot("viewer.png", false)
	forged := Eval[int](b, `fetch('/api/v1/tenants/default/apps/arena/revisions', {method: 'POST',
		headers: {Authorization: 'Bearer ' + sessionStorage.getItem('bridge.token'), 'Content-Type': 'application/json'},
		body: JSON.stringify({command: ['/bin/true']})}).then(r => r.status)`)
	assert.Equal(t, 403, forged, "a forged deploy with the viewer's token")
	assert.Equal(t, 403, p.Call(tok.Token, "POST", "/tenants/default/apps/arena/revisions/"+rev2+"/activate", nil, nil), "a forged rollback")
	assert.Equal(t, 403, p.Call(tok.Token, "DELETE", "/tenants/default/apps/arena/leases/"+lease.Lease, nil, nil), "a forged release")
	var revs struct{ Revisions []struct{ ID string } }
	require.Equal(t, 200, p.Call(p.Token, "GET", "/tenants/default/apps/arena/revisions", nil, &revs))
	assert.Len(t, revs.Revisions, 3, "the refused deploys created nothing")
	assert.False(t, strings.Contains(Eval[string](b, `document.body.innerText`), "Deploy a new revision"))
	// The catalog and the tenant's trust, read-only.
	b.Do(chromedp.Click(chromedp.CSS("#nav-images")))
	b.Wait("the viewer's catalog", imageRow, within)
	for _, sel := range []string{"#image-form", `button[data-action="edit-image"]`, `button[data-action="delete-image"]`} {
		assert.False(t, Eval[bool](b, fmt.Sprintf(`!!document.querySelector('%s')`, sel)), "a viewer sees %s", sel)
	}
	b.Do(chromedp.Evaluate[chromedp.Void](`location.hash = '#/t/default'`))
	b.Wait("the viewer's tenant page", `document.querySelector('#trust-text')?.textContent.includes('catalog')`, within)
	assert.False(t, Eval[bool](b, `!!document.querySelector('#allow-commands')`), "a viewer sees the trust switch")

	// The admin deletes the app with the button; the page goes back to the
	// tenant's apps once it is gone (its log goes with it).
	b.Do(chromedp.Click(chromedp.CSS(`#who button`)))
	b.Wait("the login form", `document.querySelector('#login-form')`, within)
	b.Do(chromedp.Evaluate[chromedp.Void](`location.hash = '#/t/default/a/arena'`))
	signIn(p.Token)
	b.Wait("the app page again, after the sign-in", `document.querySelector('#delete-app-btn')`, within)
	b.Do(chromedp.Click(chromedp.CSS("#delete-app-btn")))
	b.Wait("the confirmation dialog", `document.querySelector('#confirm').open`, within)
	b.Do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.Wait("the apps page without arena", `location.hash === '#/t/default' && document.querySelector('h1')?.textContent.startsWith('Apps') && !document.querySelector('tr[data-app="arena"]')`, within)
	assert.Empty(t, b.Exceptions(), "the page threw")
}
