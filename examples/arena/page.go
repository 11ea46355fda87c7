package main

import (
	_ "embed"
	"encoding/json"
	"net/http"
)

// The page's side of the server: client.html (server.go) plays through the
// JavaScript client SDK, served here as /discovery.js, and learns from
// /config.json where the platform's get-endpoint is.

// discoveryJS is the built SDK, a copy of sdk/js/dist/index.js: go:embed
// cannot reach outside this directory. TestDiscoveryJSIsTheBuiltSDK fails
// when the copy is stale.
//
//go:generate cp ../../sdk/js/dist/index.js discovery.js
//go:embed discovery.js
var discoveryJS []byte

// pageConfig is the body of GET /config.json: what the SDK needs to call
// get-endpoint (sdk/PROTOCOL.md section 1). Empty when the arena does not
// run on the platform, or the platform did not say where clients reach its
// API; the page then dials its own socket only.
type pageConfig struct {
	API    string `json:"api,omitempty"` // $DISCOVERY_PUBLIC_API_URL
	Tenant string `json:"tenant,omitempty"`
	App    string `json:"app,omitempty"`
}

func (s *server) pageRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /discovery.js", handleDiscoveryJS)
	mux.HandleFunc("GET /config.json", s.handlePageConfig)
}

func handleDiscoveryJS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(discoveryJS)
}

func (s *server) handlePageConfig(w http.ResponseWriter, _ *http.Request) {
	var c pageConfig
	if p := s.platform; p != nil && p.PublicAPI != "" {
		c = pageConfig{API: p.PublicAPI, Tenant: p.Tenant, App: p.App}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_ = json.NewEncoder(w).Encode(c)
}
