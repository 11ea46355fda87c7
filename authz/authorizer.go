package authz

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/internal/etcdmirror"
)

// Roles. admin is platform-wide (domain "*"); the others are per tenant.
const (
	RoleAdmin    = "admin"
	RoleOwner    = "owner"
	RoleDeployer = "deployer"
	RoleViewer   = "viewer"
)

// Platform is the domain of platform-wide objects (tenants, tokens).
const Platform = "*"

// Actions.
const (
	Read  = "read"
	Write = "write"
)

// modelText is RBAC with domains: a subject has a role in a tenant (or in "*"
// for the platform admin); rules give a role actions on objects.
const modelText = `
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = (g(r.sub, p.sub, r.dom) || g(r.sub, p.sub, "*")) && (p.obj == "*" || r.obj == p.obj) && (p.act == "*" || r.act == p.act)
`

// builtin are the rules of the four roles: who may do what.
var builtin = [][]string{
	{RoleAdmin, "*", "*"},
	// owner: everything in its tenant but the quota and the tenant itself.
	{RoleOwner, "apps", "*"}, {RoleOwner, "revisions", "*"}, {RoleOwner, "events", Read}, {RoleOwner, "logs", Read},
	{RoleOwner, "leases", "*"}, {RoleOwner, "tenant", Read}, {RoleOwner, "members", "*"}, {RoleOwner, "quota", Read},
	{RoleOwner, "tokens", Write},
	// deployer: deploys and operates apps.
	{RoleDeployer, "apps", "*"}, {RoleDeployer, "revisions", "*"}, {RoleDeployer, "events", Read}, {RoleDeployer, "logs", Read},
	{RoleDeployer, "leases", "*"}, {RoleDeployer, "tenant", Read}, {RoleDeployer, "quota", Read},
	// viewer: reads.
	{RoleViewer, "apps", Read}, {RoleViewer, "revisions", Read}, {RoleViewer, "events", Read}, {RoleViewer, "logs", Read},
	{RoleViewer, "tenant", Read}, {RoleViewer, "quota", Read},
}

// ValidRole reports whether role can be granted in a tenant.
func ValidRole(role string) bool {
	return role == RoleOwner || role == RoleDeployer || role == RoleViewer
}

// Authorizer answers "may subject do action on object in tenant?" from the
// casbin policy in etcd, reloaded whenever it changes (on every instance).
type Authorizer struct {
	Tokens   *Tokens
	enforcer *casbin.SyncedEnforcer
	adapter  *adapter
	mirrors  []*etcdmirror.Mirror
	cli      *clientv3.Client
	prefix   string
	log      *slog.Logger

	reloads chan struct{}
	mu      sync.Mutex
	loaded  time.Time
}

// NewAuthorizer loads the policy from etcd, adding the built-in role rules if
// they are missing. Run keeps it current.
func NewAuthorizer(cli *clientv3.Client, prefix string, tokens *Tokens, log *slog.Logger) (*Authorizer, error) {
	if log == nil {
		log = slog.Default()
	}
	prefix = strings.TrimSuffix(prefix, "/")
	m, err := model.NewModelFromString(modelText)
	if err != nil {
		return nil, err
	}
	ad := newAdapter(cli, prefix)
	e, err := casbin.NewSyncedEnforcer(m, ad)
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	for _, rule := range builtin {
		if ok, _ := e.HasPolicy(rule); !ok {
			if _, err := e.AddPolicy(rule); err != nil {
				return nil, fmt.Errorf("seed policy: %w", err)
			}
		}
	}
	a := &Authorizer{Tokens: tokens, enforcer: e, adapter: ad, cli: cli, prefix: prefix, log: log, reloads: make(chan struct{}, 1)}
	a.mirrors = []*etcdmirror.Mirror{
		{Cli: cli, Prefix: path.Join(prefix, "authz", "policy") + "/", Log: log, OnChange: func(map[string][]byte) { a.reload() }},
		{Cli: cli, Prefix: path.Join(prefix, "authz", "revoked") + "/", Log: log, OnChange: a.revocations},
	}
	return a, nil
}

// Run keeps the policy and revocation list current until ctx ends.
func (a *Authorizer) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, m := range a.mirrors {
		wg.Add(1)
		go func() { defer wg.Done(); m.Run(ctx) }()
	}
	wg.Wait()
}

func (a *Authorizer) reload() {
	if err := a.enforcer.LoadPolicy(); err != nil {
		a.log.Error("policy reload failed; keeping the previous policy", "err", err)
		return
	}
	a.mu.Lock()
	a.loaded = time.Now()
	a.mu.Unlock()
	select {
	case a.reloads <- struct{}{}:
	default:
	}
}

