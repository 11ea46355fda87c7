package apps

import (
	"context"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Watch sends the app of every changed app, revision or replica key, and a zero
// Ref when the watch had to restart and everything should be re-read. It runs
// until ctx ends; the channel is closed then.
func (s *Store) Watch(ctx context.Context) <-chan Ref {
	out := make(chan Ref, 256)
	go func() {
		defer close(out)
		root := s.prefix + "/"
		var rev int64
		for ctx.Err() == nil {
			opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithKeysOnly()}
			if rev > 0 {
				opts = append(opts, clientv3.WithRev(rev+1))
			}
			wch := s.cli.Watch(clientv3.WithRequireLeader(ctx), root, opts...)
			for resp := range wch {
				if err := resp.Err(); err != nil {
					// Compacted or lost leader: start over from now and ask for a
					// full resync, so nothing that happened meanwhile is missed.
					rev = 0
					break
				}
				rev = resp.Header.Revision
				for _, ev := range resp.Events {
					if ref, ok := s.refOf(string(ev.Kv.Key)); ok {
						select {
						case out <- ref:
						case <-ctx.Done():
							return
						}
					}
				}
			}
			select {
			case out <- Ref{}:
			case <-ctx.Done():
				return
			}
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func (s *Store) refOf(key string) (Ref, bool) {
	for _, kind := range s.watchPrefixes() {
		p := s.kindPrefix(kind)
		if strings.HasPrefix(key, p) {
			parts := strings.Split(strings.TrimPrefix(key, p), "/")
			if len(parts) >= 2 {
				return Ref{Tenant: parts[0], App: parts[1]}, true
			}
		}
	}
	return Ref{}, false
}
