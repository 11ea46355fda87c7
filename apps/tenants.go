package apps

import (
	"context"
	"errors"
	"fmt"

	"github.com/discovery-platform/discovery/tenants"
)

// TenantService deletes tenants the only safe way: every app retired first,
// the tenant record and its role bindings removed once no app is left.
type TenantService struct {
	Apps    *Service
	Tenants *tenants.Store
	// OnGone runs when a deleted tenant's last app is gone (drop its roles).
	OnGone func(tenant string) error
}

// Delete marks a tenant deleting and asks every app of it to be deleted. It
// returns how many apps are being retired.
func (ts *TenantService) Delete(ctx context.Context, name string) (int, error) {
	if name == tenants.Default {
		return 0, fmt.Errorf("%w: the default tenant cannot be deleted", ErrIllegalState)
	}
	for i := 0; ; i++ {
		t, err := ts.Tenants.Get(ctx, name)
		if err != nil {
			return 0, err
		}
		if t.Deleting {
			break
		}
		t.Deleting = true
		if _, err = ts.Tenants.Update(ctx, t); errors.Is(err, tenants.ErrConflict) && i < conflictRetries {
			continue
		}
		if err != nil {
			return 0, err
		}
		break
	}
	list, err := ts.Apps.Store.ListApps(ctx, name)
	if err != nil {
		return 0, err
	}
	for _, a := range list {
		if _, err := ts.Apps.DeleteApp(ctx, name, a.Name, DeleteOptions{Force: true}); err != nil && !errors.Is(err, ErrNotFound) {
			return 0, err
		}
	}
	return len(list), nil
}

// FinishDeletions removes deleting tenants that have no app left.
func (ts *TenantService) FinishDeletions(ctx context.Context) error {
	list, err := ts.Tenants.List(ctx)
	if err != nil {
		return err
	}
	for _, t := range list {
		if !t.Deleting {
			continue
		}
		u, err := ts.Apps.Store.Usage(ctx, t.Name)
		if err != nil {
			continue
		}
		if u.Apps > 0 {
			// An app created while the deletion began (an instance that
			// had not heard of it yet) is deleted too.
			list, err := ts.Apps.Store.ListApps(ctx, t.Name)
			for _, a := range list {
				if !a.Deleting {
					if _, err := ts.Apps.DeleteApp(ctx, t.Name, a.Name, DeleteOptions{Force: true}); err != nil && !errors.Is(err, ErrNotFound) {
						return err
					}
				}
			}
			if err != nil {
				return err
			}
			continue
		}
		if ts.OnGone != nil {
			if err := ts.OnGone(t.Name); err != nil {
				return err
			}
		}
		if err := ts.Tenants.Delete(ctx, t); err != nil && !errors.Is(err, tenants.ErrConflict) {
			return err
		}
		if err := ts.Apps.Store.DeleteUsage(ctx, t.Name); err != nil {
			return err
		}
	}
	return nil
}
