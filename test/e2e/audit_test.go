package e2e

import (
	"bufio"
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// auditEvent is an event as the audit trail shows it.
type auditEvent struct {
	Type     string `json:"type"`
	Revision string `json:"revision"`
	To       string `json:"to"`
	Actor    string `json:"actor"`
	Message  string `json:"message"`
	Changes  []struct {
		Field, Old, New string
	} `json:"changes"`
}

// TestEventsNameTheActorAndWhatChanged: a change made with a deployer's
// token names that subject and, for settings, what changed (old -> new); what
// the reconciler does names "platform"; ?actor= and ?type= select; a bad
// filter is a 400; a deploy's label lands on the revision and its event.
func TestEventsNameTheActorAndWhatChanged(t *testing.T) {
	f := New(t)
	f.Start()
	admin := f.Token
	require.Equal(t, 201, f.CallAs(admin, "POST", "/api/v1/tenants", map[string]any{"name": "studio"}, nil))
	require.Equal(t, 200, f.CallAs(admin, "PATCH", "/api/v1/tenants/studio", map[string]any{"allow_commands": true}, nil))
	require.Equal(t, 200, f.CallAs(admin, "PUT", "/api/v1/tenants/studio/members/dana", map[string]any{"role": "deployer"}, nil))
	dana := tokenFor(t, f, "dana", "studio")
	base := "/api/v1/tenants/studio/apps"

	require.Equal(t, 201, f.CallAs(dana, "POST", base, map[string]any{"name": "arena", "replicas": 1, "reconnect_grace": "1s"}, nil))
	require.Equal(t, 200, f.CallAs(dana, "PATCH", base+"/arena", map[string]any{"replicas": 2, "strategy": "spread"}, nil))
	var rev struct {
		ID    string `json:"id"`
		Label string `json:"label"`
		Note  string `json:"note"`
	}
	require.Equal(t, 202, f.CallAs(dana, "POST", base+"/arena/revisions",
		map[string]any{"command": []string{f.App}, "label": "v1.4.2", "note": "fixes respawn"}, &rev))
	assert.Equal(t, "v1.4.2", rev.Label)
	assert.Equal(t, "fixes respawn", rev.Note)
	// A label is one line of text: a terminal escape is refused, nothing made.
	assert.Equal(t, 400, f.CallAs(dana, "POST", base+"/arena/revisions",
		map[string]any{"command": []string{f.App}, "label": "v2\x1b[2J"}, nil))

	events := func(query string) []auditEvent {
		var out struct{ Events []auditEvent }
		require.Equal(t, 200, f.CallAs(dana, "GET", base+"/arena/events?limit=500&"+query, nil, &out))
		return out.Events
	}
	f.Eventually("the reconciler makes the revision active", 30*time.Second, func() bool {
		for _, e := range events("type=transition") {
			if e.Revision == rev.ID && e.To == "active" {
				return true
			}
		}
		return false
	})

	all := events("")
	byType := map[string]auditEvent{}
	for _, e := range all {
		if _, seen := byType[e.Type]; !seen {
			byType[e.Type] = e
		}
		assert.NotEmpty(t, e.Actor, "every new event names its actor: %+v", e)
	}
	assert.Equal(t, "dana", byType["app_created"].Actor)
	assert.Equal(t, "dana", byType["deployed"].Actor)
	assert.Contains(t, byType["deployed"].Message, "label v1.4.2")
	assert.Equal(t, "platform", byType["replica_started"].Actor, "the reconciler started the replica")
	up := byType["app_updated"]
	assert.Equal(t, "dana", up.Actor)
	changed := map[string]string{}
	for _, c := range up.Changes {
		changed[c.Field] = c.Old + " -> " + c.New
	}
	assert.Equal(t, map[string]string{"replicas": "1 -> 2", "strategy": "packed -> spread"}, changed, "only what the PATCH changed, old -> new")
	assert.Equal(t, "app settings changed: replicas, strategy", up.Message)

	// Filters select, over the whole log.
	for _, e := range events("actor=platform") {
		assert.Equal(t, "platform", e.Actor)
	}
	assert.NotEmpty(t, events("actor=platform"))
	mine := events("actor=dana")
	require.Len(t, mine, 3, "created, updated, deployed: %+v", mine)
	only := events("actor=dana&type=app_updated")
	require.Len(t, only, 1)
	assert.Equal(t, "app_updated", only[0].Type)
	assert.Empty(t, events("actor=mallory"))

	// The stream filters too: the first frame it sends is dana's first event.
	stream := streamFirst(t, f, dana, base+"/arena/events/stream?actor=dana&type=deployed")
	assert.Contains(t, stream, `"type":"deployed"`)
	assert.NotContains(t, stream, `"type":"app_created"`)

	// Bad filters are refused with a clear message.
	for _, q := range []string{"type=no_such_type", "actor=" + strings.Repeat("a", 200)} {
		code, body := api(t, f, dana, "GET", "/tenants/studio/apps/arena/events?"+q, "")
		assert.Equal(t, 400, code, q)
		assert.Contains(t, body, "query", q)
	}
	// The filter values are escaped like any query.
	code, _ := api(t, f, dana, "GET", "/tenants/studio/apps/arena/events?actor="+url.QueryEscape("a b"), "")
	assert.Equal(t, 200, code)
}

// streamFirst reads an event stream until its first data line.
func streamFirst(t *testing.T, f *Framework, token, path string) string {
	t.Helper()
	req, err := newRequest("GET", f.APIURL()+path, "", token)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := f.HTTP().Do(req.WithContext(ctx))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			return data
		}
	}
	t.Fatalf("the stream ended before an event: %v", sc.Err())
	return ""
}
