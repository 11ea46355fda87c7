package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// Outcome is what an Ensure call did.
type Outcome string

// The outcomes of EnsureApp and EnsureRevision.
const (
	Created   Outcome = "created"
	Updated   Outcome = "updated"
	Deployed  Outcome = "deployed"
	Unchanged Outcome = "unchanged"
)

// AppChange is what EnsureApp did to an app.
type AppChange struct {
	App     App
	Outcome Outcome
	// Changes names each setting that changed ("replicas 1 -> 2").
	Changes []string
}

// String is one line: "app hello: updated (replicas 1 -> 2)".
func (c AppChange) String() string {
	s := fmt.Sprintf("app %s: %s", c.App.Name, c.Outcome)
	if len(c.Changes) > 0 {
		s += " (" + strings.Join(c.Changes, ", ") + ")"
	}
	return s
}

// RevisionChange is what EnsureRevision did.
type RevisionChange struct {
	// Revision is the new revision (Deployed) or the current one (Unchanged).
	Revision Revision
	Outcome  Outcome
	// Changes names what differs from the current revision ("env GREETING").
	Changes []string
}

// String is one line: "hello 9d00cc18: unchanged (active, generation 1)".
func (c RevisionChange) String() string {
	r := c.Revision
	detail := fmt.Sprintf("%s, generation %d", r.State, r.Generation)
	if len(c.Changes) > 0 {
		detail = strings.Join(c.Changes, ", ")
	}
	return fmt.Sprintf("%s %s: %s (%s)", r.App, r.ID, c.Outcome, detail)
}

// EnsureApp makes an app match spec: it creates the app when it does not
// exist, changes the fields spec sets that differ, and does nothing (Unchanged)
// when none does. Fields spec leaves nil are not compared. Running it twice
// changes nothing the second time.
func (c *Client) EnsureApp(ctx context.Context, tenant string, spec AppSpec) (AppChange, error) {
	if spec.Name == "" {
		return AppChange{}, fmt.Errorf("ensure app: the spec needs a Name")
	}
	have, err := c.GetApp(ctx, tenant, spec.Name)
	if errors.Is(err, ErrNotFound) {
		a, err := c.CreateApp(ctx, tenant, spec)
		if err != nil {
			return AppChange{}, err
		}
		return AppChange{App: a, Outcome: Created}, nil
	}
	if err != nil {
		return AppChange{}, err
	}
	if have.Deleting {
		return AppChange{App: have}, fmt.Errorf("ensure app %s: it is being deleted; wait until it is gone, then run again", spec.Name)
	}
	patch, changes := AppDiff(have, spec)
	if len(changes) == 0 {
		return AppChange{App: have, Outcome: Unchanged}, nil
	}
	a, err := c.UpdateApp(ctx, tenant, spec.Name, patch)
	if err != nil {
		return AppChange{}, err
	}
	return AppChange{App: a, Outcome: Updated, Changes: changes}, nil
}

// AppDiff compares the fields spec sets with an app: patch sets only those
// that differ, and changes describes them ("replicas 1 -> 2").
func AppDiff(have App, spec AppSpec) (patch AppSpec, changes []string) {
	patch.Name = spec.Name
	diff(&changes, &patch.Port, "port", spec.Port, have.Port)
	diff(&changes, &patch.HealthPath, "health_path", spec.HealthPath, have.HealthPath)
	diff(&changes, &patch.ClientPath, "client_path", spec.ClientPath, have.ClientPath)
	diff(&changes, &patch.DrainHook, "drain_hook", spec.DrainHook, have.DrainHook)
	diff(&changes, &patch.HandoffPath, "handoff_path", spec.HandoffPath, have.HandoffPath)
	diff(&changes, &patch.Replicas, "replicas", spec.Replicas, have.Replicas)
	diff(&changes, &patch.MaxSessions, "max_sessions", spec.MaxSessions, have.MaxSessions)
	diff(&changes, &patch.TargetSessions, "target_sessions", spec.TargetSessions, have.TargetSessions)
	diff(&changes, &patch.MinReplicas, "min_replicas", spec.MinReplicas, have.MinReplicas)
	diff(&changes, &patch.MaxReplicas, "max_replicas", spec.MaxReplicas, have.MaxReplicas)
	diff(&changes, &patch.ScaleDownDelay, "scale_down_delay", spec.ScaleDownDelay, have.ScaleDownDelay)
	diff(&changes, &patch.ReservationTTL, "reservation_ttl", spec.ReservationTTL, have.ReservationTTL)
	diff(&changes, &patch.Strategy, "strategy", spec.Strategy, have.Strategy)
	diff(&changes, &patch.ReconnectGrace, "reconnect_grace", spec.ReconnectGrace, have.ReconnectGrace)
	diff(&changes, &patch.DrainTimeout, "drain_timeout", spec.DrainTimeout, have.DrainTimeout)
	diff(&changes, &patch.ShutdownGrace, "shutdown_grace", spec.ShutdownGrace, have.ShutdownGrace)
	diff(&changes, &patch.StartTimeout, "start_timeout", spec.StartTimeout, have.StartTimeout)
	return patch, changes
}

