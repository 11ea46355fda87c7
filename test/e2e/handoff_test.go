package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The platform side of issue 15, black-box, through the real binary and
// testapp replicas (which record what they are told: testapp/handoff.go).

// handoffApp is an app that declares every path of sdk/PROTOCOL.md.
var handoffApp = map[string]any{"name": "game", "replicas": 1, "health_path": "/healthz", "client_path": "/ws",
	"drain_hook": "/discovery/drain", "handoff_path": "/discovery/handoff", "reconnect_grace": "2m"}

type notice struct {
	State          string     `json:"state"`
	Revision       string     `json:"revision"`
	ActiveRevision string     `json:"active_revision"`
	Reason         string     `json:"reason"`
	Deadline       *time.Time `json:"deadline"`
}

type moved struct {
	Ticket   string `json:"ticket"`
	Socket   string `json:"socket"`
	Revision string `json:"revision"`
	Replica  string `json:"replica"`
}

// replicaGet reads a testapp side channel of the replica ep pins, through
// the gateway.
func replicaGet(t *testing.T, f *Framework, ep Endpoint, path string, out any) {
	t.Helper()
	resp, err := f.HTTP().Get(ep.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
}

// send asks the replica ep pins to hand a player off with state; it returns
// the platform's status and answer.
func send(t *testing.T, f *Framework, ep Endpoint, state string) (int, moved, string) {
	t.Helper()
	resp, err := f.HTTP().Post(ep.URL+"discovery/send", "application/octet-stream", strings.NewReader(state))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m moved
	if resp.StatusCode == 201 {
		require.NoError(t, json.Unmarshal(body, &m), string(body))
	}
	return resp.StatusCode, m, string(body)
}

// getEndpointURL answers get-endpoint at url with its status and body.
func getEndpointURL(t *testing.T, f *Framework, url string) (int, Endpoint, http.Header) {
	t.Helper()
	resp, err := f.HTTP().Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	var ep Endpoint
	if resp.StatusCode == 200 {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&ep))
	}
	return resp.StatusCode, ep, resp.Header
}

