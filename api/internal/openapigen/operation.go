package openapigen

// One route's operation: its path, parameters, bodies, answers and access
// rule.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/discovery-platform/discovery/api"
)

// operation documents one route: its OpenAPI path, the path's parameters
// and the operation.
func (g *gen) operation(r api.Route) (string, []any, map[string]any, error) {
	d := r.Doc
	if d.Summary == "" {
		return "", nil, nil, fmt.Errorf("no Doc.Summary: every route is documented")
	}
	p, names, err := openapiPath(r.Path, d.Params)
	if err != nil {
		return "", nil, nil, err
	}
	pathParams, err := g.pathParams(names, d.Params)
	if err != nil {
		return "", nil, nil, err
	}
	hasTenant := slices.Contains(names, "tenant")

	op := map[string]any{"summary": d.Summary}
	rule, who, err := access(r.Access, hasTenant)
	if err != nil {
		return "", nil, nil, err
	}
	op["x-discovery-access"] = rule
	op["description"] = strings.TrimSpace(d.Description + "\n\n" + who)
	params, err := g.otherParams(names, d.Params)
	if err != nil {
		return "", nil, nil, err
	}
	if len(params) > 0 {
		op["parameters"] = params
	}
	if body, err := g.requestBody(d); err != nil {
		return "", nil, nil, err
	} else if body != nil {
		op["requestBody"] = body
	}
	if op["responses"], err = g.responses(r, hasTenant); err != nil {
		return "", nil, nil, err
	}
	switch {
	case r.Access.Kind == api.Public:
		op["security"] = []any{}
	case r.Access.Capability:
		g.lease = true
		op["security"] = []any{map[string]any{"bearer": []any{}}, map[string]any{"leaseCapability": []any{}}}
	}
	return p, pathParams, op, nil
}

// pathParams documents the path's parameters (names, in path order), each
// described by the route's Doc or the shared descriptions.
func (g *gen) pathParams(names []string, params []api.Param) ([]any, error) {
	var out []any
	for _, n := range names {
		desc := g.shared.PathParams[n]
		for _, rp := range params {
			if rp.In == "path" && rp.Name == n {
				desc = rp.Description
			}
		}
		if desc == "" {
			return nil, fmt.Errorf("path parameter %s has no description (Doc.Params or SharedDoc)", n)
		}
		out = append(out, map[string]any{"name": n, "in": "path", "required": true,
			"description": desc, "schema": map[string]any{"type": "string"}})
	}
	return out, nil
}

// otherParams documents the query and header parameters, and checks that
// each path parameter named in the Doc is in the path.
func (g *gen) otherParams(names []string, params []api.Param) ([]any, error) {
	var out []any
	for _, rp := range params {
		switch rp.In {
		case "path":
			if !slices.Contains(names, rp.Name) {
				return nil, fmt.Errorf("path parameter %s is not in the path", rp.Name)
			}
			continue
		case "query", "header":
		default:
			return nil, fmt.Errorf("parameter %s: In %q is not path, query or header", rp.Name, rp.In)
		}
		prm, err := g.param(rp)
		if err != nil {
			return nil, err
		}
		out = append(out, prm)
	}
	return out, nil
}

// requestBody documents the JSON body, nil when the route takes none.
func (g *gen) requestBody(d api.Doc) (map[string]any, error) {
	if d.Request == nil {
		if d.RequestExample != "" {
			return nil, fmt.Errorf("a RequestExample without a Request")
		}
		return nil, nil
	}
	if d.RequestType != "" {
		if reflect.TypeOf(d.Request).Kind() != reflect.String || d.RequestExample != "" {
			return nil, fmt.Errorf("a raw request body (RequestType) is a string Request with no example")
		}
		media := map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}
		return map[string]any{"required": true, "content": map[string]any{d.RequestType: media}}, nil
	}
	media, err := g.media(d.Request)
	if err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	if d.RequestExample != "" {
		if media["example"], err = requestExample(d.Request, d.RequestExample); err != nil {
			return nil, err
		}
	}
	return map[string]any{"required": true, "content": map[string]any{"application/json": media}}, nil
}

