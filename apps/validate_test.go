package apps

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func ptr[T any](v T) *T { return &v }

func TestNewAppDefaultsAndLimits(t *testing.T) {
	now := time.Now()
	a, err := NewApp("default", AppSpec{Name: "arena"}, now)
	require.NoError(t, err)
	assert.Equal(t, DefaultPort, a.Port)
	assert.Equal(t, DefaultReplicas, a.Replicas)
	assert.Equal(t, DefaultReconnectGrace, a.ReconnectGrace.D())

	paths, err := NewApp("default", AppSpec{Name: "arena", ClientPath: ptr("/ws"), DrainHook: ptr("/discovery/drain"), HandoffPath: ptr("/discovery/handoff")}, now)
	require.NoError(t, err)
	assert.Equal(t, []string{"/ws", "/discovery/drain", "/discovery/handoff"}, []string{paths.ClientPath, paths.DrainHook, paths.HandoffPath})

	bad := []struct {
		name string
		spec AppSpec
		want string
	}{
		{"empty name", AppSpec{}, "name is required"},
		{"upper case", AppSpec{Name: "Arena"}, "DNS-1123"},
		{"leading dash", AppSpec{Name: "-arena"}, "DNS-1123"},
		{"too long", AppSpec{Name: strings.Repeat("a", 64)}, "DNS-1123"},
		{"dot", AppSpec{Name: "a.b"}, "DNS-1123"},
		{"port zero", AppSpec{Name: "a", Port: ptr(0)}, "port"},
		{"port high", AppSpec{Name: "a", Port: ptr(70000)}, "port"},
		{"replicas negative", AppSpec{Name: "a", Replicas: ptr(-1)}, "replicas"},
		{"replicas huge", AppSpec{Name: "a", Replicas: ptr(MaxReplicas + 1)}, "replicas"},
		{"health path relative", AppSpec{Name: "a", HealthPath: ptr("healthz")}, "health_path"},
		{"client path relative", AppSpec{Name: "a", ClientPath: ptr("ws")}, "client_path"},
		{"client path query", AppSpec{Name: "a", ClientPath: ptr("/ws?x=1")}, "client_path"},
		{"client path dot segment", AppSpec{Name: "a", ClientPath: ptr("/a/../admin")}, "client_path"},
		{"client path escape", AppSpec{Name: "a", ClientPath: ptr("/%2e%2e/x")}, "client_path"},
		{"drain hook control char", AppSpec{Name: "a", DrainHook: ptr("/drain\x00")}, "drain_hook"},
		{"drain hook long", AppSpec{Name: "a", DrainHook: ptr("/" + strings.Repeat("d", MaxHealthPathLen))}, "drain_hook"},
		{"handoff path space", AppSpec{Name: "a", HandoffPath: ptr("/hand off")}, "handoff_path"},
		{"negative grace", AppSpec{Name: "a", ReconnectGrace: ptr(Duration(-time.Second))}, "reconnect_grace"},
		{"grace too long", AppSpec{Name: "a", ShutdownGrace: ptr(Duration(48 * time.Hour))}, "shutdown_grace"},
		{"start timeout tiny", AppSpec{Name: "a", StartTimeout: ptr(Duration(time.Millisecond))}, "start_timeout"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewApp("default", c.spec, now)
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrInvalid))
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

func TestApplyLeavesAppUnchangedOnError(t *testing.T) {
	a, err := NewApp("default", AppSpec{Name: "arena"}, time.Now())
	require.NoError(t, err)
	before := a
	require.Error(t, a.Apply(AppSpec{Replicas: ptr(3), Port: ptr(0)}, time.Now()))
	assert.Equal(t, before, a)
	require.Error(t, a.Apply(AppSpec{Name: "other"}, time.Now()))
	require.NoError(t, a.Apply(AppSpec{Replicas: ptr(3)}, time.Now()))
	assert.Equal(t, 3, a.Replicas)
}

func TestRevisionSpecValidate(t *testing.T) {
	ok := []RevisionSpec{
		{Image: "example/arena:1"},
		{Command: []string{"/bin/arena", "--respawn=false"}},
		{Command: []string{"x"}, Env: map[string]string{"MODE": "v2"}},
	}
	for _, s := range ok {
		assert.NoError(t, s.Validate())
	}
	bad := []struct {
		spec RevisionSpec
		want string
	}{
		{RevisionSpec{}, "image or a command"},
		{RevisionSpec{Command: []string{""}}, "command[0]"},
		{RevisionSpec{Image: "a b"}, "image"},
		{RevisionSpec{Command: []string{"x"}, Env: map[string]string{"PORT": "1"}}, "reserved"},
		{RevisionSpec{Command: []string{"x"}, Env: map[string]string{"DISCOVERY_REPLICA": "1"}}, "reserved"},
		{RevisionSpec{Command: []string{"x"}, Env: map[string]string{"HOST": "0.0.0.0"}}, "reserved"},
		{RevisionSpec{Command: []string{"x"}, Env: map[string]string{"POD_IP": "1.2.3.4"}}, "reserved"},
		{RevisionSpec{Command: []string{"x"}, Env: map[string]string{"1BAD": "1"}}, "env name"},
		{RevisionSpec{Command: make([]string, MaxCommandArgs+1)}, "arguments"},
		{RevisionSpec{Command: []string{"x", "a\x00b"}}, "NUL"},
	}
	for _, c := range bad {
		err := c.spec.Validate()
		require.Error(t, err)
		assert.True(t, errors.Is(err, ErrInvalid))
		assert.Contains(t, err.Error(), c.want)
	}
}

func TestDurationJSON(t *testing.T) {
	var v struct{ D Duration }
	require.NoError(t, json.Unmarshal([]byte(`{"D":"1m30s"}`), &v))
	assert.Equal(t, 90*time.Second, v.D.D())
	b, err := json.Marshal(v)
	require.NoError(t, err)
	assert.JSONEq(t, `{"D":"1m30s"}`, string(b))
	assert.Error(t, json.Unmarshal([]byte(`{"D":30}`), &v))
	assert.Error(t, json.Unmarshal([]byte(`{"D":"thirty"}`), &v))
}
