package api_test

import (
	"net/http"
	"testing"
)

// FuzzRequestDecoding throws arbitrary bodies at the create/update/deploy and
// tenant routes: nothing may panic, and every refusal must be a 4xx with the
// JSON error body. `go test` runs the seeds; `make fuzz` runs a bounded search.
func FuzzRequestDecoding(f *testing.F) {
	for _, seed := range []string{
		`{"name":"arena","port":8080,"health_path":"/healthz","replicas":2,"reconnect_grace":"30s"}`,
		`{"name":"x","replicas":-1}`, `{"name":"X"}`, `{"port":70000}`, `{"reconnect_grace":30}`,
		`{"command":["/bin/true"],"env":{"A":"b"}}`, `{"image":"example/arena:1"}`, `{"command":[""]}`,
		`{"command":["x"],"resources":{"cpu_millis":-5}}`, `{"env":{"PORT":"1"},"command":["x"]}`,
		`{"name":"acme","quota":{"max_apps":1,"max_replicas":1,"max_revisions":1}}`, `{"quota":{"max_revisions":0}}`,
		`null`, `[]`, `"str"`, `{}`, `{"name":` + "\"\xff\xfe\"}", `{"name":"a"}{"name":"b"}`, ``,
	} {
		f.Add(seed)
	}
	w := newAuthWorld(f)
	admin := w.tokens["admin"]
	routes := [][2]string{
		{"POST", "/api/v1/tenants/a/apps"},
		{"PATCH", "/api/v1/tenants/a/apps/app1"},
		{"POST", "/api/v1/tenants/a/apps/app1/revisions"},
		{"POST", "/api/v1/tenants"},
		{"PUT", "/api/v1/tenants/a/quota"},
		{"PUT", "/api/v1/tenants/a/members/fuzz"},
		{"POST", "/api/v1/tokens"},
	}
	f.Fuzz(func(t *testing.T, body string) {
		w.t = t
		for _, r := range routes {
			code, resp := w.call(w.inst, r[0], r[1], body, admin)
			if code >= 500 {
				t.Fatalf("%s %s with %q: %d %s", r[0], r[1], body, code, resp)
			}
			if code >= 400 && (code >= http.StatusInternalServerError || len(resp) == 0 || resp[0] != '{') {
				t.Fatalf("%s %s with %q: refusal without a JSON error: %d %q", r[0], r[1], body, code, resp)
			}
		}
	})
}
