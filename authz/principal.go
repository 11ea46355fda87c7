package authz

import (
	"context"
	"fmt"
)

// Principal is who makes a call: the subject of a token, scoped to one tenant
// or not, or a replica holding its revision's lease capability. Every
// decision of the Authorizer takes one; nothing decides on a bare subject.
type Principal struct {
	// Subject is the token's subject ("" for a lease capability).
	Subject string
	// Tenant is the token's scope. A token minted by a tenant's owner is bound
	// to that tenant: it grants nothing outside it, whatever roles its subject
	// holds elsewhere, and never a platform admin's rights. "" is an unscoped
	// token, which only a platform admin mints.
	Tenant string
	// TokenID identifies the token (revocation, logs).
	TokenID string
	// Revision is set for a replica's lease capability ($DISCOVERY_LEASE_TOKEN):
	// it may take app-held leases on that one revision and nothing else.
	Revision *RevisionRef
}

// RevisionRef names one revision of one app.
type RevisionRef struct {
	Tenant, App, Revision string
}

// Scoped reports whether the principal is bound to one tenant.
func (p Principal) Scoped() bool { return p.Tenant != "" || p.Revision != nil }

// String names the principal in messages.
func (p Principal) String() string {
	switch {
	case p.Revision != nil:
		return fmt.Sprintf("the lease capability of revision %s/%s/%s", p.Revision.Tenant, p.Revision.App, p.Revision.Revision)
	case p.Tenant != "":
		return fmt.Sprintf("subject %s (token scoped to tenant %s)", p.Subject, p.Tenant)
	}
	return "subject " + p.Subject
}

// Request is what a call wants: an action on an object in a tenant (Platform
// for platform-wide objects). App and Revision are set on routes that name
// them, so a lease capability can be matched against its own revision.
type Request struct {
	Tenant, Object, Action string
	App, Revision          string
}

type principalKey struct{}

// WithPrincipal returns a context carrying p: domain services that decide on
// request content (a raw command in a deploy) ask the Authorizer with it.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal a context carries.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