func TestDrainNoticeAndHandoff(t *testing.T) {
	f := New(t)
	f.Start()
	require.Equal(t, 201, f.Call("POST", "/apps", handoffApp, nil))
	v1 := f.Deploy("game", nil)
	f.WaitState("game", v1, "active", 60*time.Second)
	epURL := f.APIURL() + "/api/v1/tenants/default/apps/game/endpoint"

	// The socket URL is dialled as it is; get-endpoint may be read from any origin.
	code, ep1, hdr := getEndpointURL(t, f, epURL)
	require.Equal(t, 200, code)
	assert.Equal(t, ep1.Endpoint+"ws", ep1.Socket)
	assert.Equal(t, "*", hdr.Get("Access-Control-Allow-Origin"))
	c, _, err := websocket.DefaultDialer.Dial(ep1.Socket, nil)
	require.NoError(t, err)
	require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte("hi")))
	_, msg, err := c.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, "hi", string(msg))
	defer c.Close()

	// The revision's notices, followed by a member (a replica would use its capability).
	stream := followNotices(t, f, v1)
	first := <-stream
	assert.Equal(t, "active", first.State)

	// v2 becomes active: v1's replica is told at its drain_hook, within a second.
	v2 := f.Deploy("game", nil)
	f.WaitState("game", v2, "active", 60*time.Second)
	var got []struct {
		At     time.Time `json:"at"`
		Notice notice    `json:"notice"`
	}
	f.Eventually("v1's replica told it drains", 10*time.Second, func() bool {
		replicaGet(t, f, ep1, "discovery/notices", &got)
		return len(got) > 0
	})
	n := got[0].Notice
	assert.Equal(t, "draining", n.State)
	assert.Equal(t, v1, n.Revision)
	assert.Equal(t, v2, n.ActiveRevision)
	var revs struct {
		Revisions []struct {
			ID         string    `json:"id"`
			DrainingAt time.Time `json:"draining_at"`
		}
	}
	require.Equal(t, 200, f.Call("GET", "/apps/game/revisions", nil, &revs))
	for _, r := range revs.Revisions {
		if r.ID == v1 {
			lag := got[0].At.Sub(r.DrainingAt)
			t.Logf("drain notice reached the replica %s after v1 started draining", lag)
			assert.Less(t, lag, time.Second, "told within a second")
		}
	}
	assert.Equal(t, "draining", (<-stream).State, "the stream says so too")

	// v1's replica hands a player off: the state reaches v2's replica under a
	// ticket, never the platform's store.
	code, m, body := send(t, f, ep1, "hp=3;x=4;y=9")
	require.Equal(t, 201, code, body)
	assert.Equal(t, v2, m.Revision)
	assert.Contains(t, m.Socket, "discovery_ticket="+m.Ticket)
	code, ep2, _ := getEndpointURL(t, f, epURL+"?ticket="+m.Ticket)
	require.Equal(t, 200, code)
	assert.Equal(t, m.Socket, ep2.Socket, "get-endpoint with the ticket answers its target")
	var states map[string]string
	replicaGet(t, f, ep2, "discovery/states", &states)
	assert.Equal(t, "hp=3;x=4;y=9", states[m.Ticket])

	// The client presents it: the new server resumes the player.
	c2, _, err := websocket.DefaultDialer.Dial(m.Socket, nil)
	require.NoError(t, err)
	_, msg, err = c2.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, "resumed:hp=3;x=4;y=9", string(msg))
	c2.Close()

	// Used up: replayed on the socket or on get-endpoint, it is gone (410),
	// and the 410 says where to go instead, from any origin.
	_, resp, err := websocket.DefaultDialer.Dial(m.Socket, nil)
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, 410, resp.StatusCode)
	var gone struct {
		GetEndpoint string `json:"get_endpoint"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&gone))
	assert.Equal(t, epURL, gone.GetEndpoint, "an absolute get-endpoint URL")
	assert.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
	code, _, _ = getEndpointURL(t, f, epURL+"?ticket="+m.Ticket)
	assert.Equal(t, 410, code)

	// Rolled back to v1: its replica is told it is active again.
	require.Equal(t, 200, f.Call("POST", "/apps/game/revisions/"+v1+"/activate", nil, nil))
	f.Eventually("v1's replica told it is active again", 10*time.Second, func() bool {
		replicaGet(t, f, ep1, "discovery/notices", &got)
		return len(got) > 1 && got[len(got)-1].Notice.State == "active"
	})
	assert.Contains(t, got[len(got)-1].Notice.Reason, "re-activated")
	assert.Equal(t, "active", (<-stream).State)

	// The activity log says how many replicas were told, and the handoff.
	var evs struct {
		Events []struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		}
	}
	f.Eventually("notice and handoff events", 10*time.Second, func() bool {
		require.Equal(t, 200, f.Call("GET", "/apps/game/events?limit=200", nil, &evs))
		var notices, handoffs int
		for _, e := range evs.Events {
			switch e.Type {
			case "notice":
				notices++
				assert.Contains(t, e.Message, "told 1 of 1 replicas")
			case "handoff":
				handoffs++
				assert.Contains(t, e.Message, "1 players moved")
			}
		}
		return notices >= 2 && handoffs >= 1
	})
}

// followNotices reads a revision's notice stream as the admin.
func followNotices(t *testing.T, f *Framework, rev string) <-chan notice {
	t.Helper()
	req, err := http.NewRequest("GET", f.APIURL()+"/api/v1/tenants/default/apps/game/revisions/"+rev+"/notices", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+f.Token)
	resp, err := f.HTTP().Do(req)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	out := make(chan notice, 16)
	t.Cleanup(func() { resp.Body.Close() })
	go func() {
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var n notice
				if json.Unmarshal([]byte(data), &n) == nil {
					out <- n
				}
			}
		}
	}()
	return out
}

// sendTo is send aimed at another tenant's app and revision, with the
// calling replica's own capability.
func sendTo(t *testing.T, f *Framework, ep Endpoint, tenant, app, rev, state string) (int, string) {
	t.Helper()
	resp, err := f.HTTP().Post(ep.URL+"discovery/send?tenant="+tenant+"&app="+app+"&revision="+rev, "application/octet-stream", strings.NewReader(state))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// A hostile tenant, or a hostile client, against tickets and handoffs:
// every attempt is refused and changes nothing.
func TestHandoffsRefuseTheHostile(t *testing.T) {
	f := New(t)
	f.Start()
	admin := f.Token
	require.Equal(t, 201, f.Call("POST", "/apps", handoffApp, nil))
	v1 := f.Deploy("game", nil)
	f.WaitState("game", v1, "active", 60*time.Second)
	epURL := f.APIURL() + "/api/v1/tenants/default/apps/game/endpoint"
	_, ep1, _ := getEndpointURL(t, f, epURL)
	v2 := f.Deploy("game", nil)
	f.WaitState("game", v2, "active", 60*time.Second)
	_, ep2, _ := getEndpointURL(t, f, epURL)
	require.Equal(t, v2, ep2.Revision)

	// Tenant b runs the same app; its replica has its own capability.
	require.Equal(t, 201, f.CallAs(admin, "POST", "/api/v1/tenants", map[string]any{"name": "b"}, nil))
	require.Equal(t, 200, f.CallAs(admin, "PATCH", "/api/v1/tenants/b", map[string]any{"allow_commands": true}, nil))
	require.Equal(t, 201, f.CallAs(admin, "POST", "/api/v1/tenants/b/apps", handoffApp, nil))
	var rb Revision
	require.Equal(t, 202, f.CallAs(admin, "POST", "/api/v1/tenants/b/apps/game/revisions", map[string]any{"command": []string{f.App}}, &rb))
	f.Eventually("b's app runs", 60*time.Second, func() bool {
		var r Revision
		f.CallAs(admin, "GET", "/api/v1/tenants/b/apps/game/revisions/"+rb.ID, nil, &r)
		return r.State == "active"
	})
	bURL := f.APIURL() + "/api/v1/tenants/b/apps/game/endpoint"
	_, epB, _ := getEndpointURL(t, f, bURL)

	states := func(ep Endpoint) map[string]string {
		var s map[string]string
		replicaGet(t, f, ep, "discovery/states", &s)
		return s
	}

	// An oversized state: 413, no ticket, nothing reaches v2.
	code, _, body := send(t, f, ep1, strings.Repeat("x", 1<<20+1))
	assert.Equal(t, 413, code, body)
	assert.Empty(t, states(ep2))

	// A handoff from the active revision: 409.
	code, _, body = send(t, f, ep2, "state")
	assert.Equal(t, 409, code, body)
	assert.Empty(t, states(ep2))

	// b's replica aims at a's draining revision with its own capability:
	// it is not that revision's, so no credential at all (401).
	code, body = sendTo(t, f, epB, "default", "game", v1, "state")
	assert.Equal(t, 401, code, body)
	assert.Empty(t, states(ep2))

	// A real ticket of tenant default, presented to tenant b: gone there,
	// and still good for its own target afterwards.
	code, m, body := send(t, f, ep1, "mine")
	require.Equal(t, 201, code, body)
	code, _, _ = getEndpointURL(t, f, bURL+"?ticket="+m.Ticket)
	assert.Equal(t, 410, code, "a ticket of another tenant's app")
	_, resp, err := websocket.DefaultDialer.Dial(epB.Socket+"?discovery_ticket="+m.Ticket, nil)
	require.Error(t, err)
	assert.Equal(t, 410, resp.StatusCode, "presented on another tenant's replica")
	assert.Empty(t, states(epB), "b's replica got nothing")

	// A client forging the gateway's header reaches the replica without it.
	forged := http.Header{"X-Discovery-Ticket": {m.Ticket}}
	c, _, err := websocket.DefaultDialer.Dial(ep2.Socket, forged)
	require.NoError(t, err)
	require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte("echo")))
	_, msg, err := c.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, "echo", string(msg), "no resume: the forged header never reached the replica")
	c.Close()

	// The ticket, honestly presented, still works once; then it is gone.
	c, _, err = websocket.DefaultDialer.Dial(m.Socket, nil)
	require.NoError(t, err)
	_, msg, err = c.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, "resumed:mine", string(msg))
	c.Close()
	_, resp, err = websocket.DefaultDialer.Dial(m.Socket, nil)
	require.Error(t, err)
	assert.Equal(t, 410, resp.StatusCode, "replayed")

	// A player cannot reach the paths only the platform calls: no fake
	// notice, no state planted under a made-up ticket, however spelled.
	var before []json.RawMessage
	replicaGet(t, f, ep2, "discovery/notices", &before)
	for _, p := range []string{"discovery/drain", "discovery//drain", "discovery/./drain", "Discovery/Drain", "discovery/drain/",
		"discovery/%64rain", "x/../discovery/handoff", "discovery/handoff"} {
		req, err := http.NewRequest("POST", ep2.URL+p, strings.NewReader(`{"state":"draining","tenant":"default","app":"game","revision":"`+v2+`"}`))
		require.NoError(t, err)
		req.Header.Set("X-Discovery-Ticket", "AAAAAAAAAAAAAAAAAAAAAAAAAA")
		resp, err := f.HTTP().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 403, resp.StatusCode, p)
	}
	var after []json.RawMessage
	replicaGet(t, f, ep2, "discovery/notices", &after)
	assert.Equal(t, len(before), len(after), "no notice reached the replica")
	assert.Empty(t, states(ep2), "no state reached the replica")

	// Made-up and malformed tickets are gone without a lookup's help.
	for _, bad := range []string{"AAAAAAAAAAAAAAAAAAAAAAAAAA", "../../x", strings.Repeat("A", 200)} {
		code, _, _ := getEndpointURL(t, f, epURL+"?ticket="+bad)
		assert.Equal(t, 410, code, bad)
	}
}
