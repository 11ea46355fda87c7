package client

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/authz"
	"github.com/discovery-platform/discovery/endpoint"
	"github.com/discovery-platform/discovery/images"
	"github.com/discovery-platform/discovery/tenants"
)

// TestTypesMatchThePlatform keeps the client's JSON documents in step with
// the platform's own types: every field the platform reads or writes has a
// field of the same JSON name here, of the same JSON kind (string, number,
// bool, list, object, or a value with its own encoding such as a duration).
// For the types marked exact, the client has no field the platform lacks
// either.
func TestTypesMatchThePlatform(t *testing.T) {
	for _, tc := range []struct {
		platform, client any
		exact            bool
	}{
		{apps.App{}, App{}, false},
		{apps.AppSpec{}, AppSpec{}, false},
		{apps.Revision{}, Revision{}, false},
		{apps.RevisionSpec{}, RevisionSpec{}, false},
		{apps.Resources{}, Resources{}, false},
		{apps.Event{}, Event{}, false},
		{apps.DeployStatus{}, DeployStatus{}, true},
		{apps.SettingChange{}, SettingChange{}, true},
		{endpoint.Endpoint{}, Endpoint{}, false},
		{tenants.Tenant{}, Tenant{}, true},
		{tenants.Quota{}, Quota{}, true},
		{tenants.QuotaPatch{}, QuotaPatch{}, true},
		{apps.Usage{}, Usage{}, true},
		{apps.Lease{}, Lease{}, true},
		{images.Image{}, Image{}, true},
		{authz.Member{}, Member{}, true},
	} {
		pt, ct := reflect.TypeOf(tc.platform), reflect.TypeOf(tc.client)
		want, have := jsonFields(pt), jsonFields(ct)
		var missing, extra, differ []string
		for name, kind := range want {
			switch k, ok := have[name]; {
			case !ok:
				missing = append(missing, name)
			case k != kind:
				differ = append(differ, name+" is "+k+", the platform's "+kind)
			}
		}
		for name := range have {
			if _, ok := want[name]; !ok && tc.exact {
				extra = append(extra, name)
			}
		}
		sort.Strings(missing)
		sort.Strings(extra)
		sort.Strings(differ)
		if len(missing) > 0 {
			t.Errorf("client.%s lacks %s's JSON fields %v", ct.Name(), pt, missing)
		}
		if len(extra) > 0 {
			t.Errorf("client.%s has JSON fields %s lacks: %v", ct.Name(), pt, extra)
		}
		if len(differ) > 0 {
			t.Errorf("client.%s's JSON fields differ from %s's: %v", ct.Name(), pt, differ)
		}
	}
}

// TestEventTypesMatchThePlatform: the client's event type constants are
// the platform's, every one of them.
func TestEventTypesMatchThePlatform(t *testing.T) {
	for platform, client := range map[apps.EventType]string{
		apps.EventAppCreated: EventAppCreated, apps.EventAppUpdated: EventAppUpdated, apps.EventAppDeleting: EventAppDeleting,
		apps.EventDeployed: EventDeployed, apps.EventTransition: EventTransition, apps.EventReplicaStarted: EventReplicaStarted,
		apps.EventReplicaReady: EventReplicaReady, apps.EventReplicaCrashed: EventReplicaCrashed, apps.EventReplicaStopping: EventReplicaStopping,
		apps.EventReplicaStopped: EventReplicaStopped, apps.EventReplicaAdopted: EventReplicaAdopted, apps.EventCapped: EventCapped,
		apps.EventError: EventError, apps.EventNotice: EventNotice, apps.EventHandoff: EventHandoff,
		apps.EventEtcdOutage: EventEtcdOutage, apps.EventStoreFull: EventStoreFull,
	} {
		if string(platform) != client {
			t.Errorf("client event type %q, the platform's %q", client, platform)
		}
		if (Event{Type: client}).Symbol() == "?" {
			t.Errorf("event type %q has no symbol", client)
		}
	}
}

// jsonFields maps each JSON field name of struct type t to its JSON kind.
func jsonFields(t reflect.Type) map[string]string {
	out := map[string]string{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			for n, k := range jsonFields(f.Type) {
				out[n] = k
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = jsonKind(f.Type)
	}
	return out
}

var marshaler = reflect.TypeFor[json.Marshaler]()

// jsonKind is how a value of type t looks in JSON.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Implements(marshaler) || reflect.PointerTo(t).Implements(marshaler) {
		return "encoded " + t.Name()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "bool"
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "list of " + jsonKind(t.Elem())
	case reflect.Map:
		return "map of " + jsonKind(t.Elem())
	}
	return "object"
}
