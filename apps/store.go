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
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
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
type Store struct {
	cli    *clientv3.Client
	prefix string
	// Now is the store's clock (injected in tests).
	Now func() time.Time
}

// NewStore returns a store over an etcd client under a key prefix.
func NewStore(cli *clientv3.Client, prefix string) *Store {
	if prefix == "" {
		prefix = "/discovery"
	}
	return &Store{cli: cli, prefix: strings.TrimSuffix(prefix, "/"), Now: time.Now}
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

// CreateApp stores a new app; ErrExists if the name is taken.
func (s *Store) CreateApp(ctx context.Context, a App) error {
	key := s.appKey(a.Tenant, a.Name)
	val, err := json.Marshal(a)
	if err != nil {
		return err
	}
	ev, err := s.eventOp(Event{Type: EventAppCreated, Tenant: a.Tenant, App: a.Name, Message: "app created"})
	if err != nil {
		return err
	}
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val)), ev).
		Commit()
	if err != nil {
		return fmt.Errorf("create app %s/%s: %w", a.Tenant, a.Name, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("app %s/%s: %w", a.Tenant, a.Name, ErrExists)
	}
	return nil
}

// GetApp reads one app.
func (s *Store) GetApp(ctx context.Context, tenant, name string) (App, error) {
	resp, err := s.cli.Get(ctx, s.appKey(tenant, name))
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
	resp, err := s.cli.Get(ctx, s.appsPrefix(tenant), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
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
	resp, err := s.cli.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithKeysOnly())
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

// CountApps returns how many apps a tenant has.
func (s *Store) CountApps(ctx context.Context, tenant string) (int, error) {
	resp, err := s.cli.Get(ctx, s.appsPrefix(tenant), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("count apps of %s: %w", tenant, err)
	}
	return int(resp.Count), nil
}

// CountReplicas returns how many replica records a tenant has over all its
// apps and revisions, stopping ones included: what counts against max_replicas.
func (s *Store) CountReplicas(ctx context.Context, tenant string) (int, error) {
	resp, err := s.cli.Get(ctx, path.Join(s.prefix, "replicas", tenant)+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("count replicas of %s: %w", tenant, err)
	}
	return int(resp.Count), nil
}

// UpdateApp writes an app read earlier, if nobody changed it since (ErrConflict
// otherwise), with an event.
func (s *Store) UpdateApp(ctx context.Context, a App, ev Event) error {
	val, err := json.Marshal(a)
	if err != nil {
		return err
	}
	ev.Tenant, ev.App = a.Tenant, a.Name
	evOp, err := s.eventOp(ev)
	if err != nil {
		return err
	}
	key := s.appKey(a.Tenant, a.Name)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", a.ModRevision)).
		Then(clientv3.OpPut(key, string(val)), evOp).
		Commit()
	if err != nil {
		return fmt.Errorf("update app %s/%s: %w", a.Tenant, a.Name, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("update app %s/%s: %w", a.Tenant, a.Name, ErrConflict)
	}
	return nil
}

// DeleteAppData removes an app and everything under it. The reconciler calls it
// once no replica of the app runs any more.
func (s *Store) DeleteAppData(ctx context.Context, a App) error {
	key := s.appKey(a.Tenant, a.Name)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", a.ModRevision)).
		Then(
			clientv3.OpDelete(key),
			clientv3.OpDelete(s.revPrefix(a.Tenant, a.Name), clientv3.WithPrefix()),
			clientv3.OpDelete(s.replPrefix(a.Tenant, a.Name), clientv3.WithPrefix()),
			clientv3.OpDelete(s.eventPrefix(a.Tenant, a.Name), clientv3.WithPrefix()),
		).Commit()
	if err != nil {
		return fmt.Errorf("delete app %s/%s: %w", a.Tenant, a.Name, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("delete app %s/%s: %w", a.Tenant, a.Name, ErrConflict)
	}
	return nil
}

// CreateRevision records a new pending revision as the app's next generation.
// It compares the app's mod revision, so two deploys never share a generation.
func (s *Store) CreateRevision(ctx context.Context, a App, spec RevisionSpec) (Revision, error) {
	if a.Deleting {
		return Revision{}, fmt.Errorf("%w: app %s/%s is being deleted", ErrIllegalState, a.Tenant, a.Name)
	}
	now := s.Now().UTC()
	a.Generation++
	a.UpdatedAt = now
	rev := Revision{
		ID: randomHex(4), Tenant: a.Tenant, App: a.Name, Generation: a.Generation,
		Image: spec.Image, Command: spec.Command, Env: spec.Env, Resources: spec.Resources,
		State: Pending, CreatedAt: now,
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
	ev, err := s.eventOp(Event{Type: EventDeployed, Tenant: a.Tenant, App: a.Name, Revision: rev.ID, To: Pending,
		Message: fmt.Sprintf("revision %s (generation %d) deployed: %s", rev.ID, rev.Generation, truncate(what, 200))})
	if err != nil {
		return Revision{}, err
	}
	appKey, revKey := s.appKey(a.Tenant, a.Name), s.revKey(a.Tenant, a.Name, rev.ID)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(appKey), "=", a.ModRevision),
			clientv3.Compare(clientv3.CreateRevision(revKey), "=", 0)).
		Then(clientv3.OpPut(appKey, string(appVal)), clientv3.OpPut(revKey, string(revVal)), ev).
		Commit()
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
	resp, err := s.cli.Get(ctx, s.revKey(tenant, app, id))
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
	resp, err := s.cli.Txn(ctx).Then(
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
	var snap Snapshot
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
		var r Replica
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return Snapshot{}, fmt.Errorf("decode replica %s: %w", kv.Key, err)
		}
		r.ModRevision = kv.ModRevision
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
	now := s.Now().UTC()
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	out := make([]Revision, 0, len(changes))
	for _, c := range changes {
		if !CanTransition(c.Rev.State, c.To) {
			return nil, fmt.Errorf("revision %s %s -> %s: %w", c.Rev.ID, c.Rev.State, c.To, ErrIllegalState)
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
			return nil, err
		}
		key := s.revKey(r.Tenant, r.App, r.ID)
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", c.Rev.ModRevision))
		ev, err := s.eventOp(Event{Type: EventTransition, Tenant: r.Tenant, App: r.App, Revision: r.ID, From: from, To: c.To,
			Message: fmt.Sprintf("revision %s %s -> %s: %s", r.ID, from, c.To, c.Reason)})
		if err != nil {
			return nil, err
		}
		ops = append(ops, clientv3.OpPut(key, string(val)), ev)
		out = append(out, r)
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
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

// SaveRevisionStatus writes a revision's bookkeeping (crash count) by CAS. Its
// state changes only through Transition.
func (s *Store) SaveRevisionStatus(ctx context.Context, r Revision) (Revision, error) {
	val, err := json.Marshal(r)
	if err != nil {
		return r, err
	}
	key := s.revKey(r.Tenant, r.App, r.ID)
	resp, err := s.cli.Txn(ctx).
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
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", r.ModRevision)).
		Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return fmt.Errorf("delete revision %s: %w", r.ID, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("delete revision %s: %w", r.ID, ErrConflict)
	}
	return nil
}

// PutReplica creates (ModRevision 0) or updates a replica record by CAS, with
// an optional event in the same transaction.
func (s *Store) PutReplica(ctx context.Context, r Replica, ev *Event) (Replica, error) {
	val, err := json.Marshal(r)
	if err != nil {
		return r, err
	}
	key := s.replKey(r)
	cmp := clientv3.Compare(clientv3.ModRevision(key), "=", r.ModRevision)
	ops := []clientv3.Op{clientv3.OpPut(key, string(val))}
	if ev != nil {
		ev.Tenant, ev.App, ev.Revision, ev.Replica = r.Tenant, r.App, r.Revision, r.ID
		op, err := s.eventOp(*ev)
		if err != nil {
			return r, err
		}
		ops = append(ops, op)
	}
	resp, err := s.cli.Txn(ctx).If(cmp).Then(ops...).Commit()
	if err != nil {
		return r, fmt.Errorf("put replica %s: %w", r.ID, err)
	}
	if !resp.Succeeded {
		return r, fmt.Errorf("put replica %s: %w", r.ID, ErrConflict)
	}
	r.ModRevision = resp.Header.Revision
	return r, nil
}

// DeleteReplica removes a replica record once its process is gone.
func (s *Store) DeleteReplica(ctx context.Context, r Replica, ev *Event) error {
	key := s.replKey(r)
	ops := []clientv3.Op{clientv3.OpDelete(key)}
	if ev != nil {
		ev.Tenant, ev.App, ev.Revision, ev.Replica = r.Tenant, r.App, r.Revision, r.ID
		op, err := s.eventOp(*ev)
		if err != nil {
			return err
		}
		ops = append(ops, op)
	}
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", r.ModRevision)).
		Then(ops...).Commit()
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

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewReplicaID returns a fresh replica id (6 hex characters).
func NewReplicaID() string { return randomHex(3) }
