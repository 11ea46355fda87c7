package apps

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/discovery-platform/discovery/internal/storeerr"
	"github.com/discovery-platform/discovery/tenants"
)

// Service is the apps domain as operators use it: create, change and delete
// apps, deploy revisions, roll back and retire. It validates, applies the
// lifecycle rules and writes through the store; the API, dsh and Bridge all
// call it and nothing else.
type Service struct {
	Store *Store
	// Tenants confirms a tenant exists and gives its quota; nil (in tests)
	// means every tenant exists without limits.
	Tenants TenantSource
	// RequireImage refuses revisions without an image: the kubernetes
	// runtime runs images (a command alone runs only on the process runtime).
	RequireImage bool
	// Images resolves an image to the command the process runtime runs
	// (images.Store); nil on Kubernetes, where images are pulled.
	Images ImageResolver
	// Commands decides whether the caller may deploy a raw command
	// (authz.Authorizer); nil allows everyone (Kubernetes, where a command
	// runs inside the tenant's own pod, or tests).
	Commands CommandGate
	// Logs reads replicas' output (the runtime); nil: no logs here.
	Logs LogReader
	// Sessions counts revisions' sessions, so that deleting an app with
	// players needs a force or a drain; nil: never refused.
	Sessions SessionSource
}

// LogReader reads the end of a replica's output (a runtime's Logs).
type LogReader interface {
	Logs(ctx context.Context, id ReplicaID, tail int) ([]byte, error)
}

// ReplicaLogs returns up to tail bytes of the end of a replica's output; the
// replica must be one the app records (no reading by a guessed id).
func (s *Service) ReplicaLogs(ctx context.Context, id ReplicaID, tail int) ([]byte, error) {
	snap, err := s.Load(ctx, id.Tenant, id.App)
	if err != nil {
		return nil, err
	}
	if !snap.HasReplica(id.Revision, id.Replica) {
		return nil, fmt.Errorf("replica %s of revision %s: %w", id.Replica, id.Revision, ErrNotFound)
	}
	if s.Logs == nil {
		return nil, fmt.Errorf("%w: this platform instance has no runtime to read logs from", ErrNoLogs)
	}
	return s.Logs.Logs(ctx, id, tail)
}

// TenantSource reads a tenant (implemented by tenants.Store).
type TenantSource interface {
	Get(ctx context.Context, name string) (tenants.Tenant, error)
}

// ImageResolver maps an image of the catalog to its command (images.Store).
type ImageResolver interface {
	Resolve(ctx context.Context, ref string) ([]string, error)
}

// CommandGate decides whether the caller in ctx may deploy a raw command into
// tenant (authz.Authorizer).
type CommandGate interface {
	MayDeployCommand(ctx context.Context, tenant string) error
}

// ErrTenantNotFound is returned for operations on a tenant that does not exist.
var ErrTenantNotFound = fmt.Errorf("tenant %w", ErrNotFound)

// conflictRetries bounds read-modify-write retries on a busy app.
const conflictRetries = 8

func (s *Service) checkTenant(ctx context.Context, tenant string) error {
	_, err := s.tenant(ctx, tenant)
	return err
}