// responses documents the success answer and the error statuses.
func (g *gen) responses(r api.Route, hasTenant bool) (map[string]any, error) {
	d := r.Doc
	status := d.Status
	if status == 0 {
		status = http.StatusOK
	}
	if status < 200 || status > 299 {
		return nil, fmt.Errorf("success status %d is not 2xx", status)
	}
	ok := map[string]any{"description": http.StatusText(status)}
	if d.Response != nil {
		ctype := d.ContentType
		if ctype == "" {
			if reflect.TypeOf(d.Response).Kind() == reflect.String {
				return nil, fmt.Errorf("a text Response needs its ContentType")
			}
			ctype = "application/json"
		}
		media, err := g.media(d.Response)
		if err != nil {
			return nil, fmt.Errorf("response: %w", err)
		}
		if d.ResponseExample != nil {
			if media["example"], err = example(d.ResponseExample); err != nil {
				return nil, fmt.Errorf("response example: %w", err)
			}
		}
		ok["content"] = map[string]any{ctype: media}
	}
	responses := map[string]any{strconv.Itoa(status): ok}
	codes, err := errorStatuses(r, hasTenant)
	if err != nil {
		return nil, err
	}
	for _, code := range codes {
		g.errors[code] = true
		responses[strconv.Itoa(code)] = map[string]any{"$ref": "#/components/responses/" + responseName(code)}
	}
	return responses, nil
}

// openapiPath turns a fiber path into an OpenAPI one: ":param" is {param},
// and a greedy "+" or "*" takes the name of the one path parameter of the
// route's Doc that the path does not name. It returns the path parameters in
// order.
func openapiPath(fiberPath string, params []api.Param) (string, []string, error) {
	segs := strings.Split(fiberPath, "/")
	var names []string
	greedy := -1
	for i, s := range segs {
		switch {
		case strings.HasPrefix(s, ":"):
			n := s[1:]
			if n == "" || strings.ContainsAny(n, "?+*.-:") {
				return "", nil, fmt.Errorf("path segment %q: only plain :name parameters are supported", s)
			}
			names = append(names, n)
			segs[i] = "{" + n + "}"
		case s == "+" || s == "*":
			if greedy >= 0 {
				return "", nil, fmt.Errorf("more than one greedy parameter")
			}
			greedy = i
		case strings.ContainsAny(s, ":+*?{}"):
			return "", nil, fmt.Errorf("path segment %q: not supported by openapigen", s)
		}
	}
	if greedy >= 0 {
		var unnamed []string
		for _, p := range params {
			if p.In == "path" && !slices.Contains(names, p.Name) {
				unnamed = append(unnamed, p.Name)
			}
		}
		if len(unnamed) != 1 {
			return "", nil, fmt.Errorf("the greedy %q needs one path parameter in Doc.Params to name it, not %d", segs[greedy], len(unnamed))
		}
		segs[greedy] = "{" + unnamed[0] + "}"
		names = slices.Insert(names, countParamsBefore(segs, greedy), unnamed[0])
	}
	return strings.Join(segs, "/"), names, nil
}

func countParamsBefore(segs []string, i int) int {
	n := 0
	for _, s := range segs[:i] {
		if strings.HasPrefix(s, "{") {
			n++
		}
	}
	return n
}

// access is a route's access rule, for machines (x-discovery-access) and for
// people (a sentence of its description).
func access(a api.Access, hasTenant bool) (rule, sentence string, err error) {
	switch a.Kind {
	case api.Public:
		return "public", "Public: no token needed.", nil
	case api.Authenticated:
		return "authenticated", "Any caller with a valid token.", nil
	case api.Checked:
	default:
		return "", "", fmt.Errorf("unknown access kind %d", a.Kind)
	}
	if a.Object == "" || a.Action == "" {
		return "", "", fmt.Errorf("a checked route needs an object and an action")
	}
	perm := a.Object + ":" + a.Action
	switch {
	case a.BodyTenant:
		rule = perm + " in the body's tenant"
		sentence = fmt.Sprintf("Needs %s in the tenant the body's \"tenant\" field names (a role there that grants it), "+
			"or on the platform when it names none (a platform admin).", perm)
	case hasTenant:
		rule = perm + " in the route's tenant"
		sentence = fmt.Sprintf("Needs %s in the route's tenant: a role there that grants it, or a platform admin.", perm)
	default:
		rule = perm + " on the platform"
		sentence = fmt.Sprintf("Needs %s on the platform: a platform admin.", perm)
	}
	if a.Capability {
		rule += ", or the revision's lease capability"
		sentence += " A replica may send its revision's lease capability instead of a token " +
			"(header X-Discovery-Lease-Token: its $DISCOVERY_LEASE_TOKEN)."
	}
	return rule, sentence, nil
}

