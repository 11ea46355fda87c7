package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/internal/testkit/kubetest"
	"github.com/discovery-platform/discovery/internal/testkit/platformtest"
	"github.com/discovery-platform/discovery/internal/testkit/proctest"
	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
)

// The framework runs the real platform binary (built once, with -race) as a
// separate process, so a test can SIGKILL it the way an operator's machine
// would; platformtest starts it, the framework tells the user's story.

func TestMain(m *testing.M) {
	code := m.Run()
	kubetest.StopShared()
	platformtest.Cleanup()
	build.Cleanup()
	os.Exit(code)
}

// platformBinary is the platform the framework runs, built with -race.
func platformBinary(t *testing.T) string { return platformtest.Binary(t, "-race") }

// Framework is one platform installation: a data dir and a port, with the
// platform process started, killed and restarted on it (platformtest's
// Platform: DataDir, Addr, Gateway, Marker, Token, Args, Env, Binary, TLS,
// Start, Kill, Stop, Alive, APIURL, HTTP), and the verbs of the user's story.
type Framework struct {
	*platformtest.Platform
	t   *testing.T
	App string // testapp binary
}

// New prepares an installation; Start runs the platform on it.
func New(t *testing.T) *Framework {
	return &Framework{Platform: platformtest.New(t), t: t, App: build.Binary(t)}
}

// Start runs the platform (the -race build unless f.Binary says otherwise)
// and waits until its API answers.
func (f *Framework) Start() {
	f.t.Helper()
	if f.Binary == "" {
		f.Binary = platformBinary(f.t)
	}
	f.Platform.Start()
}

// Eventually polls cond until it holds or the deadline passes.
func (f *Framework) Eventually(what string, within time.Duration, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out after %s waiting for: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// Call does an API request on the default tenant (path is under
// /api/v1/tenants/default) as the admin, and decodes the JSON answer into out.
func (f *Framework) Call(method, path string, body any, out any) int {
	f.t.Helper()
	return f.CallAs(f.Token, method, "/api/v1/tenants/default"+path, body, out)
}

// CallAs does an API request (path from /api/v1 on) with token and decodes
// the JSON answer into out.
func (f *Framework) CallAs(token, method, path string, body any, out any) int {
	f.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(f.t, err)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, f.APIURL()+path, r)
	require.NoError(f.t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := f.HTTP().Do(req)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		require.NoError(f.t, json.Unmarshal(b, out), string(b))
	}
	if resp.StatusCode >= 300 {
		f.t.Logf("%s %s -> %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return resp.StatusCode
}

// Revision is the API's view of a revision.
type Revision struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Reason   string `json:"reason"`
	Replicas []struct {
		ID       string `json:"id"`
		State    string `json:"state"`
		Address  string `json:"address"`
		Stopping bool   `json:"stopping"`
	} `json:"replicas"`
}

// Revisions lists an app's revisions by id.
func (f *Framework) Revisions(app string) map[string]Revision {
	var out struct{ Revisions []Revision }
	if f.Call("GET", "/apps/"+app+"/revisions", nil, &out) != 200 {
		return nil
	}
	m := map[string]Revision{}
	for _, r := range out.Revisions {
		m[r.ID] = r
	}
	return m
}

// Deploy deploys the testapp with env and returns the revision id.
func (f *Framework) Deploy(app string, env map[string]string) string {
	var rev Revision
	require.Equal(f.t, 202, f.Call("POST", "/apps/"+app+"/revisions", map[string]any{"command": []string{f.App}, "env": env}, &rev))
	return rev.ID
}

// WaitState waits for a revision to reach a state.
func (f *Framework) WaitState(app, rev, state string, within time.Duration) Revision {
	f.t.Helper()
	var got Revision
	f.Eventually(fmt.Sprintf("revision %s %s", rev, state), within, func() bool {
		got = f.Revisions(app)[rev]
		return got.State == state
	})
	return got
}

// Running maps the replica ids of a revision to the pids really running.
func (f *Framework) Running(rev string) map[string]int {
	f.t.Helper()
	procs, dup := proctest.Replicas(f.Marker)
	require.Empty(f.t, dup, "a replica id runs twice")
	out := map[string]int{}
	for id, p := range procs {
		if p.Revision == rev {
			out[id] = p.PID
		}
	}
	return out
}

// Endpoint is get-endpoint's answer.
type Endpoint struct {
	Socket   string `json:"socket"`
	Endpoint string `json:"endpoint"`
	URL      string `json:"url"`
	Revision string `json:"revision"`
	Replica  string `json:"replica"`
}

// GetEndpoint calls the public get-endpoint; it returns the status too.
func (f *Framework) GetEndpoint(app string) (Endpoint, int) {
	var ep Endpoint
	resp, err := f.HTTP().Get(f.APIURL() + "/api/v1/tenants/default/apps/" + app + "/endpoint")
	if err != nil {
		return ep, 0
	}
	defer resp.Body.Close()
	if resp.StatusCode == 200 {
		_ = json.NewDecoder(resp.Body).Decode(&ep)
	}
	return ep, resp.StatusCode
}

func newRequest(method, url, body, token string) (*http.Request, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err == nil && token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req, err
}

func do(t *testing.T, req *http.Request) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func doBody(t *testing.T, req *http.Request) string {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
