package apps

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Incident is something that happened to the platform rather than to one app
// (its store was unreachable, or full). It is told to every app's activity
// log once it is over: during it nothing could be written.
type Incident struct {
	Type    EventType `json:"type"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Message string    `json:"message"`
}

// incidentSlack: instances see one incident at slightly different moments
// (each from its own probe); views closer than this are one incident.
const incidentSlack = 10 * time.Second

// incidentBatch apps' events go in one transaction (etcd allows 128 ops).
const incidentBatch = 50

// RecordIncident appends an event about the incident to every app's log,
// once however many instances saw it: {prefix}/incidents/{type} holds the
// last one recorded, the first instance to claim an incident there
// (compare-and-swap) writes the events, and an instance whose view overlaps
// the claimed one skips. It reports whether this call recorded it. Logs stay
// bounded: each app's is trimmed to MaxEventsPerApp.
func (s *Store) RecordIncident(ctx context.Context, in Incident) (bool, error) {
	claimed, err := s.claimIncident(ctx, in)
	if err != nil || !claimed {
		return false, err
	}
	refs, err := s.ListAllApps(ctx)
	if err != nil {
		return true, err
	}
	for i := 0; i < len(refs); i += incidentBatch {
		batch := refs[i:min(i+incidentBatch, len(refs))]
		if err := s.appendToApps(ctx, batch, in); err != nil {
			return true, err
		}
	}
	for _, r := range refs {
		if err := s.TrimEvents(ctx, r.Tenant, r.App); err != nil {
			return true, fmt.Errorf("trim events of %s/%s: %w", r.Tenant, r.App, err)
		}
	}
	return true, nil
}

func (s *Store) claimIncident(ctx context.Context, in Incident) (bool, error) {
	key := path.Join(s.prefix, "incidents", string(in.Type))
	val, err := json.Marshal(in)
	if err != nil {
		return false, err
	}
	for {
		resp, err := s.kv.Get(ctx, key)
		if err != nil {
			return false, fmt.Errorf("read incident %s: %w", in.Type, err)
		}
		var mod int64
		if len(resp.Kvs) == 1 {
			var last Incident
			if err := json.Unmarshal(resp.Kvs[0].Value, &last); err == nil &&
				!in.Start.After(last.End.Add(incidentSlack)) && !last.Start.After(in.End.Add(incidentSlack)) {
				return false, nil // another instance recorded this one
			}
			mod = resp.Kvs[0].ModRevision
		}
		txn, err := s.kv.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", mod)).
			Then(clientv3.OpPut(key, string(val))).Commit()
		if err != nil {
			return false, fmt.Errorf("claim incident %s: %w", in.Type, err)
		}
		if txn.Succeeded {
			return true, nil
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
	}
}

// appendToApps writes the incident's event to a batch of apps in one
// transaction, guarded by each app still existing: an event written after
// its app was deleted would never be cleaned up. If one of them is gone the
// others are written one by one.
func (s *Store) appendToApps(ctx context.Context, refs []Ref, in Incident) error {
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	for _, r := range refs {
		op, err := s.eventOp(ctx, Event{Time: in.End.UTC(), Type: in.Type, Tenant: r.Tenant, App: r.App, Message: in.Message})
		if err != nil {
			return err
		}
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.appKey(r.Tenant, r.App)), ">", 0))
		ops = append(ops, op)
	}
	txn, err := s.kv.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("record incident %s: %w", in.Type, err)
	}
	if txn.Succeeded || len(refs) == 1 {
		return nil
	}
	for _, r := range refs {
		if err := s.appendToApps(ctx, []Ref{r}, in); err != nil {
			return err
		}
	}
	return nil
}
