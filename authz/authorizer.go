package authz

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/internal/etcdmirror"
	"github.com/discovery-platform/discovery/internal/storeerr"
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
	{RoleOwner, "tokens", Write}, {RoleOwner, "notices", Read},
	// deployer: deploys and operates apps.
	{RoleDeployer, "apps", "*"}, {RoleDeployer, "revisions", "*"}, {RoleDeployer, "events", Read}, {RoleDeployer, "logs", Read},
	{RoleDeployer, "leases", "*"}, {RoleDeployer, "tenant", Read}, {RoleDeployer, "quota", Read}, {RoleDeployer, "notices", Read},
	// viewer: reads.
	{RoleViewer, "apps", Read}, {RoleViewer, "revisions", Read}, {RoleViewer, "events", Read}, {RoleViewer, "logs", Read},
	{RoleViewer, "tenant", Read}, {RoleViewer, "quota", Read}, {RoleViewer, "leases", Read}, {RoleViewer, "notices", Read},
}

// capabilityMay is what a replica's lease capability may do, on its own
// revision only: take leases, hand players off, read its drain notices.
var capabilityMay = map[string]string{"leases": Write, "handoffs": Write, "notices": Read}

// ValidRole reports whether role can be granted in a tenant.
func ValidRole(role string) bool {
	return role == RoleOwner || role == RoleDeployer || role == RoleViewer
}

// Authorizer answers "may subject do action on object in tenant?" from the
// casbin policy in etcd, reloaded whenever it changes (on every instance).
type Authorizer struct {
	Tokens *Tokens
	// Trust says which tenants may deploy raw commands (nil: none but admins).
	Trust    TenantTrust
	enforcer *casbin.SyncedEnforcer
	adapter  *adapter
	mirrors  []*etcdmirror.Mirror
	cli      *clientv3.Client
	kv       clientv3.KV // cli's key-value side, errors translated
	prefix   string
	log      *slog.Logger

	reloads chan struct{}
	// running is set while Run keeps the policy current.
	running atomic.Bool
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
	a := &Authorizer{Tokens: tokens, enforcer: e, adapter: ad, cli: cli, kv: storeerr.KV(cli), prefix: prefix, log: log, reloads: make(chan struct{}, 1)}
	a.mirrors = []*etcdmirror.Mirror{
		{Cli: cli, Prefix: path.Join(prefix, "authz", "policy") + "/", Log: log, OnChange: func(map[string][]byte) { a.reload() }},
		{Cli: cli, Prefix: path.Join(prefix, "authz", "revoked") + "/", Log: log, OnChange: a.revocations},
	}
	return a, nil
}

