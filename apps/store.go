package apps

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/internal/storeerr"
)

// Store keeps apps, revisions, replicas and events in etcd. Each exported method
// is one transaction; every change compares the mod revision it read, so two
// writers never overwrite each other: the loser gets ErrConflict and re-reads.
//
// Keys (prefix defaults to "/discovery"):
//
//	{prefix}/apps/{tenant}/{app}
//	{prefix}/revisions/{tenant}/{app}/{revision}
//	{prefix}/replicas/{tenant}/{app}/{revision}/{replica}
//	{prefix}/events/{tenant}/{app}/{time-ordered id}
//	{prefix}/usage/{tenant}  what the tenant holds (store_usage.go)
//	{prefix}/handoffs/{ticket}  handoff tickets (store_handoffs.go)
//
// Every write that creates or deletes an app, revision or replica changes
// its tenant's usage in the same transaction, so quota checks cannot race.
type Store struct {
	cli *clientv3.Client // leases and watches
	// kv is cli's key-value side, its errors translated (storeerr).
	kv     clientv3.KV
	prefix string
	// Now is the store's clock (injected in tests).
	Now func() time.Time
	// locks serialises each tenant's usage writes within this process.
	locks sync.Map
	// tickets is the lease handoff tickets made now share.
	tickets ticketLease
}

// NewStore returns a store over an etcd client under a key prefix.
func NewStore(cli *clientv3.Client, prefix string) *Store {
	if prefix == "" {
		prefix = "/discovery"
	}
	return &Store{cli: cli, kv: storeerr.KV(cli), prefix: strings.TrimSuffix(prefix, "/"), Now: time.Now}
}

func (s *Store) appKey(t, a string) string      { return path.Join(s.prefix, "apps", t, a) }
func (s *Store) appsPrefix(t string) string     { return path.Join(s.prefix, "apps", t) + "/" }
func (s *Store) revPrefix(t, a string) string   { return path.Join(s.prefix, "revisions", t, a) + "/" }
func (s *Store) revKey(t, a, id string) string  { return s.revPrefix(t, a) + id }
func (s *Store) replPrefix(t, a string) string  { return path.Join(s.prefix, "replicas", t, a) + "/" }
func (s *Store) eventPrefix(t, a string) string { return path.Join(s.prefix, "events", t, a) + "/" }
func (s *Store) replKey(r Replica) string {
	return s.replPrefix(r.Tenant, r.App) + r.Revision + "/" + r.ID
}
func (s *Store) eventKey(e Event) string       { return s.eventPrefix(e.Tenant, e.App) + e.ID }
func (s *Store) watchPrefixes() []string       { return []string{"apps", "revisions", "replicas"} }
func (s *Store) kindPrefix(kind string) string { return path.Join(s.prefix, kind) + "/" }

// Snapshot is an app with everything under it, read at one etcd revision.
type Snapshot struct {
	App       App
	Revisions []Revision // newest first
	Replicas  []Replica
	// ReadAt is the etcd revision it was read at.
	ReadAt int64
}

// Revision returns the revision with the given id.
func (s Snapshot) Revision(id string) (Revision, bool) {
	for _, r := range s.Revisions {
		if r.ID == id {
			return r, true
		}
	}
	return Revision{}, false
}

// Active returns the app's active revision, if any.
func (s Snapshot) Active() (Revision, bool) {
	for _, r := range s.Revisions {
		if r.State == Active {
			return r, true
		}
	}
	return Revision{}, false
}