func (a *Authorizer) revocations(kvs map[string][]byte) {
	ids := make(map[string]time.Time, len(kvs))
	for k, v := range kvs {
		exp, _ := time.Parse(time.RFC3339, string(v))
		ids[path.Base(k)] = exp
	}
	a.Tokens.setRevoked(ids)
}

// Allowed reports whether subject may do action on object in tenant (Platform
// for platform-wide objects).
func (a *Authorizer) Allowed(subject, tenant, object, action string) bool {
	ok, err := a.enforcer.Enforce(subject, tenant, object, action)
	if err != nil {
		a.log.Error("policy evaluation failed", "err", err)
		return false
	}
	return ok
}

// IsAdmin reports whether subject is a platform admin.
func (a *Authorizer) IsAdmin(subject string) bool {
	return a.Allowed(subject, Platform, "tenants", Write)
}

// Grant gives subject a role in tenant, replacing any role it had there.
func (a *Authorizer) Grant(subject, role, tenant string) error {
	if tenant == Platform {
		if role != RoleAdmin {
			return fmt.Errorf("%w: only the admin role is platform-wide", ErrInvalid)
		}
	} else if !ValidRole(role) {
		return fmt.Errorf("%w: role %q: want owner, deployer or viewer", ErrInvalid, role)
	}
	if subject == "" || strings.ContainsAny(subject, ", \t\r\n") || len(subject) > 256 {
		return fmt.Errorf("%w: subject must be 1-256 characters without spaces or commas", ErrInvalid)
	}
	for _, r := range a.enforcer.GetRolesForUserInDomain(subject, tenant) {
		if r != role {
			if _, err := a.enforcer.RemoveGroupingPolicy(subject, r, tenant); err != nil {
				return err
			}
		}
	}
	if ok, _ := a.enforcer.HasGroupingPolicy(subject, role, tenant); ok {
		return nil
	}
	if _, err := a.enforcer.AddGroupingPolicy(subject, role, tenant); err != nil {
		return err
	}
	a.settle()
	return nil
}

// settle waits (briefly) until a policy reload has read our own latest write,
// so a reload that started before it cannot leave this instance without it:
// the caller's next request sees the change.
func (a *Authorizer) settle() {
	if len(a.mirrors) == 0 {
		return
	}
	deadline := time.Now().Add(2 * time.Second)
	for a.adapter.loaded.Load() < a.adapter.written.Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// RevokeRoles takes every role subject has in tenant away.
func (a *Authorizer) RevokeRoles(subject, tenant string) (bool, error) {
	ok, err := a.enforcer.RemoveFilteredGroupingPolicy(0, subject, "", tenant)
	if err == nil {
		a.settle()
	}
	return ok, err
}

// DropTenant removes every role binding of a tenant (when it is deleted).
func (a *Authorizer) DropTenant(tenant string) error {
	_, err := a.enforcer.RemoveFilteredGroupingPolicy(2, tenant)
	if err == nil {
		a.settle()
	}
	return err
}

// Member is a subject's role in a tenant.
type Member struct {
	Subject string `json:"subject"`
	Role    string `json:"role"`
}

// Members lists a tenant's members sorted by subject.
func (a *Authorizer) Members(tenant string) []Member {
	rules, _ := a.enforcer.GetFilteredGroupingPolicy(2, tenant)
	out := make([]Member, 0, len(rules))
	for _, r := range rules {
		out = append(out, Member{Subject: r[0], Role: r[1]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Subject < out[j].Subject })
	return out
}

// RoleIn returns subject's role in tenant ("" if none).
func (a *Authorizer) RoleIn(subject, tenant string) string {
	roles := a.enforcer.GetRolesForUserInDomain(subject, tenant)
	if len(roles) == 0 {
		return ""
	}
	return roles[0]
}

// RevokeToken puts a token id on the revocation list until the token would
// have expired anyway (the entry lives under an etcd lease); a zero expiry
// keeps it for the longest token lifetime.
func (a *Authorizer) RevokeToken(ctx context.Context, id string, expires time.Time) error {
	if id == "" || len(id) > 64 || strings.ContainsAny(id, "/ ") {
		return fmt.Errorf("%w: token id", ErrInvalid)
	}
	if expires.IsZero() {
		expires = time.Now().Add(MaxTokenTTL)
	}
	ttl := int64(time.Until(expires)/time.Second) + 60
	if ttl < 60 {
		ttl = 60
	}
	lease, err := a.cli.Grant(ctx, ttl)
	if err != nil {
		return err
	}
	_, err = a.cli.Put(ctx, path.Join(a.prefix, "authz", "revoked", id), expires.UTC().Format(time.RFC3339), clientv3.WithLease(lease.ID))
	return err
}

// Changed receives after each policy reload (tests).
func (a *Authorizer) Changed() <-chan struct{} { return a.reloads }
