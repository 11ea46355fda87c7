package authz

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/casbin/casbin/v2/model"
	"github.com/casbin/casbin/v2/persist"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/internal/storeerr"
)

// adapter keeps casbin rules in etcd, one key per rule:
// {prefix}/authz/policy/{ptype}/{escaped rule} = JSON [ptype, v0, v1, ...].
// No maintained casbin adapter exists for etcd client v3, so this is ours.
type adapter struct {
	cli    clientv3.KV // errors translated (storeerr)
	prefix string      // ends in "/"
	// loaded is the etcd revision of the newest policy read; written that of
	// the newest policy write. A reload that read before our own write would
	// undo it in memory until the next reload: settle waits for that one.
	loaded, written atomic.Int64
}

func raise(v *atomic.Int64, rev int64) {
	for {
		cur := v.Load()
		if rev <= cur || v.CompareAndSwap(cur, rev) {
			return
		}
	}
}

var _ persist.Adapter = (*adapter)(nil)

func newAdapter(cli *clientv3.Client, prefix string) *adapter {
	return &adapter{cli: storeerr.KV(cli), prefix: path.Join(prefix, "authz", "policy") + "/"}
}

func (a *adapter) key(ptype string, rule []string) string {
	return a.prefix + ptype + "/" + url.PathEscape(strings.Join(rule, ","))
}

func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// LoadPolicy reads every rule into the model.
func (a *adapter) LoadPolicy(m model.Model) error {
	c, cancel := ctx()
	defer cancel()
	resp, err := a.cli.Get(c, a.prefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("load policy: %w", err)
	}
	defer raise(&a.loaded, resp.Header.Revision)
	for _, kv := range resp.Kvs {
		var rule []string
		if json.Unmarshal(kv.Value, &rule) != nil || len(rule) < 2 {
			continue
		}
		if err := persist.LoadPolicyArray(rule, m); err != nil {
			return err
		}
	}
	return nil
}