func diff[T comparable](changes *[]string, patch **T, name string, want *T, have T) {
	if want == nil || *want == have {
		return
	}
	*patch = want
	*changes = append(*changes, fmt.Sprintf("%s %v -> %v", name, have, *want))
}

// EnsureRevision deploys spec unless the app's current revision already runs
// it. The current revision is the newest one pending, starting or active (one
// still starting will become active; a failed one does not count, so a spec
// whose last deploy failed is deployed again). Image, command, env and
// resources are compared; env values are not shown in Changes, only keys.
func (c *Client) EnsureRevision(ctx context.Context, tenant, app string, spec RevisionSpec) (RevisionChange, error) {
	revs, err := c.ListRevisions(ctx, tenant, app)
	if err != nil {
		return RevisionChange{}, err
	}
	cur, ok := Current(revs)
	var changes []string
	if ok {
		changes = SpecDiff(cur.Spec(), spec)
		if len(changes) == 0 {
			return RevisionChange{Revision: cur, Outcome: Unchanged}, nil
		}
	} else {
		changes = []string{"no current revision"}
	}
	r, err := c.Deploy(ctx, tenant, app, spec)
	if err != nil {
		return RevisionChange{}, err
	}
	return RevisionChange{Revision: r, Outcome: Deployed, Changes: changes}, nil
}

// Current picks, among an app's revisions, the newest that is pending,
// starting or active: the one serving, or about to.
func Current(revs []Revision) (Revision, bool) {
	var best Revision
	found := false
	for _, r := range revs {
		if r.State != Pending && r.State != Starting && r.State != Active {
			continue
		}
		if !found || r.Generation > best.Generation {
			best, found = r, true
		}
	}
	return best, found
}

// SpecDiff describes how want differs from have: "image", "command", "env
// +KEY", "env -KEY", "env KEY", "resources". Nil and empty are the same.
func SpecDiff(have, want RevisionSpec) []string {
	var out []string
	if have.Image != want.Image {
		out = append(out, fmt.Sprintf("image %q -> %q", have.Image, want.Image))
	}
	if !slices.Equal(have.Command, want.Command) {
		out = append(out, fmt.Sprintf("command %q -> %q", have.Command, want.Command))
	}
	keys := map[string]bool{}
	for k := range maps.Keys(have.Env) {
		keys[k] = true
	}
	for k := range maps.Keys(want.Env) {
		keys[k] = true
	}
	var env []string
	for k := range keys {
		hv, hok := have.Env[k]
		wv, wok := want.Env[k]
		switch {
		case hok && !wok:
			env = append(env, "env -"+k)
		case !hok && wok:
			env = append(env, "env +"+k)
		case hv != wv:
			env = append(env, "env "+k)
		}
	}
	sort.Strings(env)
	out = append(out, env...)
	var hr, wr Resources
	if have.Resources != nil {
		hr = *have.Resources
	}
	if want.Resources != nil {
		wr = *want.Resources
	}
	if hr != wr {
		out = append(out, fmt.Sprintf("resources %+v -> %+v", hr, wr))
	}
	return out
}
