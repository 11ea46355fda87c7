package main

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	discovery "github.com/discovery-platform/discovery/sdk/go"
)

func TestParseConfig(t *testing.T) {
	defaults := config{host: "127.0.0.1", port: "8080", rules: rules{size: 16, hp: 1, respawn: true, respawnDelay: 5 * time.Second, reconnectWindow: time.Minute}}
	platformEnv := map[string]string{
		"DISCOVERY_API": "http://127.0.0.1:4000", "DISCOVERY_LEASE_TOKEN": "cap", "DISCOVERY_TENANT": "acme",
		"DISCOVERY_APP": "arena", "DISCOVERY_REVISION": "9d00cc18", "DISCOVERY_REPLICA": "r-1",
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(c *config)
		wantErr string
	}{
		{name: "defaults"},
		{name: "environment", env: map[string]string{
			"HOST": "127.42.0.7", "PORT": "18123", "ARENA_SIZE": "8", "ARENA_HP": "3", "RESPAWN": "false", "RESPAWN_DELAY": "250ms",
			"RECONNECT_WINDOW": "2m", "DISCOVERY_REVISION": "9d00cc18", "DISCOVERY_REPLICA": "r-1",
		}, want: func(c *config) {
			*c = config{host: "127.42.0.7", port: "18123", revision: "9d00cc18", replica: "r-1",
				rules: rules{size: 8, hp: 3, respawn: false, respawnDelay: 250 * time.Millisecond, reconnectWindow: 2 * time.Minute}}
		}},
		{name: "flag beats environment", args: []string{"-respawn=false", "-size", "4"},
			env:  map[string]string{"RESPAWN": "true", "ARENA_SIZE": "32"},
			want: func(c *config) { c.rules.respawn = false; c.rules.size = 4 }},
		{name: "bad boolean", env: map[string]string{"RESPAWN": "maybe"}, wantErr: "RESPAWN"},
		{name: "bad duration", env: map[string]string{"RESPAWN_DELAY": "5"}, wantErr: "RESPAWN_DELAY"},
		{name: "bad size", env: map[string]string{"ARENA_SIZE": "0"}, wantErr: "size"},
		{name: "bad hp", args: []string{"-hp", "0"}, wantErr: "hp"},
		{name: "on the platform", env: merge(platformEnv, map[string]string{"HANDOFF": "true"}), want: func(c *config) {
			c.revision, c.replica, c.handoff = "9d00cc18", "r-1", true
			c.platform = &discovery.Replica{API: "http://127.0.0.1:4000", LeaseToken: "cap", Tenant: "acme", App: "arena", Revision: "9d00cc18", Name: "r-1"}
		}},
		{name: "handoff off the platform", args: []string{"-handoff"}, wantErr: "handoff: discovery: environment incomplete: DISCOVERY_API, DISCOVERY_LEASE_TOKEN"},
		{name: "malformed platform URL", env: merge(platformEnv, map[string]string{"DISCOVERY_API": "api:4000"}), wantErr: "DISCOVERY_API"},
		{name: "bad port", env: map[string]string{"PORT": "http"}, wantErr: "port"},
		{name: "negative delay", args: []string{"-respawn-delay=-1s"}, wantErr: "negative"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			want := defaults
			if tt.want != nil {
				tt.want(&want)
			}
			assert.Equal(t, want, got)
		})
	}
}
