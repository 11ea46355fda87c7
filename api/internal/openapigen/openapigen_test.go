package openapigen

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/api"
	"github.com/discovery-platform/discovery/apps"
)

// color is a named string with constants: its schema has them as enum.
type color string

const (
	red   color = "red"
	green color = "green"
)

// The generator reads the constants and the unexported field from the
// source; these keep the compiler's view of them in use.
var (
	_ = []color{red, green}
	_ = sample{hidden: ""}
)

type inner struct {
	// Depth is shadowed by the outer field of the same name.
	Depth int    `json:"depth"`
	Kept  string `json:"kept"`
}

// sample is every rule at once. Its Wanted field is written as wanted.
type sample struct {
	inner
	// Wanted is required: no omitempty.
	Wanted   string              `json:"wanted"`
	Optional string              `json:"optional,omitempty"`
	Zero     int                 `json:"zero,omitzero"`
	Skipped  string              `json:"-"`
	hidden   string              // unexported: not written
	Depth    string              `json:"depth"`
	When     time.Time           `json:"when"`
	Grace    apps.Duration       `json:"grace"`
	Bytes    []byte              `json:"bytes"`
	Tags     []string            `json:"tags"`
	Labels   map[string]int64    `json:"labels"`
	Ptr      *inner              `json:"ptr"`
	OptPtr   *bool               `json:"opt_ptr,omitempty"`
	Color    color               `json:"color"`
	Any      any                 `json:"any"`
	Quoted   int                 `json:"quoted,string"`
	Untagged float64             // written under its Go name
	Nested   struct{ A int }     `json:"nested"`
	Children []sample            `json:"children,omitempty"`
	Set      map[string]struct{} `json:"set,omitempty"`
}

func testSource(t *testing.T) *source {
	t.Helper()
	src, err := newSource(".")
	require.NoError(t, err)
	return src
}

// roundTrip is a schema as the document writes it.
func roundTrip(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

func TestSchemaFollowsEncodingJSON(t *testing.T) {
	s := newSchemas(testSource(t))
	ref, err := s.of(reflect.TypeFor[sample]())
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"$ref": "#/components/schemas/Sample"}, ref, "a named struct is a component named after its type")
	sch := roundTrip(t, s.comps["Sample"])
	props := sch["properties"].(map[string]any)

	// The properties are exactly what encoding/json writes.
	var written map[string]any
	b, err := json.Marshal(sample{})
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &written))
	var keys, want []string
	for k := range props {
		keys = append(keys, k)
	}
	for k := range written {
		want = append(want, k)
	}
	// Omitted from a zero value, documented all the same.
	want = append(want, "optional", "zero", "opt_ptr", "children", "set")
	assert.ElementsMatch(t, want, keys)

	assert.Equal(t, "Sample is every rule at once. Its wanted field is written as wanted.", sch["description"],
		"the type's comment, its Go name the component's and its fields' names the JSON ones")
	assert.Equal(t, []any{"kept", "wanted", "depth", "when", "grace", "bytes", "tags", "labels", "color", "any", "quoted", "Untagged", "nested"},
		sch["required"], "in field order; omitempty, omitzero and pointers are not required")

	cases := map[string]any{
		"depth":    map[string]any{"type": "string"}, // the outer field hides the embedded one
		"kept":     map[string]any{"type": "string"}, // promoted from the embedded struct
		"wanted":   map[string]any{"type": "string", "description": "wanted is required: no omitempty."},
		"when":     map[string]any{"type": "string", "format": "date-time"},
		"grace":    map[string]any{"type": "string", "pattern": durationPattern, "example": "30s", "description": `a Go duration, e.g. "30s" or "1m30s"`},
		"bytes":    map[string]any{"type": "string", "format": "byte"},
		"tags":     map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
		"labels":   map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "integer", "format": "int64"}},
		"ptr":      map[string]any{"allOf": []any{map[string]any{"$ref": "#/components/schemas/Inner"}}, "nullable": true},
		"opt_ptr":  map[string]any{"type": "boolean"},
		"color":    map[string]any{"type": "string", "enum": []any{"red", "green"}},
		"any":      map[string]any{},
		"quoted":   map[string]any{"type": "string"},
		"Untagged": map[string]any{"type": "number", "format": "double", "description": "written under its Go name"}, // a line comment
		"nested": map[string]any{"type": "object", "required": []any{"A"},
			"properties": map[string]any{"A": map[string]any{"type": "integer", "format": "int64"}}},
		"children": map[string]any{"type": "array", "items": map[string]any{"$ref": "#/components/schemas/Sample"}},
	}
	for name, want := range cases {
		assert.Equal(t, want, props[name], name)
	}
	assert.Contains(t, s.comps, "Inner")
}

