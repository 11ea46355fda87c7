// Package deploy is dsh's deployment verbs for the current tenant: roll out a
// revision, read its status, wait for a state, roll back (Activate), retire,
// and Ensure for scripts that declare what should run.
package deploy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/discovery-platform/discovery/client"
	"github.com/discovery-platform/discovery/shell/lib/dsh"
)

// Spec is what a revision runs: Image (Kubernetes runtime) and/or Command
// (argv; the process runtime runs it with $PORT set), Env and Resources.
type Spec = client.RevisionSpec

// Parse reads Rollout's argument: an image when it has no space, is not a
// path (does not start with '/', '.' or '~') and its last '/'-segment carries
// a ":tag" or "@digest" ("example/arena:0.2", "nginx:1.27"); otherwise a
// command split on spaces ("./bin/hello", "/usr/bin/env PORT=1 hello"). Use
// RolloutSpec for arguments with spaces in them, or for env.
func Parse(imageOrCommand string) Spec {
	s := strings.TrimSpace(imageOrCommand)
	last := s[strings.LastIndex(s, "/")+1:]
	if s != "" && !strings.ContainsAny(s, " \t\n") && !strings.ContainsAny(s[:1], "/.~") &&
		strings.ContainsAny(last, ":@") && !strings.HasSuffix(last, ":") {
		return Spec{Image: s}
	}
	return Spec{Command: strings.Fields(s)}
}

// Rollout deploys a new revision of app from an image or a command (see
// Parse) and returns it, pending. It becomes active once healthy; until then
// the previous revision keeps serving. Follow it with Wait or Status.
func Rollout(app, imageOrCommand string) (client.Revision, error) {
	spec := Parse(imageOrCommand)
	if spec.Image == "" && len(spec.Command) == 0 {
		return client.Revision{}, fmt.Errorf("rollout %s: give an image (example/arena:0.2) or a command (./bin/arena)", app)
	}
	return RolloutSpec(app, spec)
}

// RolloutSpec deploys a new revision of app from a full spec:
// deploy.RolloutSpec("arena", deploy.Spec{Command: []string{"./bin/arena"}, Env: map[string]string{"RESPAWN": "false"}}).
func RolloutSpec(app string, spec Spec) (client.Revision, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.Revision{}, err
	}
	return c.Deploy(dsh.Context(), dsh.Tenant(), app, spec)
}

// Status lists app's revisions, newest first, with their state and ready
// replicas.
func Status(app string) ([]client.Revision, error) {
	c, err := dsh.Connected()
	if err != nil {
		return nil, err
	}
	return c.ListRevisions(dsh.Context(), dsh.Tenant(), app)
}

// Get reads one revision.
func Get(app, rev string) (client.Revision, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.Revision{}, err
	}
	return c.GetRevision(dsh.Context(), dsh.Tenant(), app, rev)
}

// Current is app's newest revision that is pending, starting or active: the
// one serving, or about to.
func Current(app string) (client.Revision, error) {
	revs, err := Status(app)
	if err != nil {
		return client.Revision{}, err
	}
	r, ok := client.Current(revs)
	if !ok {
		return client.Revision{}, fmt.Errorf("app %s has no pending, starting or active revision", app)
	}
	return r, nil
}

// Sessions counts app's sessions per serving revision and replica, in all
// and by kind: open connections, reservations (get-endpoint answers no
// socket used yet) and app-held leases. A draining revision is retired once
// its count has stayed 0 for the app's reconnect_grace.
func Sessions(app string) (client.Sessions, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.Sessions{}, err
	}
	return c.Sessions(dsh.Context(), dsh.Tenant(), app)
}

// Replicas lists a revision's replicas.
func Replicas(app, rev string) ([]client.Replica, error) {
	r, err := Get(app, rev)
	return r.Replicas, err
}

// Activate re-activates a draining revision: instant rollback, no restart.
func Activate(app, rev string) (client.Revision, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.Revision{}, err
	}
	r, err := c.Activate(dsh.Context(), dsh.Tenant(), app, rev)
	return withReplicas(r, err)
}

// withReplicas reads a revision the API answered without its replicas
// (activate, retire) again, so that it prints with its ready count.
func withReplicas(r client.Revision, err error) (client.Revision, error) {
	if err != nil || r.Replicas != nil {
		return r, err
	}
	if full, err := Get(r.App, r.ID); err == nil {
		return full, nil
	}
	return r, nil
}

// Retire retires a revision now, whatever its sessions (not the active one).
func Retire(app, rev string) (client.Revision, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.Revision{}, err
	}
	return withReplicas(c.Retire(dsh.Context(), dsh.Tenant(), app, rev))
}

// Wait waits until revision rev of app is in state ("active", "retired"…)
// and returns it; it fails at once if the revision can no longer get there
// (it failed), and after timeout. Ctrl-C stops it.
func Wait(app, rev, state string, timeout time.Duration) (client.Revision, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.Revision{}, err
	}
	ctx, cancel := context.WithTimeout(dsh.Context(), timeout)
	defer cancel()
	return c.WaitRevision(ctx, dsh.Tenant(), app, rev, client.RevisionState(state))
}

// Ensure deploys spec unless app's current revision (see Current) already
// runs it: same image, command, env and resources. Run twice, the second run
// deploys nothing ("unchanged").
func Ensure(app string, spec Spec) (client.RevisionChange, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.RevisionChange{}, err
	}
	return c.EnsureRevision(dsh.Context(), dsh.Tenant(), app, spec)
}