// CreateApp stores a new app; ErrExists if the name is taken. check (may be
// nil) sees the tenant's usage in the same transaction. It sets the app's
// ModRevision to the one it was stored at.
func (s *Store) CreateApp(ctx context.Context, a *App, check QuotaCheck) error {
	key := s.appKey(a.Tenant, a.Name)
	val, err := json.Marshal(a)
	if err != nil {
		return err
	}
	ev, err := s.eventOp(ctx, Event{Type: EventAppCreated, Tenant: a.Tenant, App: a.Name, Message: "app created"})
	if err != nil {
		return err
	}
	defer s.tenantLock(a.Tenant)()
	u, err := s.readUsage(ctx, a.Tenant)
	if err != nil {
		return err
	}
	if check != nil {
		if err := check(u.Usage); err != nil {
			return err
		}
	}
	u.Apps++
	resp, err := s.kv.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0), u.cmp).
		Then(clientv3.OpPut(key, string(val)), ev, u.put()).
		Else(clientv3.OpGet(key, clientv3.WithCountOnly())).
		Commit()
	if err != nil {
		return fmt.Errorf("create app %s/%s: %w", a.Tenant, a.Name, err)
	}
	if !resp.Succeeded {
		if resp.Responses[0].GetResponseRange().Count > 0 {
			return fmt.Errorf("app %s/%s: %w", a.Tenant, a.Name, ErrExists)
		}
		return fmt.Errorf("create app %s/%s: %w", a.Tenant, a.Name, ErrConflict)
	}
	a.ModRevision = resp.Header.Revision
	return nil
}