type marshals struct{}

func (marshals) MarshalJSON() ([]byte, error) { return []byte(`1`), nil }

func TestSchemaRefusesWhatItCannotKnow(t *testing.T) {
	s := newSchemas(testSource(t))
	_, err := s.of(reflect.TypeFor[marshals]())
	assert.ErrorContains(t, err, "writes its own JSON")
	_, err = s.of(reflect.TypeFor[chan int]())
	assert.Error(t, err)
	_, err = s.of(reflect.TypeFor[map[struct{ A int }]int]())
	assert.Error(t, err)

	// Two types of one name would be one component.
	type sample struct{ B int }
	_, err = s.of(reflect.TypeFor[sample]())
	require.NoError(t, err)
	_, err = s.of(reflect.TypeFor[struct{ S []sampleAlias }]())
	assert.ErrorContains(t, err, "two types would be component Sample")
}

type sampleAlias = sample

func TestOpenAPIPath(t *testing.T) {
	img := []api.Param{{Name: "image", In: "path"}}
	cases := []struct {
		fiber  string
		params []api.Param
		want   string
		names  []string
		err    string
	}{
		{"/healthz", nil, "/healthz", nil, ""},
		{"/api/v1/tenants/:tenant/apps/:app", nil, "/api/v1/tenants/{tenant}/apps/{app}", []string{"tenant", "app"}, ""},
		{"/api/v1/images/+", img, "/api/v1/images/{image}", []string{"image"}, ""},
		{"/a/:x/+", img, "/a/{x}/{image}", []string{"x", "image"}, ""},
		{"/api/v1/images/+", nil, "", nil, "needs one path parameter"},
		{"/a/:x?", nil, "", nil, "only plain :name"},
		{"/a/b*", nil, "", nil, "not supported"},
	}
	for _, c := range cases {
		got, names, err := openapiPath(c.fiber, c.params)
		if c.err != "" {
			assert.ErrorContains(t, err, c.err, c.fiber)
			continue
		}
		require.NoError(t, err, c.fiber)
		assert.Equal(t, c.want, got, c.fiber)
		assert.Equal(t, c.names, names, c.fiber)
	}
}

func TestAccessRules(t *testing.T) {
	cases := []struct {
		access    api.Access
		hasTenant bool
		rule      string
		sentence  string
	}{
		{api.Access{Kind: api.Public}, true, "public", "Public"},
		{api.Access{Kind: api.Authenticated}, false, "authenticated", "valid token"},
		{api.Access{Kind: api.Checked, Object: "revisions", Action: "write"}, true, "revisions:write in the route's tenant", "Needs revisions:write in the route's tenant"},
		{api.Access{Kind: api.Checked, Object: "tenants", Action: "write"}, false, "tenants:write on the platform", "a platform admin"},
		{api.Access{Kind: api.Checked, Object: "tokens", Action: "write", BodyTenant: true}, false, "tokens:write in the body's tenant", `body's "tenant" field`},
		{api.Access{Kind: api.Checked, Object: "leases", Action: "write", Capability: true}, true, "leases:write in the route's tenant, or the revision's lease capability", "X-Discovery-Lease-Token"},
	}
	for _, c := range cases {
		rule, sentence, err := access(c.access, c.hasTenant)
		require.NoError(t, err)
		assert.Equal(t, c.rule, rule)
		assert.Contains(t, sentence, c.sentence)
	}
	_, _, err := access(api.Access{Kind: api.Checked}, true)
	assert.Error(t, err, "a checked route names its permission")
}

