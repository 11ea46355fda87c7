package client

import (
	"reflect"
	"testing"
	"time"
)

func TestAppDiff(t *testing.T) {
	have := App{Name: "hello", Port: 8080, HealthPath: "/healthz", Replicas: 1, ReconnectGrace: Duration(30 * time.Second),
		ReservationTTL: Duration(10 * time.Second)}
	for _, tc := range []struct {
		name    string
		spec    AppSpec
		changes []string
	}{
		{"nothing set", AppSpec{Name: "hello"}, nil},
		{"same values", AppSpec{Name: "hello", Replicas: Int(1), HealthPath: String("/healthz"), ReconnectGrace: Dur(30 * time.Second)}, nil},
		{"one differs", AppSpec{Name: "hello", Replicas: Int(2), HealthPath: String("/healthz")}, []string{"replicas 1 -> 2"}},
		{"zero is a value", AppSpec{Name: "hello", Replicas: Int(0)}, []string{"replicas 1 -> 0"}},
		{"durations", AppSpec{Name: "hello", ReconnectGrace: Dur(time.Minute), DrainTimeout: Dur(0)}, []string{"reconnect_grace 30s -> 1m0s"}},
		{"protocol paths and reservations", AppSpec{Name: "hello", ClientPath: String("/ws"), DrainHook: String("/discovery/drain"), HandoffPath: String(""),
			ReservationTTL: Dur(time.Minute)}, []string{"client_path  -> /ws", "drain_hook  -> /discovery/drain", "reservation_ttl 10s -> 1m0s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			patch, changes := AppDiff(have, tc.spec)
			if !reflect.DeepEqual(changes, tc.changes) {
				t.Fatalf("changes %q, want %q", changes, tc.changes)
			}
			// The patch sets exactly what changed.
			if _, again := AppDiff(have, patch); !reflect.DeepEqual(again, tc.changes) {
				t.Errorf("patch changes %q, want %q", again, tc.changes)
			}
			if patch.Name != "hello" {
				t.Errorf("patch name %q", patch.Name)
			}
		})
	}
}

func TestSpecDiff(t *testing.T) {
	base := RevisionSpec{Command: []string{"/bin/hello"}, Env: map[string]string{"GREETING": "v1", "MODE": "x"}}
	for _, tc := range []struct {
		name string
		want RevisionSpec
		diff []string
	}{
		{"same", RevisionSpec{Command: []string{"/bin/hello"}, Env: map[string]string{"MODE": "x", "GREETING": "v1"}}, nil},
		{"env value, added, removed", RevisionSpec{Command: []string{"/bin/hello"}, Env: map[string]string{"GREETING": "v2", "NEW": "1"}},
			[]string{"env +NEW", "env -MODE", "env GREETING"}},
		{"command", RevisionSpec{Command: []string{"/bin/hello", "-v"}, Env: base.Env}, []string{`command ["/bin/hello"] -> ["/bin/hello" "-v"]`}},
		{"image", RevisionSpec{Image: "example/hello:2", Command: base.Command, Env: base.Env}, []string{`image "" -> "example/hello:2"`}},
		{"nil resources equal zero", RevisionSpec{Command: base.Command, Env: base.Env, Resources: &Resources{}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SpecDiff(base, tc.want); !reflect.DeepEqual(got, tc.diff) {
				t.Fatalf("SpecDiff = %q, want %q", got, tc.diff)
			}
		})
	}
	if got := SpecDiff(RevisionSpec{Command: []string{"x"}}, RevisionSpec{Command: []string{"x"}, Env: map[string]string{}}); got != nil {
		t.Errorf("nil and empty env differ: %q", got)
	}
}

func TestCurrentIsTheNewestServingOrAboutTo(t *testing.T) {
	rev := func(id string, gen int64, s RevisionState) Revision {
		return Revision{ID: id, Generation: gen, State: s}
	}
	for _, tc := range []struct {
		name string
		revs []Revision
		want string
	}{
		{"none", nil, ""},
		{"active only", []Revision{rev("a", 1, Active)}, "a"},
		{"a newer one starting", []Revision{rev("b", 2, Starting), rev("a", 1, Active)}, "b"},
		{"a newer one failed", []Revision{rev("b", 2, Failed), rev("a", 1, Active)}, "a"},
		{"rolled back: the newer drains", []Revision{rev("b", 2, Draining), rev("a", 1, Active)}, "a"},
		{"all retired", []Revision{rev("b", 2, Retired), rev("a", 1, Failed)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Current(tc.revs)
			if ok != (tc.want != "") || got.ID != tc.want {
				t.Fatalf("Current = %q, %v; want %q", got.ID, ok, tc.want)
			}
		})
	}
}

func TestRevisionOneLine(t *testing.T) {
	r := Revision{ID: "9d00cc18", State: Active, Generation: 3, Replicas: []Replica{{State: "ready"}, {State: "ready"}, {State: "exited"}}}
	if got, want := r.String(), "9d00cc18 active (2/2 ready) generation 3"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	r = Revision{ID: "9d00cc18", State: Active, Generation: 3} // as activate answers: no replicas
	if got, want := r.String(), "9d00cc18 active generation 3"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	r = Revision{ID: "1a2b3c4d", State: Failed, Generation: 4, Reason: "3 crashes", Replicas: []Replica{{State: "exited"}}}
	if got, want := r.String(), "1a2b3c4d failed (0/0 ready) generation 4: 3 crashes"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestReachable(t *testing.T) {
	for _, tc := range []struct {
		have, want RevisionState
		ok         bool
	}{
		{Pending, Active, true}, {Starting, Active, true}, {Active, Active, true},
		{Failed, Active, false}, {Draining, Active, false}, {Retired, Active, false},
		{Active, Retired, true}, {Draining, Retired, true},
		{Starting, Failed, true}, {Active, Failed, false},
	} {
		if got := reachable(tc.have, tc.want); got != tc.ok {
			t.Errorf("reachable(%s, %s) = %v, want %v", tc.have, tc.want, got, tc.ok)
		}
	}
}
