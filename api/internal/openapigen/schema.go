package openapigen

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode"

	"github.com/discovery-platform/discovery/apps"
)

// schemas turns Go types into the schemas of the values encoding/json writes
// for them; a named struct becomes a component named after its type.
type schemas struct {
	src   *source
	comps map[string]any          // components/schemas
	types map[string]reflect.Type // component name -> its Go type
}

func newSchemas(src *source) *schemas {
	return &schemas{src: src, comps: map[string]any{}, types: map[string]reflect.Type{}}
}

var (
	timeType      = reflect.TypeFor[time.Time]()
	durationType  = reflect.TypeFor[apps.Duration]()
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// durationPattern is what time.ParseDuration reads ("30s", "1m30s", "0").
const durationPattern = `^[-+]?(0|([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+)$`

// of returns the schema of t's values.
func (s *schemas) of(t reflect.Type) (map[string]any, error) {
	switch t {
	case timeType:
		return map[string]any{"type": "string", "format": "date-time"}, nil
	case durationType:
		return map[string]any{"type": "string", "pattern": durationPattern, "example": "30s",
			"description": `a Go duration, e.g. "30s" or "1m30s"`}, nil
	}
	if t.Kind() != reflect.Pointer && (t.Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(jsonMarshaler)) {
		return nil, fmt.Errorf("%v writes its own JSON: give it a rule in openapigen's schemas.of", t)
	}
	if t.Kind() != reflect.Pointer && (t.Implements(textMarshaler) || reflect.PointerTo(t).Implements(textMarshaler)) {
		return map[string]any{"type": "string"}, nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		return s.of(t.Elem())
	case reflect.Bool:
		return map[string]any{"type": "boolean"}, nil
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64, reflect.Uintptr:
		return map[string]any{"type": "integer", "format": "int64"}, nil
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return map[string]any{"type": "integer", "format": "int32"}, nil
	case reflect.Float32:
		return map[string]any{"type": "number", "format": "float"}, nil
	case reflect.Float64:
		return map[string]any{"type": "number", "format": "double"}, nil
	case reflect.String:
		sch := map[string]any{"type": "string"}
		if t.Name() != "" {
			d, err := s.src.pkg(t.PkgPath())
			if err != nil {
				return nil, err
			}
			if values := d.enums[t.Name()]; len(values) > 0 {
				sch["enum"] = values
			}
		}
		return sch, nil
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "format": "byte"}, nil // base64
		}
		items, err := s.of(t.Elem())
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "array", "items": items}, nil
	case reflect.Map:
		k := t.Key()
		if k.Kind() != reflect.String && !k.Implements(textMarshaler) && (k.Kind() < reflect.Int || k.Kind() > reflect.Uintptr) {
			return nil, fmt.Errorf("%v: encoding/json cannot write a map keyed by %v", t, k)
		}
		values, err := s.of(t.Elem())
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "object", "additionalProperties": values}, nil
	case reflect.Interface:
		return map[string]any{}, nil // any value
	case reflect.Struct:
		if t.Name() == "" {
			return s.object(t)
		}
		return s.component(t)
	}
	return nil, fmt.Errorf("%v: no JSON schema for a %v", t, t.Kind())
}

// component returns a reference to the component of the named struct t,
// building it the first time.
func (s *schemas) component(t reflect.Type) (map[string]any, error) {
	name := exported(t.Name())
	ref := map[string]any{"$ref": "#/components/schemas/" + name}
	if strings.ContainsAny(name, "[]") {
		return nil, fmt.Errorf("%v: a generic type needs a rule in openapigen", t)
	}
	if other, ok := s.types[name]; ok {
		if other != t {
			return nil, fmt.Errorf("two types would be component %s: %v (%s) and %v (%s)", name, other, other.PkgPath(), t, t.PkgPath())
		}
		return ref, nil
	}
	s.types[name] = t // before its fields: a type may refer to itself
	sch, err := s.object(t)
	if err != nil {
		return nil, err
	}
	d, err := s.src.pkg(t.PkgPath())
	if err != nil {
		return nil, err
	}
	if doc := typeDoc(d.types[t.Name()], t.Name(), name, jsonFields(t)); doc != "" {
		sch["description"] = doc
	}
	s.comps[name] = sch
	return ref, nil
}