func TestErrorStatusesAddTheMiddlewares(t *testing.T) {
	cases := []struct {
		route     api.Route
		hasTenant bool
		want      []int
	}{
		{api.Route{Method: "GET", Access: api.Access{Kind: api.Public}, Doc: api.Doc{Errors: []int{404}}}, true, []int{404}},
		{api.Route{Method: "GET", Access: api.Access{Kind: api.Authenticated}}, false, []int{401}},
		{api.Route{Method: "GET", Access: api.Access{Kind: api.Checked, Object: "apps", Action: "read"}, Doc: api.Doc{Errors: []int{404, 404}}}, true, []int{401, 403, 404}},
		{api.Route{Method: "POST", Access: api.Access{Kind: api.Checked, Object: "apps", Action: "write"}, Doc: api.Doc{Request: struct{}{}}}, true, []int{400, 401, 403, 413, 429, 503}},
		{api.Route{Method: "DELETE", Access: api.Access{Kind: api.Checked, Object: "tokens", Action: "write"}}, false, []int{401, 403, 503}},
		{api.Route{Method: "PUT", Access: api.Access{Kind: api.Public}, Doc: api.Doc{Request: struct{}{}}}, false, []int{400, 413}},
	}
	for _, c := range cases {
		got, err := errorStatuses(c.route, c.hasTenant)
		require.NoError(t, err)
		assert.Equal(t, c.want, got, "%+v", c.route)
	}
	_, err := errorStatuses(api.Route{Doc: api.Doc{Errors: []int{200}}}, false)
	assert.Error(t, err)
}

func TestGenerateRefusesAnUndocumentedRoute(t *testing.T) {
	shared := api.DocShared{Title: "t", Version: "v", PathParams: map[string]string{"tenant": "tenant name"}, ErrorBody: struct {
		Error string `json:"error"`
	}{}}
	ok := api.Doc{Summary: "s"}
	cases := map[string]api.Route{
		"no Doc.Summary":          {Method: "GET", Path: "/a"},
		"has no description":      {Method: "GET", Path: "/a/:nobody", Doc: ok},
		"is not in the path":      {Method: "GET", Path: "/a", Doc: api.Doc{Summary: "s", Params: []api.Param{{Name: "x", In: "path"}}}},
		"unknown field":           {Method: "POST", Path: "/a", Doc: api.Doc{Summary: "s", Request: struct{ A int }{}, RequestExample: `{"b":1}`}},
		"needs its ContentType":   {Method: "GET", Path: "/a", Doc: api.Doc{Summary: "s", Response: ""}},
		"is not 2xx":              {Method: "GET", Path: "/a", Doc: api.Doc{Summary: "s", Status: 404}},
		"not path, query or head": {Method: "GET", Path: "/a", Doc: api.Doc{Summary: "s", Params: []api.Param{{Name: "x", In: "cookie"}}}},
	}
	for want, r := range cases {
		_, err := generate([]api.Route{r}, shared, testSource(t))
		assert.ErrorContains(t, err, want)
	}
	_, err := generate([]api.Route{{Method: "GET", Path: "/a/:tenant", Doc: ok}, {Method: "GET", Path: "/a/:tenant", Doc: ok}}, shared, testSource(t))
	assert.ErrorContains(t, err, "listed twice")

	// What passes is deterministic.
	routes := []api.Route{{Method: "GET", Path: "/a/:tenant", Doc: api.Doc{Summary: "s", Response: sample{}}},
		{Method: "POST", Path: "/a/:tenant", Access: api.Access{Kind: api.Checked, Object: "a", Action: "write"},
			Doc: api.Doc{Summary: "s", Request: inner{}, RequestExample: `{"kept":"x"}`, Status: 201}}}
	first, err := generate(routes, shared, testSource(t))
	require.NoError(t, err)
	for range 3 {
		again, err := generate(routes, shared, testSource(t))
		require.NoError(t, err)
		require.Equal(t, string(first), string(again))
	}
	assert.True(t, strings.HasPrefix(string(first), "{\n  \"openapi\": \"3.0.3\",\n  \"info\": {\n    \"x-generated-by\": "), string(first[:120]))
}
