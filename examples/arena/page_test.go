package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	discovery "github.com/discovery-platform/discovery/sdk/go"
)

// The embedded SDK is the one sdk/js builds: after `npm run build` there,
// `go generate ./examples/arena` copies it here.
func TestDiscoveryJSIsTheBuiltSDK(t *testing.T) {
	built, err := os.ReadFile("../../sdk/js/dist/index.js")
	require.NoError(t, err)
	if !bytes.Equal(discoveryJS, built) {
		t.Fatal("examples/arena/discovery.js differs from sdk/js/dist/index.js: run `go generate ./examples/arena` and commit it")
	}
}

func TestPageGetsTheSDKAndNoConfigWhenAlone(t *testing.T) {
	a := startArena(t, nil)
	res, err := http.Get(a.base + "discovery.js")
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "text/javascript; charset=utf-8", res.Header.Get("Content-Type"))
	assert.Equal(t, discoveryJS, body)

	assert.Equal(t, pageConfig{}, getPageConfig(t, a.base))

	res, err = http.Get(a.base)
	require.NoError(t, err)
	page, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	assert.Contains(t, string(page), `import(new URL('discovery.js', base)`, "the page plays through the SDK, by a relative URL")
}

func TestPageConfigTellsWhereGetEndpointIs(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name     string
		platform *discovery.Replica
		want     pageConfig
	}{
		{"alone", nil, pageConfig{}},
		{"platform without a public API", &discovery.Replica{Tenant: "acme", App: "arena"}, pageConfig{}},
		{"platform", &discovery.Replica{PublicAPI: "https://api.example.com", Tenant: "acme", App: "arena"},
			pageConfig{API: "https://api.example.com", Tenant: "acme", App: "arena"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
			require.NoError(t, err)
			cfg.platform = tc.platform
			srv := httptest.NewServer(newServer(cfg, log).routes())
			defer srv.Close()
			assert.Equal(t, tc.want, getPageConfig(t, srv.URL+"/"))
		})
	}
}

func getPageConfig(t *testing.T, base string) pageConfig {
	t.Helper()
	res, err := http.Get(base + "config.json")
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	var c pageConfig
	require.NoError(t, json.NewDecoder(res.Body).Decode(&c))
	return c
}
