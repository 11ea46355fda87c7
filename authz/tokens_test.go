package authz_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/authz"
	"github.com/discovery-platform/discovery/internal/testkit/etcdtest"
)

// goodClaims are what the platform itself would sign for subject "alice".
func goodClaims() authz.Claims {
	now := time.Now()
	return authz.Claims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer: authz.Issuer, Subject: "alice", ID: "0123456789abcdef01234567",
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Second)),
		ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}}
}

func sign(t *testing.T, m jwt.SigningMethod, key any, c authz.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	require.NoError(t, err)
	return s
}

func TestVerifyRefusesTokensNotSignedThePinnedWay(t *testing.T) {
	key := newKey(t)
	tokens := authz.NewEdDSATokens(key)
	pub := key.Public().(ed25519.PublicKey)
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)

	// The helper signs the way the platform does: the control case passes.
	c, err := tokens.Verify(sign(t, jwt.SigningMethodEdDSA, key, goodClaims()))
	require.NoError(t, err)
	assert.Equal(t, "alice", c.Subject)

	with := func(change func(*authz.Claims)) authz.Claims {
		c := goodClaims()
		change(&c)
		return c
	}
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	for _, tc := range []struct {
		what  string
		token string
	}{
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, goodClaims())},
		{"HS256 keyed with the Ed25519 public key", sign(t, jwt.SigningMethodHS256, []byte(pub), goodClaims())},
		{"HS256 keyed with the public key's PEM", sign(t, jwt.SigningMethodHS256, pubPEM, goodClaims())},
		{"HS256 keyed with the private key's seed", sign(t, jwt.SigningMethodHS256, key.Seed(), goodClaims())},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, goodClaims())},
		{"EdDSA with another key", sign(t, jwt.SigningMethodEdDSA, newKey(t), goodClaims())},
		{"another issuer", sign(t, jwt.SigningMethodEdDSA, key, with(func(c *authz.Claims) { c.Issuer = "evil" }))},
		{"no issuer", sign(t, jwt.SigningMethodEdDSA, key, with(func(c *authz.Claims) { c.Issuer = "" }))},
		{"expired", sign(t, jwt.SigningMethodEdDSA, key, with(func(c *authz.Claims) {
			c.IssuedAt, c.NotBefore, c.ExpiresAt = jwt.NewNumericDate(past.Add(-time.Hour)), jwt.NewNumericDate(past.Add(-time.Hour)), jwt.NewNumericDate(past)
		}))},
		{"not yet valid", sign(t, jwt.SigningMethodEdDSA, key, with(func(c *authz.Claims) {
			c.NotBefore, c.ExpiresAt = jwt.NewNumericDate(future), jwt.NewNumericDate(future.Add(time.Hour))
		}))},
		{"issued in the future", sign(t, jwt.SigningMethodEdDSA, key, with(func(c *authz.Claims) { c.IssuedAt = jwt.NewNumericDate(future) }))},
		{"without expiry", sign(t, jwt.SigningMethodEdDSA, key, with(func(c *authz.Claims) { c.ExpiresAt = nil }))},
		{"without subject", sign(t, jwt.SigningMethodEdDSA, key, with(func(c *authz.Claims) { c.Subject = "" }))},
		{"without id", sign(t, jwt.SigningMethodEdDSA, key, with(func(c *authz.Claims) { c.ID = "" }))},
		{"garbage", "not.a.token"},
		{"empty", ""},
	} {
		_, err := tokens.Verify(tc.token)
		assert.ErrorIs(t, err, authz.ErrUnauthenticated, tc.what)
	}
}

// TestVerifyRefusesAWidenedScope: the tenant a token is bound to is signed
// with it; rewriting it breaks the signature.
func TestVerifyRefusesAWidenedScope(t *testing.T) {
	tokens := authz.NewEdDSATokens(newKey(t))
	tok, claims, err := tokens.Issue("alice", "acme", time.Hour)
	require.NoError(t, err)
	assert.Equal(t, "acme", claims.Tenant)
	c, err := tokens.Verify(tok)
	require.NoError(t, err)
	assert.Equal(t, authz.Principal{Subject: "alice", Tenant: "acme", TokenID: claims.ID}, c.Principal())

	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(payload, &m))
	for _, scope := range []any{"other", ""} {
		m["tenant"] = scope
		b, err := json.Marshal(m)
		require.NoError(t, err)
		forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
		_, err = tokens.Verify(forged)
		assert.ErrorIs(t, err, authz.ErrUnauthenticated, "tenant rewritten to %q", scope)
	}
}

func TestIssueRefusesBadSubjectsAndLifetimes(t *testing.T) {
	tokens := authz.NewEdDSATokens(newKey(t))
	for _, tc := range []struct {
		subject string
		ttl     time.Duration
	}{
		{"", time.Hour},
		{"a b", time.Hour},
		{"a,b", time.Hour},
		{"a\nb", time.Hour},
		{strings.Repeat("a", 257), time.Hour},
		{"alice", 0},
		{"alice", -time.Second},
		{"alice", authz.MaxTokenTTL + time.Second},
	} {
		_, _, err := tokens.Issue(tc.subject, "", tc.ttl)
		assert.ErrorIs(t, err, authz.ErrInvalid, "%q for %s", tc.subject, tc.ttl)
	}
	tok, c, err := tokens.Issue(strings.Repeat("a", 256), "", authz.MaxTokenTTL)
	require.NoError(t, err, "the limits themselves")
	_, err = tokens.Verify(tok)
	require.NoError(t, err)
	assert.Equal(t, authz.Issuer, c.Issuer)
	assert.NotEmpty(t, c.ID)
}

