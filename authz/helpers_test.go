package authz_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discovery-platform/discovery/authz"
)

const prefix = "/t"

// waitFor is how long a change made on one instance may take to reach
// another through its etcd watch.
const waitFor = 10 * time.Second

var quiet = slog.New(slog.DiscardHandler)

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return k
}

// startAuthorizer is one platform instance's authorizer over cli, running
// (policy and revocation watches) until the test ends.
func startAuthorizer(t *testing.T, cli *clientv3.Client, tokens *authz.Tokens) *authz.Authorizer {
	t.Helper()
	a, err := authz.NewAuthorizer(cli, prefix, tokens, quiet)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return a
}

// eventually polls cond until it holds or waitFor passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", waitFor, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
