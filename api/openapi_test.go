package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/api"
	"github.com/discovery-platform/discovery/api/internal/openapigen"
)

// served is the document the API serves (the embedded openapi.json).
func served(t *testing.T) []byte {
	t.Helper()
	resp, err := api.New(api.Config{}).App().Test(httptest.NewRequest("GET", "/api/v1/openapi.json", nil), 10_000)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return b
}

func TestOpenAPIIsGenerated(t *testing.T) {
	want, err := openapigen.Generate()
	require.NoError(t, err)
	for what, got := range map[string][]byte{"api/openapi.json": must(os.ReadFile("openapi.json")), "the served document": served(t)} {
		if !bytes.Equal(got, want) {
			g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
			i := 0
			for i < len(g) && i < len(w) && g[i] == w[i] {
				i++
			}
			t.Errorf("%s is not what the route table generates: run go generate ./api/\nline %d is\n\t%s\nthe generator writes\n\t%s",
				what, i+1, line(g, i), line(w, i))
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func line(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "(end of file)"
}

type document struct {
	OpenAPI string                    `json:"openapi"`
	Info    map[string]any            `json:"info"`
	Paths   map[string]map[string]any `json:"paths"`
}

// declaredPathParams are the path parameters a path item declares, for
// itself or for one of its operations.
func declaredPathParams(item map[string]any, method string) map[string]bool {
	out := map[string]bool{}
	lists := []any{item["parameters"]}
	if op, ok := item[method].(map[string]any); ok {
		lists = append(lists, op["parameters"])
	}
	for _, l := range lists {
		ps, _ := l.([]any)
		for _, p := range ps {
			p := p.(map[string]any)
			if p["in"] == "path" && p["required"] == true {
				out[p["name"].(string)] = true
			}
		}
	}
	return out
}

// TestOpenAPIDocumentsEveryRoute holds the document to what the server
// serves: every route fiber has, with each of its path parameters declared.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	var doc document
	require.NoError(t, json.Unmarshal(served(t), &doc))
	srv := api.New(api.Config{})
	documented := 0
	for _, r := range srv.App().GetRoutes(true) {
		if r.Method == "HEAD" {
			continue
		}
		p := r.Path
		for _, param := range r.Params {
			p = strings.Replace(p, ":"+param, "{"+param+"}", 1)
		}
		p = strings.Replace(p, "/images/+", "/images/{image}", 1)
		params := slices.Clone(r.Params)
		if i := slices.Index(params, "+1"); i >= 0 {
			params[i] = "image"
		}
		m := strings.ToLower(r.Method)
		item, ok := doc.Paths[p]
		if !assert.True(t, ok, "route %s %s missing from openapi.json", r.Method, p) {
			continue
		}
		if _, ok = item[m]; !assert.True(t, ok, "method %s of %s missing from openapi.json", r.Method, p) {
			continue
		}
		declared := declaredPathParams(item, m)
		for _, param := range params {
			assert.True(t, declared[param], "%s %s: path parameter %s is not declared", r.Method, p, param)
		}
		documented++
	}
	assert.Equal(t, len(srv.Routes()), documented, "every route of the table, and no other, is served and documented")
}

// TestOpenAPIShape checks the document is OpenAPI 3.0.3 in shape: what a
// client generator relies on is there, and every reference resolves.
func TestOpenAPIShape(t *testing.T) {
	b := served(t)
	assert.True(t, bytes.HasPrefix(b, []byte("{\n  \"openapi\": \"3.0.3\",\n  \"info\": {\n    \"x-generated-by\": ")),
		"the document starts by saying it is generated")
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	info := doc["info"].(map[string]any)
	assert.Equal(t, openapigen.GeneratedBy, info["x-generated-by"])
	assert.NotEmpty(t, info["title"])
	assert.NotEmpty(t, info["version"])
	comps := doc["components"].(map[string]any)
	schemes := comps["securitySchemes"].(map[string]any)

	// Every $ref points into the document.
	var refs func(v any)
	refs = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				var at any = doc
				for _, key := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
					m, _ := at.(map[string]any)
					at = m[key]
				}
				assert.NotNil(t, at, "$ref %s resolves to nothing", ref)
			}
			for _, e := range v {
				refs(e)
			}
		case []any:
			for _, e := range v {
				refs(e)
			}
		}
	}
	refs(doc)

	security := func(where string, reqs any) {
		for _, req := range reqs.([]any) {
			for name := range req.(map[string]any) {
				assert.Contains(t, schemes, name, "%s: security scheme %s", where, name)
			}
		}
	}
	security("document", doc["security"])

	methods := []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}
	template := regexp.MustCompile(`\{([^}/]+)\}`)
	status := regexp.MustCompile(`^[1-5][0-9][0-9]$`)
	paths := doc["paths"].(map[string]any)
	require.NotEmpty(t, paths)
	for p, v := range paths {
		assert.True(t, strings.HasPrefix(p, "/"), p)
		item := v.(map[string]any)
		var inPath []string
		for _, m := range template.FindAllStringSubmatch(p, -1) {
			inPath = append(inPath, m[1])
		}
		for method, v := range item {
			if method == "parameters" {
				continue
			}
			where := strings.ToUpper(method) + " " + p
			require.Contains(t, methods, method, where)
			op := v.(map[string]any)
			assert.NotEmpty(t, op["summary"], where)
			assert.NotEmpty(t, op["x-discovery-access"], where)
			declared := declaredPathParams(item, method)
			for _, n := range inPath {
				assert.True(t, declared[n], "%s: {%s} is not declared as a required path parameter", where, n)
			}
			assert.Len(t, declared, len(inPath), "%s: a declared path parameter is not in the path", where)
			params, _ := op["parameters"].([]any)
			params = append(params, asSlice(item["parameters"])...)
			for _, v := range params {
				prm := v.(map[string]any)
				assert.NotEmpty(t, prm["name"], where)
				assert.Contains(t, []any{"query", "header", "path", "cookie"}, prm["in"], where)
				assert.Contains(t, prm, "schema", where)
			}
			if rb, ok := op["requestBody"].(map[string]any); ok {
				assert.NotEmpty(t, rb["content"], where)
			}
			responses := op["responses"].(map[string]any)
			require.NotEmpty(t, responses, where)
			for code, v := range responses {
				assert.Regexp(t, status, code, where)
				resp := v.(map[string]any)
				if _, ref := resp["$ref"]; !ref {
					assert.NotEmpty(t, resp["description"], "%s %s", where, code)
				}
			}
			if sec, ok := op["security"]; ok {
				security(where, sec)
			}
		}
	}
	for name, v := range comps["responses"].(map[string]any) {
		assert.NotEmpty(t, v.(map[string]any)["description"], name)
	}
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// TestDocumentedAnswersDecode holds the types the route table documents to
// what the handlers send: each JSON answer of a GET decodes into its
// documented type, strictly (a field the type lacks fails).
func TestDocumentedAnswersDecode(t *testing.T) {
	h := newHarness(t)
	code, body := h.do("POST", base, `{"name":"arena"}`, nil)
	require.Equal(t, 201, code, body)
	var rev struct{ ID string }
	code, body = h.do("POST", base+"/arena/revisions", `{"command":["/bin/true"]}`, &rev)
	require.Equal(t, 202, code, body)
	fill := strings.NewReplacer(":tenant", "default", ":app", "arena", ":rev", rev.ID)
	checked := 0
	for _, r := range h.srv.Routes() {
		if r.Method != "GET" || r.Doc.Response == nil || r.Doc.ContentType != "" {
			continue
		}
		path := fill.Replace(r.Path)
		if strings.ContainsAny(path, ":+") {
			continue
		}
		code, body := h.do("GET", path+"?app_name=arena", "", nil)
		if want := max(r.Doc.Status, 200); code != want {
			t.Logf("GET %s answers %d here, not %d: not checked", path, code, want)
			continue
		}
		dec := json.NewDecoder(strings.NewReader(body))
		dec.DisallowUnknownFields()
		v := reflect.New(reflect.TypeOf(r.Doc.Response)).Interface()
		assert.NoError(t, dec.Decode(v), "GET %s answers what its documented type %T lacks: %s", path, r.Doc.Response, body)
		checked++
	}
	assert.GreaterOrEqual(t, checked, 12)
}
