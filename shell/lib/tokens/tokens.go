// Package tokens is dsh's token administration: issue bearer tokens for
// subjects and revoke them. A token is bound to a tenant (IssueFor) or,
// issued by a platform admin only, unscoped (Issue); one bound to a tenant
// grants its subject's role there and nothing anywhere else.
package tokens

import (
	"time"

	"github.com/discovery-platform/discovery/client"
	"github.com/discovery-platform/discovery/shell/lib/dsh"
)

// Issued is an issued token as dsh shows it: the secret included, since
// showing it is the point.
type Issued struct{ client.Token }

func (t Issued) String() string {
	return t.Token.String() + "\n" + t.Token.Token
}

// Issue issues an unscoped token for subject valid for ttl (admin only): it
// carries every role the subject has, in every tenant. Keep it secret.
func Issue(subject string, ttl time.Duration) (Issued, error) {
	return IssueFor("", subject, ttl)
}

// IssueFor issues a token bound to tenant for subject, a member of it: an
// owner of tenant may, for members whose role is not above its own (never
// for a platform admin). It grants the subject's role in tenant only.
func IssueFor(tenant, subject string, ttl time.Duration) (Issued, error) {
	c, err := dsh.Connected()
	if err != nil {
		return Issued{}, err
	}
	t, err := c.IssueToken(dsh.Context(), client.TokenRequest{Subject: subject, TTL: client.Duration(ttl), Tenant: tenant})
	return Issued{t}, err
}

// Revoke revokes a token by its id (admin).
func Revoke(id string) error {
	c, err := dsh.Connected()
	if err != nil {
		return err
	}
	return c.RevokeToken(dsh.Context(), id)
}
