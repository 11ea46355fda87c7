package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/api"
	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
	"github.com/discovery-platform/discovery/tenants"
)

type harness struct {
	t   *testing.T
	srv *api.Server
	cli *clientv3.Client
}

func newHarness(t *testing.T) *harness {
	e := etcdtest.Start(t)
	ts := tenants.NewStore(e.Client, "/t", "discovery-")
	require.NoError(t, ts.Ensure(context.Background(), tenants.Default))
	srv := api.New(api.Config{Apps: &apps.Service{Store: apps.NewStore(e.Client, "/t"), Tenants: ts}, Tenants: ts})
	return &harness{t: t, srv: srv, cli: e.Client}
}

// do sends a request and decodes a JSON answer into out (if non-nil).
func (h *harness) do(method, path, body string, out any) (int, string) {
	h.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.srv.App().Test(req, 10_000)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		require.NoError(h.t, json.Unmarshal(b, out), string(b))
	}
	return resp.StatusCode, string(b)
}

// keys counts every key in etcd: bad input must change nothing.
func (h *harness) keys() int64 {
	resp, err := h.cli.Get(context.Background(), "", clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(h.t, err)
	return resp.Count
}

const base = "/api/v1/tenants/default/apps"

func TestAppLifecycleOverHTTP(t *testing.T) {
	h := newHarness(t)
	var a apps.App
	code, body := h.do("POST", base, `{"name":"arena","port":8080,"health_path":"/healthz","replicas":2,"reconnect_grace":"45s"}`, &a)
	require.Equal(t, http.StatusCreated, code, body)
	assert.Equal(t, "arena", a.Name)
	assert.Contains(t, body, `"reconnect_grace":"45s"`, "durations are Go duration strings")

	var list struct{ Apps []apps.App }
	code, _ = h.do("GET", base, "", &list)
	require.Equal(t, 200, code)
	require.Len(t, list.Apps, 1)

	code, body = h.do("PATCH", base+"/arena", `{"replicas":3}`, &a)
	require.Equal(t, 200, code, body)
	assert.Equal(t, 3, a.Replicas)

	var rev struct {
		ID       string
		State    apps.RevisionState
		Replicas []any
	}
	code, body = h.do("POST", base+"/arena/revisions", `{"command":["/bin/true"],"env":{"MODE":"v1"}}`, &rev)
	require.Equal(t, http.StatusAccepted, code, body)
	assert.Len(t, rev.ID, 8)
	assert.Equal(t, apps.Pending, rev.State)
	assert.Contains(t, body, `"replicas":[]`)

	code, body = h.do("GET", base+"/arena/revisions/"+rev.ID, "", nil)
	require.Equal(t, 200, code, body)
	assert.Contains(t, body, `"state":"pending"`)
	assert.Contains(t, body, `"command":["/bin/true"]`)

	var revs struct{ Revisions []map[string]any }
	code, _ = h.do("GET", base+"/arena/revisions", "", &revs)
	require.Equal(t, 200, code)
	assert.Len(t, revs.Revisions, 1)

	var evs struct{ Events []apps.Event }
	code, _ = h.do("GET", base+"/arena/events", "", &evs)
	require.Equal(t, 200, code)
	require.Len(t, evs.Events, 3) // created, updated, deployed
	assert.Equal(t, apps.EventDeployed, evs.Events[2].Type)

	code, body = h.do("POST", base+"/arena/revisions/"+rev.ID+"/activate", "", nil)
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, body, `"code":"illegal_state"`)

	code, body = h.do("POST", base+"/arena/revisions/"+rev.ID+"/retire", "", nil)
	assert.Equal(t, http.StatusAccepted, code, body)
	assert.Contains(t, body, `"state":"retired"`)

	code, body = h.do("DELETE", base+"/arena", "", nil)
	assert.Equal(t, http.StatusAccepted, code, body)
	assert.Contains(t, body, `"deleting":true`)
}

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	h := newHarness(t)
	code, _ := h.do("POST", base, `{"name":"arena"}`, nil)
	require.Equal(t, http.StatusCreated, code)
	before := h.keys()

	cases := []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", base, `{"name":"arena"}`, 409, "already_exists"},
		{"POST", base, `{"name":"Bad_Name"}`, 400, "invalid"},
		{"POST", base, `{"name":"x","port":0}`, 400, "invalid"},
		{"POST", base, `{"name":"x","replicas":-1}`, 400, "invalid"},
		{"POST", base, `{"name":"x","reconnect_grace":30}`, 400, "bad_request"},
		{"POST", base, `{"name":"x","replicaz":3}`, 400, "bad_request"},
		{"POST", base, `{"name":"x"} {}`, 400, "bad_request"},
		{"POST", base, `not json`, 400, "bad_request"},
		{"POST", base, ``, 400, "bad_request"},
		{"POST", "/api/v1/tenants/nobody/apps", `{"name":"x"}`, 404, "not_found"},
		{"POST", "/api/v1/tenants/Not..Valid/apps", `{"name":"x"}`, 404, "not_found"},
		{"PATCH", base + "/arena", `{"port":99999}`, 400, "invalid"},
		{"PATCH", base + "/arena", `{"name":"renamed"}`, 400, "invalid"},
		{"PATCH", base + "/ghost", `{"replicas":1}`, 404, "not_found"},
		{"GET", base + "/ghost", ``, 404, "not_found"},
		{"DELETE", base + "/ghost", ``, 404, "not_found"},
		{"POST", base + "/arena/revisions", `{}`, 400, "invalid"},
		{"POST", base + "/arena/revisions", `{"command":["x"],"env":{"PORT":"1"}}`, 400, "invalid"},
		{"POST", base + "/ghost/revisions", `{"image":"x"}`, 404, "not_found"},
		{"GET", base + "/arena/revisions/ffffffff", ``, 404, "not_found"},
		{"POST", base + "/arena/revisions/ffffffff/activate", ``, 404, "not_found"},
		{"POST", base + "/arena/revisions/ffffffff/retire", ``, 404, "not_found"},
		{"GET", base + "/arena/events?limit=0", ``, 400, "bad_request"},
		{"GET", base + "/arena/events?limit=abc", ``, 400, "bad_request"},
		{"GET", base + "/arena/revisions/ffffffff/replicas/abc/logs", ``, 404, "not_found"},
		{"GET", "/api/v1/nothing", ``, 404, "not_found"},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path+" "+c.body, func(t *testing.T) {
			var e struct {
				Error struct{ Code, Message string }
			}
			code, body := h.do(c.method, c.path, c.body, &e)
			assert.Equal(t, c.status, code, body)
			assert.Equal(t, c.code, e.Error.Code, body)
			assert.NotEmpty(t, e.Error.Message)
		})
	}
	assert.Equal(t, before, h.keys(), "refused requests wrote nothing")
}

func TestHealthAndMetrics(t *testing.T) {
	h := newHarness(t)
	code, _ := h.do("GET", "/healthz", "", nil)
	assert.Equal(t, 200, code)
	code, _ = h.do("GET", "/readyz", "", nil)
	assert.Equal(t, 200, code)
	code, body := h.do("GET", "/metrics", "", nil)
	assert.Equal(t, 200, code)
	assert.Contains(t, body, "go_goroutines")
}