// tenant reads a tenant; without a TenantSource every tenant exists with no
// limits.
func (s *Service) tenant(ctx context.Context, tenant string) (*tenants.Tenant, error) {
	if err := ValidName("tenant", tenant); err != nil {
		return nil, fmt.Errorf("tenant %q: %w", tenant, ErrTenantNotFound)
	}
	if s.Tenants == nil {
		return nil, nil
	}
	t, err := s.Tenants.Get(ctx, tenant)
	if errors.Is(err, tenants.ErrNotFound) {
		return nil, fmt.Errorf("tenant %q: %w", tenant, ErrTenantNotFound)
	}
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// writableTenant reads a tenant that may take new apps and revisions.
func (s *Service) writableTenant(ctx context.Context, tenant string) (*tenants.Tenant, error) {
	t, err := s.tenant(ctx, tenant)
	if err == nil && t != nil && t.Deleting {
		err = fmt.Errorf("%w: tenant %s is being deleted", ErrIllegalState, tenant)
	}
	return t, err
}

// CreateApp validates and stores a new app; the max_apps check and the write
// are one transaction.
func (s *Service) CreateApp(ctx context.Context, tenant string, spec AppSpec) (App, error) {
	t, err := s.writableTenant(ctx, tenant)
	if err != nil {
		return App{}, err
	}
	a, err := NewApp(tenant, spec, s.Store.Now().UTC())
	if err != nil {
		return App{}, err
	}
	var check QuotaCheck
	if t != nil {
		if err := checkReplicas(t.Quota, 0, a.Replicas); err != nil {
			return App{}, err
		}
		check = func(u Usage) error { return checkApps(t.Quota, u) }
	}
	if err := retryConflict(func() error { return s.Store.CreateApp(ctx, &a, check) }); err != nil {
		return App{}, err
	}
	return a, nil
}

// retryConflict runs a write again while it loses compare-and-swaps to
// concurrent writers.
func retryConflict(write func() error) error {
	for i := 0; ; i++ {
		err := write()
		if !errors.Is(err, ErrConflict) || i >= conflictRetries*4 {
			return err
		}
		backoff(i)
	}
}

// backoff pauses a writer that lost a compare-and-swap, a little longer each
// time and jittered, so concurrent writers stop colliding: the winner's
// transaction takes about a millisecond.
func backoff(attempt int) {
	time.Sleep(time.Duration(1+rand.IntN(2*(attempt+1))) * time.Millisecond)
}

// GetApp returns one app.
func (s *Service) GetApp(ctx context.Context, tenant, name string) (App, error) {
	if err := s.checkTenant(ctx, tenant); err != nil {
		return App{}, err
	}
	return s.Store.GetApp(ctx, tenant, name)
}

// ListApps returns a tenant's apps.
func (s *Service) ListApps(ctx context.Context, tenant string) ([]App, error) {
	if err := s.checkTenant(ctx, tenant); err != nil {
		return nil, err
	}
	return s.Store.ListApps(ctx, tenant)
}

// UpdateApp changes an app's settings; running replicas follow on the next
// reconcile (replica count) or the next deploy (everything else).
func (s *Service) UpdateApp(ctx context.Context, tenant, name string, spec AppSpec) (App, error) {
	t, err := s.tenant(ctx, tenant)
	if err != nil {
		return App{}, err
	}
	return s.retry(ctx, tenant, name, func(a *App) (Event, QuotaCheck, error) {
		if a.Deleting {
			return Event{}, nil, fmt.Errorf("%w: app %s/%s is being deleted", ErrIllegalState, tenant, name)
		}
		before := *a
		if err := a.Apply(spec, s.Store.Now().UTC()); err != nil {
			return Event{}, nil, err
		}
		var check QuotaCheck
		if t != nil && a.Replicas > before.Replicas {
			check = func(u Usage) error { return checkReplicas(t.Quota, u.Replicas, a.Replicas-before.Replicas) }
		}
		changes := SettingsChanged(before, *a)
		return Event{Type: EventAppUpdated, Message: settingsMessage(changes), Changes: changes}, check, nil
	})
}

// DeleteOptions say what happens to the players of an app being deleted.
// With neither, an app with live sessions is refused (ErrIllegalState,
// naming them).
type DeleteOptions struct {
	// Force deletes at once: every revision is retired, its players cut.
	Force bool
	// Drain deletes once the players have left: no new players, every
	// revision drains as after a deploy (reconnect_grace, drain_timeout),
	// and the app is removed when all are retired.
	Drain bool
}

// SessionSource counts a revision's sessions (endpoint.Sessions).
type SessionSource interface {
	Revision(tenant, app, rev string) Sessions
}

// DeleteApp marks an app for deletion: the reconciler retires (or, with
// Drain, drains) every revision, stops every replica, then removes the app.
// Deleting twice is fine; a Force after a Drain retires what still drains.
func (s *Service) DeleteApp(ctx context.Context, tenant, name string, opt DeleteOptions) (App, error) {
	if opt.Force && opt.Drain {
		return App{}, fmt.Errorf("%w: force and drain exclude each other", ErrInvalid)
	}
	if err := s.checkTenant(ctx, tenant); err != nil {
		return App{}, err
	}
	if !opt.Force && !opt.Drain {
		if err := s.refuseLive(ctx, tenant, name); err != nil {
			return App{}, err
		}
	}
	return s.retry(ctx, tenant, name, func(a *App) (Event, QuotaCheck, error) {
		if a.Deleting && (!a.DrainFirst || opt.Drain) {
			return Event{}, nil, errNoChange
		}
		a.Deleting, a.DrainFirst = true, opt.Drain
		a.UpdatedAt = s.Store.Now().UTC()
		if opt.Drain {
			return Event{Type: EventAppDeleting, Message: "app deletion requested: no new players; every revision drains, then the app is removed"}, nil, nil
		}
		return Event{Type: EventAppDeleting, Message: "app deletion requested: retiring every revision"}, nil, nil
	})
}

// refuseLive refuses to delete an app whose revisions hold sessions
// (connections or app-held leases), naming them.
func (s *Service) refuseLive(ctx context.Context, tenant, name string) error {
	if s.Sessions == nil {
		return nil
	}
	snap, err := s.Load(ctx, tenant, name)
	if err != nil {
		return err
	}
	var live []string
	total := 0
	for _, rev := range snap.Revisions {
		if rev.State.Terminal() {
			continue
		}
		n := s.Sessions.Revision(tenant, name, rev.ID)
		if !n.Known {
			return fmt.Errorf("%w: the sessions of app %s/%s are not known yet on this instance; try again in a few seconds, or delete with force", storeerr.ErrUnavailable, tenant, name)
		}
		if c := n.Connections + n.Leases; c > 0 {
			total += c
			live = append(live, fmt.Sprintf("revision %s: %d", rev.ID, c))
		}
	}
	if total == 0 {
		return nil
	}
	return fmt.Errorf("%w: app %s/%s has %d live sessions (%s); delete with force=true to cut them, or drain=true to delete it once they have left",
		ErrIllegalState, tenant, name, total, strings.Join(live, ", "))
}

var errNoChange = errors.New("no change")

// settingsMessage says an app_updated event's changes in words: one change
// with its values, several by name (the values are in the event's changes).
func settingsMessage(changes []SettingChange) string {
	if len(changes) == 0 {
		return "app settings written, none changed"
	}
	if len(changes) == 1 && changes[0].Field != "…" {
		c := changes[0]
		return "app settings changed: " + c.Field + " " + c.Old + " -> " + c.New
	}
	parts := make([]string, len(changes))
	for i, c := range changes {
		parts[i] = c.Field
		if c.Field == "…" {
			parts[i] = c.New
		}
	}
	return "app settings changed: " + strings.Join(parts, ", ")
}

func (s *Service) retry(ctx context.Context, tenant, name string, change func(*App) (Event, QuotaCheck, error)) (App, error) {
	for i := 0; ; i++ {
		a, err := s.Store.GetApp(ctx, tenant, name)
		if err != nil {
			return App{}, err
		}
		ev, check, err := change(&a)
		if errors.Is(err, errNoChange) {
			return a, nil
		}
		if err != nil {
			return App{}, err
		}
		err = s.Store.UpdateApp(ctx, a, ev, check)
		if errors.Is(err, ErrConflict) && i < conflictRetries {
			continue
		}
		if err != nil {
			return App{}, err
		}
		return s.Store.GetApp(ctx, tenant, name)
	}
}

// Deploy records a new revision of an app; the reconciler starts it beside the
// active one and activates it once healthy. A revision still pending or
// starting is superseded (retired) in the same transaction. On the process
// runtime an image is resolved through the catalog, and a raw command needs
// the caller's right to run one (CommandGate). The quota checks (replicas,
// stored bytes) and the write are one transaction.
func (s *Service) Deploy(ctx context.Context, tenant, name string, spec RevisionSpec) (Revision, error) {
	t, err := s.writableTenant(ctx, tenant)
	if err != nil {
		return Revision{}, err
	}
	if err := spec.Validate(); err != nil {
		return Revision{}, err
	}
	if s.RequireImage && spec.Image == "" {
		return Revision{}, fmt.Errorf("%w: this platform runs replicas on Kubernetes: a revision needs an image", ErrInvalid)
	}
	if spec, err = s.resolve(ctx, tenant, spec); err != nil {
		return Revision{}, err
	}
	if t != nil {
		if err := checkResources(t.Quota, spec.Resources); err != nil {
			return Revision{}, err
		}
	}
	for i := 0; ; i++ {
		snap, err := s.Store.Load(ctx, tenant, name)
		if err != nil {
			return Revision{}, err
		}
		var check QuotaCheck
		if t != nil {
			want := max(snap.App.Replicas, 1)
			check = func(u Usage) error {
				if err := checkReplicas(t.Quota, u.Replicas, want); err != nil {
					return fmt.Errorf("deploying %s/%s would start %d more replicas: %w", tenant, name, want, err)
				}
				return checkBytes(t.Quota, u, spec.Size())
			}
		}
		rev, err := s.Store.CreateRevision(ctx, snap, spec, check)
		if errors.Is(err, ErrConflict) && i < conflictRetries*4 {
			backoff(i)
			continue
		}
		return rev, err
	}
}

// resolve turns what a deploy names into what the runtime runs: on the
// process runtime (Images set), an image alone becomes the catalog's command
// for it, and a command the tenant wrote needs the right to run one.
func (s *Service) resolve(ctx context.Context, tenant string, spec RevisionSpec) (RevisionSpec, error) {
	if len(spec.Command) > 0 {
		if s.Commands != nil {
			if err := s.Commands.MayDeployCommand(ctx, tenant); err != nil {
				return spec, err
			}
		}
		return spec, nil
	}
	if s.Images == nil {
		return spec, nil
	}
	cmd, err := s.Images.Resolve(ctx, spec.Image)
	if err != nil {
		return spec, fmt.Errorf("%w: image %s cannot run here: %v (GET /api/v1/images lists the catalog)", ErrInvalid, spec.Image, err)
	}
	spec.Command = cmd
	return spec, nil
}

// Load returns an app with its revisions and replicas.
func (s *Service) Load(ctx context.Context, tenant, name string) (Snapshot, error) {
	if err := s.checkTenant(ctx, tenant); err != nil {
		return Snapshot{}, err
	}
	return s.Store.Load(ctx, tenant, name)
}

// Activate makes a draining revision active again (instant rollback) and turns
// the current active one draining, in one transaction. Its replicas keep
// running: nothing restarts.
func (s *Service) Activate(ctx context.Context, tenant, name, id string) (Revision, error) {
	if err := s.checkTenant(ctx, tenant); err != nil {
		return Revision{}, err
	}
	for i := 0; ; i++ {
		snap, err := s.Store.Load(ctx, tenant, name)
		if err != nil {
			return Revision{}, err
		}
		target, ok := snap.Revision(id)
		if !ok {
			return Revision{}, fmt.Errorf("revision %s/%s/%s: %w", tenant, name, id, ErrNotFound)
		}
		if err := CheckActivate(target); err != nil {
			return Revision{}, err
		}
		if target.State == Active {
			return target, nil
		}
		if snap.App.Deleting {
			return Revision{}, fmt.Errorf("%w: app %s/%s is being deleted", ErrIllegalState, tenant, name)
		}
		if n := readyReplicas(snap, id); n == 0 {
			return Revision{}, fmt.Errorf("%w: revision %s has no ready replica left to serve", ErrIllegalState, id)
		}
		changes := []Change{{Rev: target, To: Active, Reason: "re-activated by operator (rollback)"}}
		if cur, ok := snap.Active(); ok {
			changes = append(changes, Change{Rev: cur, To: Draining, Reason: "superseded by re-activated " + id})
		}
		out, err := s.Store.Transition(ctx, changes...)
		if errors.Is(err, ErrConflict) && i < conflictRetries {
			continue
		}
		if err != nil {
			return Revision{}, err
		}
		return out[0], nil
	}
}

// Retire forces a revision out of service: the reconciler stops its replicas
// (SIGTERM, shutdown_grace, SIGKILL) even if sessions remain.
func (s *Service) Retire(ctx context.Context, tenant, name, id string) (Revision, error) {
	if err := s.checkTenant(ctx, tenant); err != nil {
		return Revision{}, err
	}
	for i := 0; ; i++ {
		rev, err := s.Store.GetRevision(ctx, tenant, name, id)
		if err != nil {
			return Revision{}, err
		}
		if err := CheckRetire(rev); err != nil {
			return Revision{}, err
		}
		if rev.State.Terminal() {
			return rev, nil
		}
		out, err := s.Store.Transition(ctx, Change{Rev: rev, To: Retired, Reason: "retired by operator"})
		if errors.Is(err, ErrConflict) && i < conflictRetries {
			continue
		}
		if err != nil {
			return Revision{}, err
		}
		return out[0], nil
	}
}

// Events returns an app's activity log, oldest first.
func (s *Service) Events(ctx context.Context, tenant, name, after string, limit int) ([]Event, error) {
	if err := s.checkTenant(ctx, tenant); err != nil {
		return nil, err
	}
	if _, err := s.Store.GetApp(ctx, tenant, name); err != nil {
		return nil, err
	}
	return s.Store.ListEvents(ctx, tenant, name, after, limit)
}

func readyReplicas(snap Snapshot, rev string) int {
	n := 0
	for _, r := range snap.Replicas {
		if r.Revision == rev && r.State == ReplicaReady && !r.Stop {
			n++
		}
	}
	return n
}
