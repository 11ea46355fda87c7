// Package authz authenticates and authorises every management call: JWTs
// signed by the platform (golang-jwt v5, algorithm and key pinned), a
// revocation list by token id, and roles in casbin (RBAC with domains, domain =
// tenant) kept in etcd and reloaded on change, so a role granted or revoked
// takes effect without new tokens. Tokens carry who you are and, when a
// tenant's owner minted them, the one tenant they are good for; never what
// you may do.
package authz

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/tenants"
)

// Issuer is the "iss" of every token the platform signs.
const Issuer = "discovery"

// MaxTokenTTL bounds a token's lifetime.
const MaxTokenTTL = 5 * 365 * 24 * time.Hour

// Sentinel errors of authz.
var (
	ErrUnauthenticated = errors.New("authz: unauthenticated")
	ErrForbidden       = errors.New("authz: forbidden")
	ErrInvalid         = errors.New("authz: invalid")
	ErrConflict        = errors.New("authz: conflict")
)

// Claims are what a token says: its subject, validity, id and scope. Roles
// are looked up at each request, never read from the token.
type Claims struct {
	jwt.RegisteredClaims
	// Tenant binds the token to one tenant ("" = unscoped, minted by a
	// platform admin only): see Principal.Tenant.
	Tenant string `json:"tenant,omitempty"`
}

// Principal is who the token's bearer is.
func (c Claims) Principal() Principal {
	return Principal{Subject: c.Subject, Tenant: c.Tenant, TokenID: c.ID}
}

// Tokens signs and verifies tokens with one pinned algorithm and key: EdDSA
// with the platform's Ed25519 key (kept in etcd so every instance shares it),
// or HS256 with a configured shared secret. A token signed any other way,
// "none" included, is refused.
type Tokens struct {
	method jwt.SigningMethod
	sign   any // ed25519.PrivateKey or []byte
	verify any // ed25519.PublicKey or []byte

	mu      sync.RWMutex
	revoked map[string]time.Time // token id -> expiry
	now     func() time.Time
}

// NewEdDSATokens uses an Ed25519 key.
func NewEdDSATokens(key ed25519.PrivateKey) *Tokens {
	return &Tokens{method: jwt.SigningMethodEdDSA, sign: key, verify: key.Public(), revoked: map[string]time.Time{}, now: time.Now}
}

// NewHS256Tokens uses a shared secret (at least 32 bytes).
func NewHS256Tokens(secret []byte) (*Tokens, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("%w: an HS256 secret needs at least 32 bytes, got %d", ErrInvalid, len(secret))
	}
	return &Tokens{method: jwt.SigningMethodHS256, sign: secret, verify: secret, revoked: map[string]time.Time{}, now: time.Now}, nil
}

// Issue signs a token for subject valid for ttl, scoped to tenant ("" =
// unscoped). Who may ask for which is Authorizer.IssueAs's decision.
func (t *Tokens) Issue(subject, tenant string, ttl time.Duration) (string, Claims, error) {
	if subject == "" || len(subject) > 256 || strings.ContainsAny(subject, ",\n\r\t ") {
		return "", Claims{}, fmt.Errorf("%w: subject must be 1-256 characters without spaces or commas", ErrInvalid)
	}
	if tenant != "" && !tenants.IsLabel(tenant) {
		return "", Claims{}, fmt.Errorf("%w: a token is bound to a tenant name or to none, not %q", ErrInvalid, tenant)
	}
	if ttl <= 0 || ttl > MaxTokenTTL {
		return "", Claims{}, fmt.Errorf("%w: ttl %s out of range (0, 5 years]", ErrInvalid, ttl)
	}
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	now := t.now()
	c := Claims{jwt.RegisteredClaims{
		Issuer: Issuer, Subject: subject, ID: hex.EncodeToString(id),
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Second)),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}, tenant}
	s, err := jwt.NewWithClaims(t.method, c).SignedString(t.sign)
	return s, c, err
}

// Verify checks a token's signature (with the pinned algorithm only), issuer,
// validity window and revocation.
func (t *Tokens) Verify(token string) (Claims, error) {
	var c Claims
	parsed, err := jwt.ParseWithClaims(token, &c, func(tok *jwt.Token) (any, error) {
		if tok.Method != t.method {
			return nil, fmt.Errorf("algorithm %v not accepted", tok.Header["alg"])
		}
		return t.verify, nil
	},
		jwt.WithValidMethods([]string{t.method.Alg()}),
		jwt.WithIssuer(Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(t.now),
	)
	if err != nil || !parsed.Valid {
		return Claims{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	if c.Subject == "" || c.ID == "" {
		return Claims{}, fmt.Errorf("%w: token has no subject or id", ErrUnauthenticated)
	}
	t.mu.RLock()
	_, gone := t.revoked[c.ID]
	t.mu.RUnlock()
	if gone {
		return Claims{}, fmt.Errorf("%w: token %s was revoked", ErrUnauthenticated, c.ID)
	}
	return c, nil
}

// setRevoked replaces the revocation list (fed by the etcd watch).
func (t *Tokens) setRevoked(ids map[string]time.Time) {
	t.mu.Lock()
	t.revoked = ids
	t.mu.Unlock()
}

// LoadOrCreateKey returns the platform's Ed25519 signing key from etcd,
// creating it on the very first start (compare-and-swap, so instances starting
// together agree on one key).
func LoadOrCreateKey(ctx context.Context, cli *clientv3.Client, prefix string) (ed25519.PrivateKey, error) {
	key := path.Join(prefix, "authz", "signing-key")
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(pemBytes))).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if resp.Succeeded {
		return priv, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil, errors.New("signing key vanished")
	}
	block, _ := pem.Decode(kvs[0].Value)
	if block == nil {
		return nil, errors.New("signing key in etcd is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("signing key in etcd is not Ed25519")
	}
	return ek, nil
}

// LeaseToken is the capability a replica gets in $DISCOVERY_LEASE_TOKEN to
// take app-held leases on its own revision without a user's token: an HMAC of
// the revision under a secret derived from the signing key.
func (t *Tokens) LeaseToken(tenant, app, rev string) string {
	var secret []byte
	switch k := t.sign.(type) {
	case ed25519.PrivateKey:
		secret = k.Seed()
	case []byte:
		secret = k
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("lease:" + tenant + "/" + app + "/" + rev))
	return hex.EncodeToString(mac.Sum(nil))
}

// CheckLeaseToken reports whether token is the lease capability of a revision.
func (t *Tokens) CheckLeaseToken(tenant, app, rev, token string) bool {
	return token != "" && hmac.Equal([]byte(token), []byte(t.LeaseToken(tenant, app, rev)))
}
