package apps

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/internal/storeerr"
)

// Tickets live under {prefix}/handoffs/{id}, on an etcd lease that outlives
// their TicketTTL by at most ticketLeaseSlack: tickets made close together
// share a lease (one grant per slack window, not per handoff). Expires says
// when one stops being valid; the lease only collects it.

const ticketLeaseSlack = 10 * time.Second

func (s *Store) ticketKey(id string) string { return path.Join(s.prefix, "handoffs", id) }

// ticketLease is the lease tickets made now share.
type ticketLease struct {
	mu      sync.Mutex
	id      clientv3.LeaseID
	granted time.Time
}

func (s *Store) ticketLeaseID(ctx context.Context) (clientv3.LeaseID, error) {
	tl := &s.tickets
	tl.mu.Lock()
	defer tl.mu.Unlock()
	now := s.Now()
	if tl.id != 0 && now.Sub(tl.granted) < ticketLeaseSlack {
		return tl.id, nil
	}
	grant, err := s.cli.Grant(ctx, int64((TicketTTL+ticketLeaseSlack)/time.Second)+1)
	if err != nil {
		return 0, fmt.Errorf("ticket lease: %w", storeerr.From(err))
	}
	tl.id, tl.granted = grant.ID, now
	return tl.id, nil
}

// IssueTicket stores a new ticket (t.ID and t.Expires are set here) and
// returns it.
func (s *Store) IssueTicket(ctx context.Context, t Ticket) (Ticket, error) {
	lease, err := s.ticketLeaseID(ctx)
	if err != nil {
		return Ticket{}, err
	}
	t.ID = NewTicketID()
	t.Expires = s.Now().Add(TicketTTL).UTC()
	t.Used = false
	val, err := json.Marshal(t)
	if err != nil {
		return Ticket{}, err
	}
	if _, err := s.kv.Put(ctx, s.ticketKey(t.ID), string(val), clientv3.WithLease(lease)); err != nil {
		return Ticket{}, fmt.Errorf("issue ticket: %w", err)
	}
	return t, nil
}

// Ticket returns an unused, unexpired ticket, or ErrGone.
func (s *Store) Ticket(ctx context.Context, id string) (Ticket, error) {
	t, _, err := s.ticket(ctx, id)
	return t, err
}

func (s *Store) ticket(ctx context.Context, id string) (Ticket, int64, error) {
	if !ValidTicketID(id) {
		return Ticket{}, 0, fmt.Errorf("ticket: %w", ErrGone)
	}
	resp, err := s.kv.Get(ctx, s.ticketKey(id))
	if err != nil {
		return Ticket{}, 0, fmt.Errorf("read ticket: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return Ticket{}, 0, fmt.Errorf("ticket unknown or expired: %w", ErrGone)
	}
	var t Ticket
	if err := json.Unmarshal(resp.Kvs[0].Value, &t); err != nil {
		return Ticket{}, 0, fmt.Errorf("ticket record: %w", ErrGone)
	}
	t.ID = id
	switch {
	case t.Used:
		return Ticket{}, 0, fmt.Errorf("ticket already used: %w", ErrGone)
	case !s.Now().Before(t.Expires):
		return Ticket{}, 0, fmt.Errorf("ticket expired: %w", ErrGone)
	}
	return t, resp.Kvs[0].ModRevision, nil
}

// UseTicket uses a ticket up for a connection to target: it must be unused,
// unexpired and name target, else ErrGone and nothing changes. Two clients
// presenting the same ticket at once: one wins.
func (s *Store) UseTicket(ctx context.Context, id string, target ReplicaID) (Ticket, error) {
	t, mod, err := s.ticket(ctx, id)
	if err != nil {
		return Ticket{}, err
	}
	if t.Target() != target {
		return Ticket{}, fmt.Errorf("ticket is for another replica: %w", ErrGone)
	}
	t.Used = true
	val, err := json.Marshal(t)
	if err != nil {
		return Ticket{}, err
	}
	key := s.ticketKey(id)
	// Keep the lease: the used record goes when it does.
	resp, err := s.kv.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", mod)).
		Then(clientv3.OpPut(key, string(val), clientv3.WithIgnoreLease())).
		Commit()
	if err != nil {
		return Ticket{}, fmt.Errorf("use ticket: %w", err)
	}
	if !resp.Succeeded {
		return Ticket{}, fmt.Errorf("ticket already used: %w", ErrGone)
	}
	return t, nil
}

// VoidTicket removes a ticket (its handoff failed).
func (s *Store) VoidTicket(ctx context.Context, id string) error {
	if _, err := s.kv.Delete(ctx, s.ticketKey(id)); err != nil {
		return fmt.Errorf("void ticket: %w", err)
	}
	return nil
}

// VoidTicketsTo removes the unused, unexpired tickets that move players to
// target, a replica that is gone: those players can no longer arrive (they
// fall back to get-endpoint). It returns the tickets it removed, so a second
// call, or one racing a client that uses a ticket, counts none twice.
func (s *Store) VoidTicketsTo(ctx context.Context, target ReplicaID) ([]Ticket, error) {
	resp, err := s.kv.Get(ctx, s.ticketKey("")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read tickets: %w", err)
	}
	var voided []Ticket
	for _, kv := range resp.Kvs {
		var t Ticket
		if json.Unmarshal(kv.Value, &t) != nil || t.Used || t.Target() != target || !s.Now().Before(t.Expires) {
			continue
		}
		key := string(kv.Key)
		t.ID = path.Base(key)
		txn, err := s.kv.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(key)).
			Commit()
		if err != nil {
			return voided, fmt.Errorf("void ticket: %w", err)
		}
		if txn.Succeeded {
			voided = append(voided, t)
		}
	}
	return voided, nil
}
