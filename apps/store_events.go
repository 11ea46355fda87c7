package apps

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// AppendEvent adds a line to an app's activity log.
func (s *Store) AppendEvent(ctx context.Context, e Event) error {
	op, err := s.eventOp(ctx, e)
	if err != nil {
		return err
	}
	if _, err := s.kv.Do(ctx, op); err != nil {
		return fmt.Errorf("append event: %w", err)
	}
	return nil
}

// ListEvents returns an app's events in time order, those after the given id
// only when after is set, at most limit (newest kept when the log is longer).
func (s *Store) ListEvents(ctx context.Context, tenant, app, after string, limit int) ([]Event, error) {
	p := s.eventPrefix(tenant, app)
	if limit <= 0 || limit > MaxEventsPerApp {
		limit = MaxEventsPerApp
	}
	start := p
	if after != "" {
		start = p + after + "\x00"
	}
	resp, err := s.kv.Get(ctx, start, clientv3.WithRange(clientv3.GetPrefixRangeEnd(p)),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("list events %s/%s: %w", tenant, app, err)
	}
	out := make([]Event, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		if err := json.Unmarshal(kv.Value, &out[len(resp.Kvs)-1-i]); err != nil {
			return nil, fmt.Errorf("decode event %s: %w", kv.Key, err)
		}
	}
	return out, nil
}

// TrimEvents deletes an app's oldest events beyond MaxEventsPerApp.
func (s *Store) TrimEvents(ctx context.Context, tenant, app string) error {
	p := s.eventPrefix(tenant, app)
	cnt, err := s.kv.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("count events: %w", err)
	}
	extra := cnt.Count - MaxEventsPerApp
	if extra <= 0 {
		return nil
	}
	old, err := s.kv.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithLimit(extra))
	if err != nil || len(old.Kvs) == 0 {
		return err
	}
	last := string(old.Kvs[len(old.Kvs)-1].Key)
	_, err = s.kv.Delete(ctx, p, clientv3.WithRange(last+"\x00"))
	return err
}

// eventOp writes e, naming ctx's actor (ActorOf) unless e names one.
func (s *Store) eventOp(ctx context.Context, e Event) (clientv3.Op, error) {
	e.Message = truncate(e.Message, MaxEventMessage)
	if e.Actor == "" {
		e.Actor = ActorOf(ctx)
	}
	if e.Time.IsZero() {
		e.Time = s.Now().UTC()
	}
	if e.ID == "" {
		e.ID = fmt.Sprintf("%020d-%s", e.Time.UnixNano(), randomHex(2))
	}
	val, err := json.Marshal(e)
	if err != nil {
		return clientv3.Op{}, err
	}
	return clientv3.OpPut(s.eventKey(e), string(val)), nil
}
