package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAFailedDeployShowsWhyWherePeopleLook: a revision whose replicas crash
// fails; its record keeps the end of what the last one printed after the
// replicas are gone, and the apps list flags the app's last deploy as
// failed while the previous revision keeps serving.
func TestAFailedDeployShowsWhyWherePeopleLook(t *testing.T) {
	f := New(t)
	f.Start()
	require.Equal(t, 201, f.Call("POST", "/apps", map[string]any{"name": "shaky", "replicas": 1, "start_timeout": "30s"}, nil))
	v1 := f.Deploy("shaky", nil)
	f.WaitState("shaky", v1, "active", 60*time.Second)

	var v2 struct{ ID string }
	require.Equal(t, 202, f.Call("POST", "/apps/shaky/revisions", map[string]any{
		"command": []string{"/bin/sh", "-c", "echo starting; echo 'boom: no config' >&2; exit 3"}, "label": "v2-broken"}, &v2))
	f.WaitState("shaky", v2.ID, "failed", 60*time.Second)

	var rev struct {
		State      string `json:"state"`
		LastOutput string `json:"last_output"`
		Replicas   []any  `json:"replicas"`
	}
	f.Eventually("the failed revision's replicas gone", 30*time.Second, func() bool {
		return f.Call("GET", "/apps/shaky/revisions/"+v2.ID, nil, &rev) == 200 && len(rev.Replicas) == 0
	})
	assert.Contains(t, rev.LastOutput, "boom: no config", "kept after its replicas are gone")
	assert.LessOrEqual(t, len(rev.LastOutput), 1024)

	var list struct {
		Apps []struct {
			Name       string `json:"name"`
			LastDeploy *struct {
				Revision string `json:"revision"`
				State    string `json:"state"`
				Label    string `json:"label"`
				Failed   bool   `json:"failed"`
			} `json:"last_deploy"`
		} `json:"apps"`
	}
	require.Equal(t, 200, f.Call("GET", "/apps", nil, &list))
	require.Len(t, list.Apps, 1)
	d := list.Apps[0].LastDeploy
	require.NotNil(t, d)
	assert.Equal(t, v2.ID, d.Revision)
	assert.True(t, d.Failed)
	assert.Equal(t, "v2-broken", d.Label)
	assert.Equal(t, "active", f.Revisions("shaky")[v1].State, "the previous revision keeps serving")
}