// Run keeps the policy and revocation list current until ctx ends.
func (a *Authorizer) Run(ctx context.Context) {
	a.running.Store(true)
	defer a.running.Store(false)
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

// scopedMatcher is the model's matcher without the platform-wide grants: a
// token scoped to a tenant gets only the roles its subject holds there.
const scopedMatcher = `g(r.sub, p.sub, r.dom) && (p.obj == "*" || r.obj == p.obj) && (p.act == "*" || r.act == p.act)`

// allowed evaluates the policy for an unscoped subject.
func (a *Authorizer) allowed(subject, tenant, object, action string) bool {
	ok, err := a.enforcer.Enforce(subject, tenant, object, action)
	if err != nil {
		a.log.Error("policy evaluation failed", "err", err)
		return false
	}
	return ok
}

// Decide is the one decision point: may p do r? nil means yes; otherwise an
// error wrapping ErrForbidden that says why. A lease capability may take
// leases on its own revision only; a token scoped to a tenant gets its
// subject's role in that tenant and nothing else; an unscoped token gets
// every role its subject holds, the platform-wide admin role included.
func (a *Authorizer) Decide(p Principal, r Request) error {
	if r.Tenant == "" {
		r.Tenant = Platform
	}
	deny := func(why string) error {
		return fmt.Errorf("%w: %s may not %s %s in %s%s", ErrForbidden, p, r.Action, r.Object, tenantLabel(r.Tenant), why)
	}
	if p.Revision != nil {
		if capabilityMay[r.Object] == r.Action && *p.Revision == (RevisionRef{r.Tenant, r.App, r.Revision}) {
			return nil
		}
		return deny("")
	}
	if p.Subject == "" {
		return deny("")
	}
	if p.Tenant != "" {
		if r.Tenant != p.Tenant {
			return deny(": the token is scoped to tenant " + p.Tenant)
		}
		ok, err := a.enforcer.EnforceWithMatcher(scopedMatcher, p.Subject, r.Tenant, r.Object, r.Action)
		if err != nil {
			a.log.Error("policy evaluation failed", "err", err)
			return deny("")
		}
		if !ok {
			return deny("")
		}
		return nil
	}
	if !a.allowed(p.Subject, r.Tenant, r.Object, r.Action) {
		return deny("")
	}
	return nil
}

func tenantLabel(t string) string {
	if t == Platform {
		return "the platform"
	}
	return "tenant " + t
}

// IsAdmin reports whether p has a platform admin's rights: an unscoped token
// of an admin subject.
func (a *Authorizer) IsAdmin(p Principal) bool {
	return p.Tenant == "" && p.Revision == nil && p.Subject != "" && a.isAdminSubject(p.Subject)
}

func (a *Authorizer) isAdminSubject(subject string) bool {
	return a.allowed(subject, Platform, "tenants", Write)
}

// rank orders roles: a member may hand out roles up to its own.
func rank(role string) int {
	switch role {
	case RoleViewer:
		return 1
	case RoleDeployer:
		return 2
	case RoleOwner:
		return 3
	case RoleAdmin:
		return 4
	}
	return 0
}

// GrantAs gives subject a role in tenant on p's behalf: p must be allowed to
// manage the tenant's members (a platform admin, or an owner) and may not
// grant a role above its own.
func (a *Authorizer) GrantAs(p Principal, subject, role, tenant string) error {
	if err := a.Decide(p, Request{Tenant: tenant, Object: "members", Action: Write}); err != nil {
		return err
	}
	if !ValidRole(role) {
		return fmt.Errorf("%w: role %q: want owner, deployer or viewer", ErrInvalid, role)
	}
	if !a.IsAdmin(p) {
		if mine := a.RoleIn(p.Subject, tenant); rank(role) > rank(mine) {
			return fmt.Errorf("%w: %s is %s of tenant %s and cannot grant the role %s", ErrForbidden, p, mine, tenant, role)
		}
	}
	return a.Grant(subject, role, tenant)
}

// IssueAs mints a token on p's behalf. A platform admin mints for any
// subject, scoped to a tenant or not. Anyone else mints only tokens scoped to
// a tenant where p may write tokens (its owners), for a member of that tenant
// whose role is not above p's own, and never for a platform admin.
func (a *Authorizer) IssueAs(p Principal, subject, tenant string, ttl time.Duration) (string, Claims, error) {
	if !a.IsAdmin(p) {
		if tenant == "" {
			return "", Claims{}, fmt.Errorf("%w: only a platform admin mints unscoped tokens; name the tenant the token is for in \"tenant\"", ErrForbidden)
		}
		if err := a.Decide(p, Request{Tenant: tenant, Object: "tokens", Action: Write}); err != nil {
			return "", Claims{}, err
		}
		if a.isAdminSubject(subject) {
			return "", Claims{}, fmt.Errorf("%w: %s is a platform admin; only a platform admin mints its tokens", ErrForbidden, subject)
		}
		role := a.RoleIn(subject, tenant)
		if role == "" {
			return "", Claims{}, fmt.Errorf("%w: %s is not a member of tenant %s", ErrForbidden, subject, tenant)
		}
		if mine := a.RoleIn(p.Subject, tenant); rank(role) > rank(mine) {
			return "", Claims{}, fmt.Errorf("%w: %s is %s of tenant %s and %s is %s", ErrForbidden, p, mine, tenant, subject, role)
		}
	}
	return a.Tokens.Issue(subject, tenant, ttl)
}

// TenantTrust tells whether a platform admin allowed a tenant to deploy raw
// commands on the process runtime (tenants.Store).
type TenantTrust interface {
	CommandsAllowed(ctx context.Context, tenant string) (bool, error)
}

// MayDeployCommand decides whether the caller in ctx may deploy a raw command
// into tenant: on the process runtime a command runs on the platform's own
// machine, so it is a platform admin's right, which an admin may extend to a
// trusted tenant (allow_commands). Others deploy images from the catalog.
func (a *Authorizer) MayDeployCommand(ctx context.Context, tenant string) error {
	p, ok := PrincipalFrom(ctx)
	if !ok {
		return fmt.Errorf("%w: no caller to authorise a command", ErrForbidden)
	}
	if a.IsAdmin(p) {
		return nil
	}
	if a.Trust != nil {
		allowed, err := a.Trust.CommandsAllowed(ctx, tenant)
		if err != nil {
			return err
		}
		if allowed {
			return nil
		}
	}
	return fmt.Errorf("%w: deploying a command runs it on the platform's machine: a platform admin's right, not granted to tenant %s; deploy an image from the catalog (GET /api/v1/images), or ask an admin to allow commands for the tenant", ErrForbidden, tenant)
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
	ctx, cancel := ctx()
	defer cancel()
	changed, err := a.adapter.setRoles(ctx, subject, tenant, role)
	if err != nil {
		return err
	}
	if changed {
		a.settleOrReload()
	}
	return nil
}

// settleOrReload makes this instance's policy hold its own latest write:
// through the watch when it runs (settle), else by reloading now.
func (a *Authorizer) settleOrReload() {
	if a.running.Load() {
		a.settle()
		return
	}
	a.reload()
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
	if subject == "" {
		return false, fmt.Errorf("%w: subject is required", ErrInvalid)
	}
	ctx, cancel := ctx()
	defer cancel()
	changed, err := a.adapter.setRoles(ctx, subject, tenant, "")
	if changed {
		a.settleOrReload()
	}
	return changed, err
}

// DropTenant removes every role binding of a tenant (when it is deleted).
func (a *Authorizer) DropTenant(tenant string) error {
	ctx, cancel := ctx()
	defer cancel()
	changed, err := a.adapter.setRoles(ctx, "", tenant, "")
	if changed {
		a.settleOrReload()
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
		return storeerr.From(err)
	}
	_, err = a.kv.Put(ctx, path.Join(a.prefix, "authz", "revoked", id), expires.UTC().Format(time.RFC3339), clientv3.WithLease(lease.ID))
	return err
}

// Changed receives after each policy reload (tests).
func (a *Authorizer) Changed() <-chan struct{} { return a.reloads }
