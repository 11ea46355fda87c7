package deploy

import (
	"reflect"
	"testing"
)

func TestParseTellsImagesFromCommands(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Spec
	}{
		{"example/arena:0.2", Spec{Image: "example/arena:0.2"}},
		{"nginx:1.27", Spec{Image: "nginx:1.27"}},
		{"registry.local:5000/team/arena:3", Spec{Image: "registry.local:5000/team/arena:3"}},
		{"arena@sha256:abcd", Spec{Image: "arena@sha256:abcd"}},
		{"/srv/bin/arena", Spec{Command: []string{"/srv/bin/arena"}}},
		{"./bin/hello --port-from-env", Spec{Command: []string{"./bin/hello", "--port-from-env"}}},
		{"bin/hello", Spec{Command: []string{"bin/hello"}}},
		{"hello", Spec{Command: []string{"hello"}}},
		{"./bin/a:b", Spec{Command: []string{"./bin/a:b"}}},
		{"registry.local:5000/arena", Spec{Command: []string{"registry.local:5000/arena"}}},
		{"  ", Spec{Command: []string{}}},
	} {
		got := Parse(tc.in)
		if got.Image != tc.want.Image || !reflect.DeepEqual(append([]string{}, got.Command...), append([]string{}, tc.want.Command...)) {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}