// errorStatuses are the route's own error statuses and those its
// middlewares answer: the body decoder (400, and fiber's 413 past its body
// limit), the guard (401 without a valid token, 403 when refused, 503 for a
// write while etcd is unreachable) and the tenant's write budget (429).
func errorStatuses(r api.Route, hasTenant bool) ([]int, error) {
	set := map[int]bool{}
	for _, c := range r.Doc.Errors {
		if c < 400 || c > 599 {
			return nil, fmt.Errorf("error status %d is not 4xx or 5xx", c)
		}
		set[c] = true
	}
	if r.Doc.Request != nil {
		set[http.StatusBadRequest] = true
		set[http.StatusRequestEntityTooLarge] = true
	}
	if r.Access.Kind != api.Public {
		set[http.StatusUnauthorized] = true
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			set[http.StatusServiceUnavailable] = true
			if hasTenant || r.Access.BodyTenant {
				set[http.StatusTooManyRequests] = true
			}
		}
	}
	if r.Access.Kind == api.Checked {
		set[http.StatusForbidden] = true
	}
	var out []int
	for c := range set {
		out = append(out, c)
	}
	slices.Sort(out)
	return out, nil
}

// errorDescription says what an error status means in this API; the body's
// code and message say which case it is.
func errorDescription(code int) string {
	why := map[int]string{
		http.StatusBadRequest:            "the request is refused (not JSON, an unknown field, a value out of range); nothing was changed",
		http.StatusUnauthorized:          "no valid token (Authorization: Bearer <token>)",
		http.StatusForbidden:             "the caller may not do this, or it would exceed the tenant's quota",
		http.StatusNotFound:              "no such tenant, app, revision, replica, lease or route",
		http.StatusConflict:              "the name is taken, or the object changed meanwhile or is in a state that refuses this",
		http.StatusRequestEntityTooLarge: "the body is too large",
		http.StatusTooManyRequests:       "too many calls for now; retry after Retry-After seconds",
		http.StatusNotImplemented:        "this platform instance does not offer this",
		http.StatusServiceUnavailable:    "the platform cannot do this now (its store unreachable or full, no capacity); nothing was changed, retry after Retry-After seconds",
	}[code]
	if why == "" {
		return http.StatusText(code)
	}
	return http.StatusText(code) + ": " + why
}

// responseName names an error response component: 404 -> NotFound.
func responseName(code int) string {
	return strings.ReplaceAll(strings.ReplaceAll(http.StatusText(code), " ", ""), "-", "")
}

// param documents a query or header parameter.
func (g *gen) param(p api.Param) (map[string]any, error) {
	t := reflect.TypeOf(p.Type)
	if t == nil {
		t = reflect.TypeFor[string]()
	}
	sch, err := g.sch.of(t)
	if err != nil {
		return nil, fmt.Errorf("parameter %s: %w", p.Name, err)
	}
	if p.Default != nil {
		sch["default"] = p.Default
	}
	if p.Max > 0 {
		sch["minimum"], sch["maximum"] = p.Min, p.Max
	}
	out := map[string]any{"name": p.Name, "in": p.In, "schema": sch}
	if p.Description != "" {
		out["description"] = p.Description
	}
	if p.Required {
		out["required"] = true
	}
	return out, nil
}

// media is a body's media type object: its schema (a string's is a string).
func (g *gen) media(v any) (map[string]any, error) {
	sch, err := g.sch.of(reflect.TypeOf(v))
	if err != nil {
		return nil, err
	}
	return map[string]any{"schema": sch}, nil
}

// requestExample checks an example body as the handler reads it (strictly,
// into the route's request type) and returns it as a JSON value.
func requestExample(req any, body string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(reflect.New(reflect.TypeOf(req)).Interface()); err != nil {
		return nil, fmt.Errorf("request example %s: %w", body, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("request example %s: trailing data", body)
	}
	return jsonValue([]byte(body))
}

// example is v as the API writes it, as a JSON value.
func example(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonValue(b)
}

func jsonValue(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}
