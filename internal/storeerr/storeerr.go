// Package storeerr turns what the etcd client returns when the store itself
// is in trouble into two errors every domain store shares: the store cannot
// be reached in time, or it is full (etcd's NOSPACE alarm). Stores wrap
// their clients with KV, so callers above them (the API's one error table)
// see these sentinels and never an etcd or gRPC type.
package storeerr

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinels of a store in trouble; nothing was changed when a write returns
// one of them.
var (
	ErrUnavailable = errors.New("store: unavailable")
	ErrFull        = errors.New("store: full")
)

// From wraps err in the sentinel it amounts to, keeping it for the log; any
// other error comes back as it is.
func From(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrFull):
		return err
	case errors.Is(err, rpctypes.ErrNoSpace):
		return fmt.Errorf("%w: %w", ErrFull, err)
	case unavailable(err):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// unavailable reports an etcd that cannot be reached in time.
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if s, ok := status.FromError(e); ok && (s.Code() == codes.Unavailable || s.Code() == codes.DeadlineExceeded) {
			return true
		}
	}
	return false
}

// KV wraps an etcd KV so every error it returns has gone through From.
func KV(kv clientv3.KV) clientv3.KV { return wrapped{kv} }

type wrapped struct{ kv clientv3.KV }

func (w wrapped) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	r, err := w.kv.Put(ctx, key, val, opts...)
	return r, From(err)
}

func (w wrapped) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	r, err := w.kv.Get(ctx, key, opts...)
	return r, From(err)
}

func (w wrapped) GetStream(ctx context.Context, key string, opts ...clientv3.OpOption) (clientv3.GetStreamChan, error) {
	r, err := w.kv.GetStream(ctx, key, opts...)
	return r, From(err)
}

func (w wrapped) Delete(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.DeleteResponse, error) {
	r, err := w.kv.Delete(ctx, key, opts...)
	return r, From(err)
}

func (w wrapped) Compact(ctx context.Context, rev int64, opts ...clientv3.CompactOption) (*clientv3.CompactResponse, error) {
	r, err := w.kv.Compact(ctx, rev, opts...)
	return r, From(err)
}

func (w wrapped) Do(ctx context.Context, op clientv3.Op) (clientv3.OpResponse, error) {
	r, err := w.kv.Do(ctx, op)
	return r, From(err)
}

func (w wrapped) Txn(ctx context.Context) clientv3.Txn { return txn{w.kv.Txn(ctx)} }

type txn struct{ t clientv3.Txn }

func (t txn) If(cs ...clientv3.Cmp) clientv3.Txn   { return txn{t.t.If(cs...)} }
func (t txn) Then(ops ...clientv3.Op) clientv3.Txn { return txn{t.t.Then(ops...)} }
func (t txn) Else(ops ...clientv3.Op) clientv3.Txn { return txn{t.t.Else(ops...)} }
func (t txn) Commit() (*clientv3.TxnResponse, error) {
	r, err := t.t.Commit()
	return r, From(err)
}
