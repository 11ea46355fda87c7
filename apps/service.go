package apps

import (
	"context"
	"errors"
	"fmt"

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
}

// TenantSource reads a tenant (implemented by tenants.Store).
type TenantSource interface {
	Get(ctx context.Context, name string) (tenants.Tenant, error)
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

// CreateApp validates and stores a new app.
func (s *Service) CreateApp(ctx context.Context, tenant string, spec AppSpec) (App, error) {
	t, err := s.writableTenant(ctx, tenant)
	if err != nil {
		return App{}, err
	}
	a, err := NewApp(tenant, spec, s.Store.Now().UTC())
	if err != nil {
		return App{}, err
	}
	if t != nil {
		n, err := s.Store.CountApps(ctx, tenant)
		if err != nil {
			return App{}, err
		}
		if err := checkApps(t.Quota, n); err != nil {
			return App{}, err
		}
		if err := checkReplicas(t.Quota, 0, a.Replicas); err != nil {
			return App{}, err
		}
	}
	if err := s.Store.CreateApp(ctx, a); err != nil {
		return App{}, err
	}
	return s.Store.GetApp(ctx, tenant, a.Name)
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
	return s.retry(ctx, tenant, name, func(a *App) (Event, error) {
		if a.Deleting {
			return Event{}, fmt.Errorf("%w: app %s/%s is being deleted", ErrIllegalState, tenant, name)
		}
		before := a.Replicas
		if err := a.Apply(spec, s.Store.Now().UTC()); err != nil {
			return Event{}, err
		}
		if t != nil && a.Replicas > before {
			total, err := s.Store.CountReplicas(ctx, tenant)
			if err != nil {
				return Event{}, err
			}
			if err := checkReplicas(t.Quota, total, a.Replicas-before); err != nil {
				return Event{}, err
			}
		}
		return Event{Type: EventAppUpdated, Message: "app settings changed"}, nil
	})
}

// DeleteApp marks an app for deletion: the reconciler retires every revision,
// stops every replica, then removes the app. Deleting twice is fine.
func (s *Service) DeleteApp(ctx context.Context, tenant, name string) (App, error) {
	if err := s.checkTenant(ctx, tenant); err != nil {
		return App{}, err
	}
	return s.retry(ctx, tenant, name, func(a *App) (Event, error) {
		if a.Deleting {
			return Event{}, errNoChange
		}
		a.Deleting = true
		a.UpdatedAt = s.Store.Now().UTC()
		return Event{Type: EventAppDeleting, Message: "app deletion requested: retiring every revision"}, nil
	})
}

var errNoChange = errors.New("no change")

func (s *Service) retry(ctx context.Context, tenant, name string, change func(*App) (Event, error)) (App, error) {
	for i := 0; ; i++ {
		a, err := s.Store.GetApp(ctx, tenant, name)
		if err != nil {
			return App{}, err
		}
		ev, err := change(&a)
		if errors.Is(err, errNoChange) {
			return a, nil
		}
		if err != nil {
			return App{}, err
		}
		err = s.Store.UpdateApp(ctx, a, ev)
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
// active one and activates it once healthy.
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
	if t != nil {
		if err := checkResources(t.Quota, spec.Resources); err != nil {
			return Revision{}, err
		}
	}
	for i := 0; ; i++ {
		a, err := s.Store.GetApp(ctx, tenant, name)
		if err != nil {
			return Revision{}, err
		}
		if t != nil {
			total, err := s.Store.CountReplicas(ctx, tenant)
			if err != nil {
				return Revision{}, err
			}
			if err := checkReplicas(t.Quota, total, max(a.Replicas, 1)); err != nil {
				return Revision{}, fmt.Errorf("deploying %s/%s would start %d more replicas: %w", tenant, name, max(a.Replicas, 1), err)
			}
		}
		rev, err := s.Store.CreateRevision(ctx, a, spec)
		if errors.Is(err, ErrConflict) && i < conflictRetries {
			continue
		}
		return rev, err
	}
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