func TestHS256Mode(t *testing.T) {
	for _, n := range []int{0, 1, 16, 31} {
		tokens, err := authz.NewHS256Tokens(make([]byte, n))
		assert.ErrorIs(t, err, authz.ErrInvalid, "a %d-byte secret", n)
		assert.Nil(t, tokens)
	}
	secret := []byte(strings.Repeat("s", 32))
	tokens, err := authz.NewHS256Tokens(secret)
	require.NoError(t, err, "32 bytes is enough")

	tok, _, err := tokens.Issue("alice", "", time.Hour)
	require.NoError(t, err)
	c, err := tokens.Verify(tok)
	require.NoError(t, err)
	assert.Equal(t, "alice", c.Subject)

	key := newKey(t)
	eddsa, _, err := authz.NewEdDSATokens(key).Issue("alice", "", time.Hour)
	require.NoError(t, err)
	for _, tc := range []struct {
		what  string
		token string
	}{
		{"an EdDSA token", eddsa},
		{"EdDSA signed with the shared secret as a seed", sign(t, jwt.SigningMethodEdDSA, ed25519.NewKeyFromSeed(secret), goodClaims())},
		{"HS256 with another secret", sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), goodClaims())},
		{"HS512 with the same secret", sign(t, jwt.SigningMethodHS512, secret, goodClaims())},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, goodClaims())},
	} {
		_, err := tokens.Verify(tc.token)
		assert.ErrorIs(t, err, authz.ErrUnauthenticated, tc.what)
	}
	_, err = authz.NewEdDSATokens(key).Verify(tok)
	assert.ErrorIs(t, err, authz.ErrUnauthenticated, "an HS256 token in EdDSA mode")
}

func TestLeaseTokenIsBoundToItsRevision(t *testing.T) {
	tokens := authz.NewEdDSATokens(newKey(t))
	lt := tokens.LeaseToken("acme", "arena", "9d00cc18")
	assert.True(t, tokens.CheckLeaseToken("acme", "arena", "9d00cc18", lt))
	for _, ref := range [][3]string{{"other", "arena", "9d00cc18"}, {"acme", "other", "9d00cc18"}, {"acme", "arena", "00000000"}} {
		assert.False(t, tokens.CheckLeaseToken(ref[0], ref[1], ref[2], lt), "%v", ref)
	}
	assert.False(t, tokens.CheckLeaseToken("acme", "arena", "9d00cc18", ""))
	assert.False(t, authz.NewEdDSATokens(newKey(t)).CheckLeaseToken("acme", "arena", "9d00cc18", lt), "another platform key")
	hs, err := authz.NewHS256Tokens([]byte(strings.Repeat("s", 32)))
	require.NoError(t, err)
	assert.True(t, hs.CheckLeaseToken("acme", "arena", "9d00cc18", hs.LeaseToken("acme", "arena", "9d00cc18")))
	assert.False(t, hs.CheckLeaseToken("acme", "arena", "9d00cc18", lt))
}

// TestRevokedTokenRefusedOnEveryInstance: a revocation written through one
// instance reaches the Tokens of every instance through its watch.
func TestRevokedTokenRefusedOnEveryInstance(t *testing.T) {
	ctx := context.Background()
	e := etcdtest.Start(t)
	key, err := authz.LoadOrCreateKey(ctx, e.Client, prefix)
	require.NoError(t, err)
	one := startAuthorizer(t, e.Client, authz.NewEdDSATokens(key))
	two := startAuthorizer(t, e.Client, authz.NewEdDSATokens(key))

	revoked, rc, err := one.Tokens.Issue("alice", "", time.Hour)
	require.NoError(t, err)
	kept, _, err := one.Tokens.Issue("alice", "", time.Hour)
	require.NoError(t, err)
	for _, a := range []*authz.Authorizer{one, two} {
		_, err := a.Tokens.Verify(revoked)
		require.NoError(t, err, "valid before revocation, on both instances")
	}

	require.NoError(t, one.RevokeToken(ctx, rc.ID, rc.ExpiresAt.Time))
	for name, a := range map[string]*authz.Authorizer{"the revoking instance": one, "the other instance": two} {
		eventually(t, "revocation reaches "+name, func() bool {
			_, err := a.Tokens.Verify(revoked)
			return err != nil
		})
		_, err := a.Tokens.Verify(revoked)
		assert.ErrorIs(t, err, authz.ErrUnauthenticated, name)
		_, err = a.Tokens.Verify(kept)
		assert.NoError(t, err, "another token of the same subject stays valid on %s", name)
	}

	// A third instance started afterwards reads the list at start.
	three := startAuthorizer(t, e.Client, authz.NewEdDSATokens(key))
	eventually(t, "revocation listed by a new instance", func() bool {
		_, err := three.Tokens.Verify(revoked)
		return err != nil
	})

	for _, id := range []string{"", "a/b", "a b", strings.Repeat("a", 65)} {
		assert.ErrorIs(t, one.RevokeToken(ctx, id, time.Time{}), authz.ErrInvalid, "%q", id)
	}
}
