package client

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/authz"
	"github.com/discovery-platform/discovery/endpoint"
	"github.com/discovery-platform/discovery/tenants"
)

// TestTypesMatchThePlatform keeps the client's JSON documents in step with
// the platform's own types: every field the platform reads or writes has a
// field of the same JSON name here.
func TestTypesMatchThePlatform(t *testing.T) {
	for _, tc := range []struct {
		platform, client any
	}{
		{apps.App{}, App{}},
		{apps.AppSpec{}, AppSpec{}},
		{apps.Revision{}, Revision{}},
		{apps.RevisionSpec{}, RevisionSpec{}},
		{apps.Resources{}, Resources{}},
		{apps.Event{}, Event{}},
		{endpoint.Endpoint{}, Endpoint{}},
		{tenants.Tenant{}, Tenant{}},
		{tenants.Quota{}, Quota{}},
		{authz.Member{}, Member{}},
	} {
		want, have := jsonFields(reflect.TypeOf(tc.platform)), jsonFields(reflect.TypeOf(tc.client))
		var missing []string
		for name := range want {
			if !have[name] {
				missing = append(missing, name)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("client.%s lacks %s's JSON fields %v", reflect.TypeOf(tc.client).Name(), reflect.TypeOf(tc.platform), missing)
		}
	}
}

func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			for n := range jsonFields(f.Type) {
				out[n] = true
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = true
	}
	return out
}