// GetApp reads one app.
func (s *Store) GetApp(ctx context.Context, tenant, name string) (App, error) {
	resp, err := s.kv.Get(ctx, s.appKey(tenant, name))
	if err != nil {
		return App{}, fmt.Errorf("get app %s/%s: %w", tenant, name, err)
	}
	if len(resp.Kvs) == 0 {
		return App{}, fmt.Errorf("app %s/%s: %w", tenant, name, ErrNotFound)
	}
	return decodeApp(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
}

// ListApps returns a tenant's apps sorted by name.
func (s *Store) ListApps(ctx context.Context, tenant string) ([]App, error) {
	resp, err := s.kv.Get(ctx, s.appsPrefix(tenant), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("list apps of %s: %w", tenant, err)
	}
	out := make([]App, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		a, err := decodeApp(kv.Value, kv.ModRevision)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// ListAllApps returns every app of every tenant (the reconciler's resync).
func (s *Store) ListAllApps(ctx context.Context) ([]Ref, error) {
	p := s.kindPrefix("apps")
	resp, err := s.kv.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	out := make([]Ref, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		parts := strings.Split(strings.TrimPrefix(string(kv.Key), p), "/")
		if len(parts) == 2 {
			out = append(out, Ref{Tenant: parts[0], App: parts[1]})
		}
	}
	return out, nil
}

// UpdateApp writes an app read earlier, if nobody changed it since (ErrConflict
// otherwise), with an event. check (may be nil) sees the tenant's usage, which
// the transaction then compares.
func (s *Store) UpdateApp(ctx context.Context, a App, ev Event, check QuotaCheck) error {
	val, err := json.Marshal(a)
	if err != nil {
		return err
	}
	ev.Tenant, ev.App = a.Tenant, a.Name
	evOp, err := s.eventOp(ctx, ev)
	if err != nil {
		return err
	}
	key := s.appKey(a.Tenant, a.Name)
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", a.ModRevision)}
	if check != nil {
		defer s.tenantLock(a.Tenant)()
		u, err := s.readUsage(ctx, a.Tenant)
		if err != nil {
			return err
		}
		if err := check(u.Usage); err != nil {
			return err
		}
		cmps = append(cmps, u.cmp)
	}
	resp, err := s.kv.Txn(ctx).If(cmps...).Then(clientv3.OpPut(key, string(val)), evOp).Commit()
	if err != nil {
		return fmt.Errorf("update app %s/%s: %w", a.Tenant, a.Name, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("update app %s/%s: %w", a.Tenant, a.Name, ErrConflict)
	}
	return nil
}

// DeleteAppData removes an app and everything under it. The reconciler calls it
// once no replica of the app runs any more, with the snapshot it read: the
// transaction fails (ErrConflict) if a revision or replica changed since.
func (s *Store) DeleteAppData(ctx context.Context, snap Snapshot) error {
	a := snap.App
	key := s.appKey(a.Tenant, a.Name)
	defer s.tenantLock(a.Tenant)()
	u, err := s.readUsage(ctx, a.Tenant)
	if err != nil {
		return err
	}
	u.Apps--
	u.Replicas -= len(snap.Replicas)
	for _, r := range snap.Revisions {
		u.Revisions--
		u.Bytes -= r.Spec().Size()
	}
	u.Usage = u.Usage.floor()
	resp, err := s.kv.Txn(ctx).
		If(
			clientv3.Compare(clientv3.ModRevision(key), "=", a.ModRevision), u.cmp,
			clientv3.Compare(clientv3.ModRevision(s.revPrefix(a.Tenant, a.Name)), "<", snap.ReadAt+1).WithPrefix(),
			clientv3.Compare(clientv3.ModRevision(s.replPrefix(a.Tenant, a.Name)), "<", snap.ReadAt+1).WithPrefix(),
		).
		Then(
			clientv3.OpDelete(key),
			clientv3.OpDelete(s.revPrefix(a.Tenant, a.Name), clientv3.WithPrefix()),
			clientv3.OpDelete(s.replPrefix(a.Tenant, a.Name), clientv3.WithPrefix()),
			clientv3.OpDelete(s.eventPrefix(a.Tenant, a.Name), clientv3.WithPrefix()),
			u.put(),
		).Commit()
	if err != nil {
		return fmt.Errorf("delete app %s/%s: %w", a.Tenant, a.Name, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("delete app %s/%s: %w", a.Tenant, a.Name, ErrConflict)
	}
	return nil
}

// SupersededReason is the reason a revision still on its way to active is
// retired with when a newer deploy replaces it.
const SupersededReason = "superseded by %s before it became active"

// CreateRevision records a new pending revision as the app's next generation.
// It compares the app's mod revision, so two deploys never share a generation,
// and retires any revision of the app still pending or starting in the same
// transaction (an app has at most one revision in flight; the reconciler stops
// the superseded one's replicas). check (may be nil) sees the tenant's usage.
func (s *Store) CreateRevision(ctx context.Context, snap Snapshot, spec RevisionSpec, check QuotaCheck) (Revision, error) {
	a := snap.App
	if a.Deleting {
		return Revision{}, fmt.Errorf("%w: app %s/%s is being deleted", ErrIllegalState, a.Tenant, a.Name)
	}
	now := s.Now().UTC()
	a.Generation++
	a.UpdatedAt = now
	rev := Revision{
		ID: randomHex(4), Tenant: a.Tenant, App: a.Name, Generation: a.Generation,
		Image: spec.Image, Command: spec.Command, Env: spec.Env, Resources: spec.Resources,
		Label: spec.Label, Note: spec.Note, State: Pending, CreatedAt: now,
	}
	appVal, err := json.Marshal(a)
	if err != nil {
		return Revision{}, err
	}
	revVal, err := json.Marshal(rev)
	if err != nil {
		return Revision{}, err
	}
	what := spec.Image
	if what == "" {
		what = strings.Join(spec.Command, " ")
	}
	ev, err := s.eventOp(ctx, Event{Type: EventDeployed, Tenant: a.Tenant, App: a.Name, Revision: rev.ID, To: Pending,
		Message: fmt.Sprintf("revision %s (generation %d%s) deployed: %s", rev.ID, rev.Generation, labelled(spec.Label), truncate(what, 200))})
	if err != nil {
		return Revision{}, err
	}
	var superseded []Change
	for _, old := range snap.Revisions {
		if old.InFlight() {
			superseded = append(superseded, Change{Rev: old, To: Retired, Reason: fmt.Sprintf(SupersededReason, rev.ID)})
		}
	}
	cmps, ops, _, err := s.transitionOps(ctx, now, superseded)
	if err != nil {
		return Revision{}, err
	}
	defer s.tenantLock(a.Tenant)()
	u, err := s.readUsage(ctx, a.Tenant)
	if err != nil {
		return Revision{}, err
	}
	if check != nil {
		if err := check(u.Usage); err != nil {
			return Revision{}, err
		}
	}
	u.Revisions++
	u.Bytes += spec.Size()
	appKey, revKey := s.appKey(a.Tenant, a.Name), s.revKey(a.Tenant, a.Name, rev.ID)
	cmps = append(cmps, u.cmp,
		clientv3.Compare(clientv3.ModRevision(appKey), "=", a.ModRevision),
		clientv3.Compare(clientv3.CreateRevision(revKey), "=", 0))
	ops = append(ops, clientv3.OpPut(appKey, string(appVal)), clientv3.OpPut(revKey, string(revVal)), ev, u.put())
	resp, err := s.kv.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return Revision{}, fmt.Errorf("deploy %s/%s: %w", a.Tenant, a.Name, err)
	}
	if !resp.Succeeded {
		return Revision{}, fmt.Errorf("deploy %s/%s: %w", a.Tenant, a.Name, ErrConflict)
	}
	rev.ModRevision = resp.Header.Revision
	return rev, nil
}

// GetRevision reads one revision.
func (s *Store) GetRevision(ctx context.Context, tenant, app, id string) (Revision, error) {
	resp, err := s.kv.Get(ctx, s.revKey(tenant, app, id))
	if err != nil {
		return Revision{}, fmt.Errorf("get revision %s/%s/%s: %w", tenant, app, id, err)
	}
	if len(resp.Kvs) == 0 {
		return Revision{}, fmt.Errorf("revision %s/%s/%s: %w", tenant, app, id, ErrNotFound)
	}
	return decodeRevision(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
}

// Load reads an app with its revisions and replicas at one etcd revision.
func (s *Store) Load(ctx context.Context, tenant, app string) (Snapshot, error) {
	resp, err := s.kv.Txn(ctx).Then(
		clientv3.OpGet(s.appKey(tenant, app)),
		clientv3.OpGet(s.revPrefix(tenant, app), clientv3.WithPrefix()),
		clientv3.OpGet(s.replPrefix(tenant, app), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return Snapshot{}, fmt.Errorf("load %s/%s: %w", tenant, app, err)
	}
	appKvs := resp.Responses[0].GetResponseRange().Kvs
	if len(appKvs) == 0 {
		return Snapshot{}, fmt.Errorf("app %s/%s: %w", tenant, app, ErrNotFound)
	}
	snap := Snapshot{ReadAt: resp.Header.Revision}
	if snap.App, err = decodeApp(appKvs[0].Value, appKvs[0].ModRevision); err != nil {
		return Snapshot{}, err
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		r, err := decodeRevision(kv.Value, kv.ModRevision)
		if err != nil {
			return Snapshot{}, err
		}
		snap.Revisions = append(snap.Revisions, r)
	}
	sort.Slice(snap.Revisions, func(i, j int) bool { return snap.Revisions[i].Generation > snap.Revisions[j].Generation })
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		r, err := decodeReplica(kv.Value, kv.ModRevision)
		if err != nil {
			return Snapshot{}, fmt.Errorf("%s: %w", kv.Key, err)
		}
		snap.Replicas = append(snap.Replicas, r)
	}
	return snap, nil
}

// Change is one lifecycle transition to apply: the revision as read, its new
// state and why.
type Change struct {
	Rev    Revision
	To     RevisionState
	Reason string
}

// Transition applies one or more lifecycle changes in a single transaction, each
// compared against the mod revision it was read at, each logged as an event.
// Activation uses two: the new revision to active, the old one to draining.
func (s *Store) Transition(ctx context.Context, changes ...Change) ([]Revision, error) {
	cmps, ops, out, err := s.transitionOps(ctx, s.Now().UTC(), changes)
	if err != nil {
		return nil, err
	}
	resp, err := s.kv.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return nil, fmt.Errorf("transition: %w", err)
	}
	if !resp.Succeeded {
		return nil, fmt.Errorf("transition: %w", ErrConflict)
	}
	for i := range out {
		out[i].ModRevision = resp.Header.Revision
	}
	return out, nil
}

// transitionOps builds the comparisons and writes of lifecycle changes.
func (s *Store) transitionOps(ctx context.Context, now time.Time, changes []Change) ([]clientv3.Cmp, []clientv3.Op, []Revision, error) {
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	out := make([]Revision, 0, len(changes))
	for _, c := range changes {
		if !CanTransition(c.Rev.State, c.To) {
			return nil, nil, nil, fmt.Errorf("revision %s %s -> %s: %w", c.Rev.ID, c.Rev.State, c.To, ErrIllegalState)
		}
		r := c.Rev
		from := r.State
		r.State, r.Reason = c.To, c.Reason
		t := now
		switch c.To {
		case Starting:
			r.StartedAt = &t
		case Active:
			r.ActivatedAt, r.DrainingAt = &t, nil
		case Draining:
			r.DrainingAt = &t
		case Retired, Failed:
			r.FinishedAt = &t
		}
		val, err := json.Marshal(r)
		if err != nil {
			return nil, nil, nil, err
		}
		key := s.revKey(r.Tenant, r.App, r.ID)
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", c.Rev.ModRevision))
		ev, err := s.eventOp(ctx, Event{Type: EventTransition, Tenant: r.Tenant, App: r.App, Revision: r.ID, From: from, To: c.To,
			Message: fmt.Sprintf("revision %s %s -> %s: %s", r.ID, from, c.To, c.Reason)})
		if err != nil {
			return nil, nil, nil, err
		}
		ops = append(ops, clientv3.OpPut(key, string(val)), ev)
		out = append(out, r)
	}
	return cmps, ops, out, nil
}

// SaveRevisionStatus writes a revision's bookkeeping (crash count) by CAS. Its
// state changes only through Transition.
func (s *Store) SaveRevisionStatus(ctx context.Context, r Revision) (Revision, error) {
	val, err := json.Marshal(r)
	if err != nil {
		return r, err
	}
	key := s.revKey(r.Tenant, r.App, r.ID)
	resp, err := s.kv.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", r.ModRevision)).
		Then(clientv3.OpPut(key, string(val))).Commit()
	if err != nil {
		return r, fmt.Errorf("save revision %s: %w", r.ID, err)
	}
	if !resp.Succeeded {
		return r, fmt.Errorf("save revision %s: %w", r.ID, ErrConflict)
	}
	r.ModRevision = resp.Header.Revision
	return r, nil
}

// DeleteRevision removes a terminal revision's record (history trimming).
func (s *Store) DeleteRevision(ctx context.Context, r Revision) error {
	key := s.revKey(r.Tenant, r.App, r.ID)
	defer s.tenantLock(r.Tenant)()
	u, err := s.readUsage(ctx, r.Tenant)
	if err != nil {
		return err
	}
	u.Revisions--
	u.Bytes -= r.Spec().Size()
	u.Usage = u.Usage.floor()
	resp, err := s.kv.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", r.ModRevision), u.cmp).
		Then(clientv3.OpDelete(key), u.put()).Commit()
	if err != nil {
		return fmt.Errorf("delete revision %s: %w", r.ID, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("delete revision %s: %w", r.ID, ErrConflict)
	}
	return nil
}

// CreateReplica records a new replica (ErrConflict if its id is taken), with
// an optional event, counting it in the tenant's usage. check (may be nil:
// adopting a replica that already runs) sees the usage first.
func (s *Store) CreateReplica(ctx context.Context, r Replica, ev *Event, check QuotaCheck) (Replica, error) {
	key := s.replKey(r)
	ops, err := s.replicaPutOps(ctx, r, ev)
	if err != nil {
		return r, err
	}
	defer s.tenantLock(r.Tenant)()
	u, err := s.readUsage(ctx, r.Tenant)
	if err != nil {
		return r, err
	}
	if check != nil {
		if err := check(u.Usage); err != nil {
			return r, err
		}
	}
	u.Replicas++
	resp, err := s.kv.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0), u.cmp).
		Then(append(ops, u.put())...).Commit()
	if err != nil {
		return r, fmt.Errorf("create replica %s: %w", r.ID, err)
	}
	if !resp.Succeeded {
		return r, fmt.Errorf("create replica %s: %w", r.ID, ErrConflict)
	}
	r.ModRevision = resp.Header.Revision
	return r, nil
}

// PutReplica updates a replica record by CAS (a record with ModRevision 0 is
// created, as CreateReplica without a check), with an optional event in the
// same transaction.
func (s *Store) PutReplica(ctx context.Context, r Replica, ev *Event) (Replica, error) {
	if r.ModRevision == 0 {
		return s.CreateReplica(ctx, r, ev, nil)
	}
	key := s.replKey(r)
	ops, err := s.replicaPutOps(ctx, r, ev)
	if err != nil {
		return r, err
	}
	resp, err := s.kv.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", r.ModRevision)).Then(ops...).Commit()
	if err != nil {
		return r, fmt.Errorf("put replica %s: %w", r.ID, err)
	}
	if !resp.Succeeded {
		return r, fmt.Errorf("put replica %s: %w", r.ID, ErrConflict)
	}
	r.ModRevision = resp.Header.Revision
	return r, nil
}

// replicaPutOps writes a replica record and, when ev is set, its event.
func (s *Store) replicaPutOps(ctx context.Context, r Replica, ev *Event) ([]clientv3.Op, error) {
	val, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	ops := []clientv3.Op{clientv3.OpPut(s.replKey(r), string(val))}
	if ev != nil {
		op, err := s.replicaEventOp(ctx, r, *ev)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	return ops, nil
}

func (s *Store) replicaEventOp(ctx context.Context, r Replica, ev Event) (clientv3.Op, error) {
	ev.Tenant, ev.App, ev.Revision, ev.Replica = r.Tenant, r.App, r.Revision, r.ID
	return s.eventOp(ctx, ev)
}

// DeleteReplica removes a replica record once its process is gone.
func (s *Store) DeleteReplica(ctx context.Context, r Replica, ev *Event) error {
	key := s.replKey(r)
	ops := []clientv3.Op{clientv3.OpDelete(key)}
	if ev != nil {
		op, err := s.replicaEventOp(ctx, r, *ev)
		if err != nil {
			return err
		}
		ops = append(ops, op)
	}
	defer s.tenantLock(r.Tenant)()
	u, err := s.readUsage(ctx, r.Tenant)
	if err != nil {
		return err
	}
	u.Replicas--
	u.Usage = u.Usage.floor()
	resp, err := s.kv.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", r.ModRevision), u.cmp).
		Then(append(ops, u.put())...).Commit()
	if err != nil {
		return fmt.Errorf("delete replica %s: %w", r.ID, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("delete replica %s: %w", r.ID, ErrConflict)
	}
	return nil
}

func decodeApp(b []byte, mod int64) (App, error) {
	var a App
	if err := json.Unmarshal(b, &a); err != nil {
		return App{}, fmt.Errorf("decode app: %w", err)
	}
	a.ModRevision = mod
	return a, nil
}

func decodeRevision(b []byte, mod int64) (Revision, error) {
	var r Revision
	if err := json.Unmarshal(b, &r); err != nil {
		return Revision{}, fmt.Errorf("decode revision: %w", err)
	}
	r.ModRevision = mod
	return r, nil
}

func decodeReplica(b []byte, mod int64) (Replica, error) {
	var r Replica
	if err := json.Unmarshal(b, &r); err != nil {
		return Replica{}, fmt.Errorf("decode replica: %w", err)
	}
	r.ModRevision = mod
	return r, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewReplicaID returns a fresh replica id (6 hex characters).
func NewReplicaID() string { return randomHex(3) }

// labelled is ", label X" for a deploy's event, "" without a label.
func labelled(label string) string {
	if label == "" {
		return ""
	}
	return ", label " + label
}