// object returns the schema of a struct as encoding/json writes it: its
// fields in order, embedded structs flattened; a field without omitempty (or
// omitzero) that is not a pointer is always written, so required.
func (s *schemas) object(t reflect.Type) (map[string]any, error) {
	props := &object{}
	var required []string
	fields := jsonFields(t)
	for _, f := range fields {
		sch, err := s.of(f.typ)
		if err != nil {
			return nil, fmt.Errorf("%v.%s: %w", t, f.goName, err)
		}
		if f.quoted {
			sch = map[string]any{"type": "string"}
		}
		isPtr := f.typ.Kind() == reflect.Pointer
		if isPtr && !f.omit {
			sch = with(sch, "nullable", true)
		}
		if f.owner.Name() != "" {
			d, err := s.src.pkg(f.owner.PkgPath())
			if err != nil {
				return nil, err
			}
			if doc := jsonNames(d.fields[f.owner.Name()][f.goName], fields); doc != "" {
				sch = with(sch, "description", doc)
			}
		}
		props.set(f.name, sch)
		if !f.omit && !isPtr {
			required = append(required, f.name)
		}
	}
	sch := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		sch["required"] = required
	}
	return sch, nil
}

// with returns sch with key set; a reference is wrapped, as OpenAPI 3.0
// ignores what stands beside a $ref.
func with(sch map[string]any, key string, v any) map[string]any {
	if _, ok := sch["$ref"]; ok {
		return map[string]any{"allOf": []any{sch}, key: v}
	}
	sch[key] = v
	return sch
}

// jsonField is a field as encoding/json writes it.
type jsonField struct {
	name, goName string
	typ          reflect.Type
	owner        reflect.Type // the struct that declares it
	omit         bool         // omitempty or omitzero
	quoted       bool         // ,string
	tagged       bool
	depth        int
}

// jsonFields lists the fields encoding/json writes for struct t, in its
// order: json:"-" and unexported fields skipped, the fields of untagged
// embedded structs promoted, a shallower field hiding a deeper one of the
// same name, and ambiguous ones dropped.
func jsonFields(t reflect.Type) []jsonField {
	var all []jsonField
	var walk func(t reflect.Type, depth int)
	walk = func(t reflect.Type, depth int) {
		if depth > 16 {
			return
		}
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			ft := sf.Type
			if sf.Anonymous {
				et := ft
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if !sf.IsExported() && et.Kind() != reflect.Struct {
					continue
				}
				if name == "" && et.Kind() == reflect.Struct {
					walk(et, depth+1)
					continue
				}
			} else if !sf.IsExported() {
				continue
			}
			f := jsonField{name: name, goName: sf.Name, typ: ft, owner: t, tagged: name != "", depth: depth}
			if name == "" {
				f.name = sf.Name
			}
			for _, o := range strings.Split(opts, ",") {
				switch o {
				case "omitempty", "omitzero":
					f.omit = true
				case "string":
					switch ft.Kind() {
					case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
						reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
						reflect.Float32, reflect.Float64, reflect.String:
						f.quoted = true
					}
				}
			}
			all = append(all, f)
		}
	}
	walk(t, 0)

	byName := map[string][]jsonField{}
	for _, f := range all {
		byName[f.name] = append(byName[f.name], f)
	}
	var out []jsonField
	for _, f := range all {
		if dominant, ok := dominantField(byName[f.name]); ok && dominant == f {
			out = append(out, f)
		}
	}
	return out
}

// dominantField is encoding/json's rule among fields of one name: the
// shallowest, then the tagged one; none when still ambiguous.
func dominantField(fs []jsonField) (jsonField, bool) {
	var best []jsonField
	for _, f := range fs {
		switch {
		case len(best) == 0 || f.depth < best[0].depth:
			best = []jsonField{f}
		case f.depth == best[0].depth:
			best = append(best, f)
		}
	}
	if len(best) == 1 {
		return best[0], true
	}
	var tagged []jsonField
	for _, f := range best {
		if f.tagged {
			tagged = append(tagged, f)
		}
	}
	if len(tagged) == 1 {
		return tagged[0], true
	}
	return jsonField{}, false
}

// exported is a Go type name as a component name: revisionView -> RevisionView.
func exported(name string) string {
	r := []rune(name)
	if len(r) > 0 {
		r[0] = unicode.ToUpper(r[0])
	}
	return string(r)
}