// SavePolicy writes the model as a diff against etcd, in transactions of at
// most 100 operations (etcd's default limit is 128 per transaction).
func (a *adapter) SavePolicy(m model.Model) error {
	want := map[string]string{}
	for _, sec := range []string{"p", "g"} {
		for ptype, ast := range m[sec] {
			for _, rule := range ast.Policy {
				b, _ := json.Marshal(append([]string{ptype}, rule...))
				want[a.key(ptype, rule)] = string(b)
			}
		}
	}
	c, cancel := ctx()
	defer cancel()
	resp, err := a.cli.Get(c, a.prefix, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	var ops []clientv3.Op
	have := map[string]bool{}
	for _, kv := range resp.Kvs {
		have[string(kv.Key)] = true
		if _, ok := want[string(kv.Key)]; !ok {
			ops = append(ops, clientv3.OpDelete(string(kv.Key)))
		}
	}
	for k, v := range want {
		if !have[k] {
			ops = append(ops, clientv3.OpPut(k, v))
		}
	}
	return a.commit(c, ops)
}

// commit applies ops in transactions of at most 100 operations (etcd's default
// limit is 128 per transaction).
func (a *adapter) commit(c context.Context, ops []clientv3.Op) error {
	for len(ops) > 0 {
		n := min(len(ops), 100)
		resp, err := a.cli.Txn(c).Then(ops[:n]...).Commit()
		if err != nil {
			return err
		}
		raise(&a.written, resp.Header.Revision)
		ops = ops[n:]
	}
	return nil
}

// AddPolicy stores one rule.
func (a *adapter) AddPolicy(_ string, ptype string, rule []string) error {
	b, _ := json.Marshal(append([]string{ptype}, rule...))
	c, cancel := ctx()
	defer cancel()
	resp, err := a.cli.Put(c, a.key(ptype, rule), string(b))
	if err == nil {
		raise(&a.written, resp.Header.Revision)
	}
	return err
}

// RemovePolicy deletes one rule.
func (a *adapter) RemovePolicy(_ string, ptype string, rule []string) error {
	c, cancel := ctx()
	defer cancel()
	resp, err := a.cli.Delete(c, a.key(ptype, rule))
	if err == nil {
		raise(&a.written, resp.Header.Revision)
	}
	return err
}

// RemoveFilteredPolicy deletes the rules of ptype whose fields from
// fieldIndex on match fieldValues ("" matches anything).
func (a *adapter) RemoveFilteredPolicy(_ string, ptype string, fieldIndex int, fieldValues ...string) error {
	c, cancel := ctx()
	defer cancel()
	resp, err := a.cli.Get(c, a.prefix+ptype+"/", clientv3.WithPrefix())
	if err != nil {
		return err
	}
	var ops []clientv3.Op
	for _, kv := range resp.Kvs {
		var rule []string
		if json.Unmarshal(kv.Value, &rule) != nil || len(rule) < 1 {
			continue
		}
		rule = rule[1:]
		match := true
		for i, v := range fieldValues {
			if v != "" && (fieldIndex+i >= len(rule) || rule[fieldIndex+i] != v) {
				match = false
				break
			}
		}
		if match {
			ops = append(ops, clientv3.OpDelete(string(kv.Key)))
		}
	}
	return a.commit(c, ops)
}

// rolesVersionKey is bumped by every change of role bindings made through
// setRoles: two concurrent changes compare it, so one of them re-reads.
func (a *adapter) rolesVersionKey() string {
	return strings.TrimSuffix(a.prefix, "policy/") + "roles-version"
}

// setRoles makes role the only role of subject in tenant ("" removes every
// role; subject "" means every subject of the tenant), in one transaction:
// another instance reloading meanwhile sees the old binding or the new one,
// never none, and two concurrent changes never leave a member with two roles.
// It reports whether anything changed.
func (a *adapter) setRoles(ctx context.Context, subject, tenant, role string) (bool, error) {
	vkey := a.rolesVersionKey()
	for i := 0; i < 16; i++ {
		resp, err := a.cli.Txn(ctx).Then(clientv3.OpGet(vkey), clientv3.OpGet(a.prefix+"g/", clientv3.WithPrefix())).Commit()
		if err != nil {
			return false, err
		}
		cmp := clientv3.Compare(clientv3.CreateRevision(vkey), "=", 0)
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			cmp = clientv3.Compare(clientv3.ModRevision(vkey), "=", kvs[0].ModRevision)
		}
		var ops []clientv3.Op
		have := false
		for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
			var rule []string
			if json.Unmarshal(kv.Value, &rule) != nil || len(rule) != 4 || rule[3] != tenant || subject != "" && rule[1] != subject {
				continue
			}
			if role != "" && rule[2] == role {
				have = true
				continue
			}
			ops = append(ops, clientv3.OpDelete(string(kv.Key)))
		}
		if role != "" && !have {
			b, _ := json.Marshal([]string{"g", subject, role, tenant})
			ops = append(ops, clientv3.OpPut(a.key("g", []string{subject, role, tenant}), string(b)))
		}
		if len(ops) == 0 {
			return false, nil
		}
		ops = append(ops, clientv3.OpPut(vkey, time.Now().UTC().Format(time.RFC3339Nano)))
		if len(ops) > 120 {
			// Never more than etcd's 128 operations per transaction: a
			// tenant with that many members is dropped a batch at a time.
			ops = append(ops[:119], clientv3.OpPut(vkey, time.Now().UTC().Format(time.RFC3339Nano)))
		}
		txn, err := a.cli.Txn(ctx).If(cmp).Then(ops...).Commit()
		if err != nil {
			return false, err
		}
		if txn.Succeeded {
			raise(&a.written, txn.Header.Revision)
			if len(ops) < 120 {
				return true, nil
			}
			i = -1 // a full batch: go on with the rest
		}
	}
	return false, fmt.Errorf("%w: role bindings changed concurrently too often; retry", ErrConflict)
}
