package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTLSAndEtcdFlagsRefuseBadInput: the new flags fail clearly, before
// anything listens.
func TestTLSAndEtcdFlagsRefuseBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-key", "k.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--etcd-quota-bytes", "-1"}, "must not be negative"},
		{[]string{"--etcd-defrag-interval", "-1h"}, "must not be negative"},
	} {
		err := NewMain().ParseFlags(tc.args)
		require.Error(t, err, "%v", tc.args)
		assert.Contains(t, err.Error(), tc.want, "%v", tc.args)
	}

	m := NewMain()
	dir := t.TempDir()
	require.NoError(t, m.ParseFlags([]string{"--data-dir", dir, "--addr", "127.0.0.1:0", "--gateway-addr", "127.0.0.1:0",
		"--tls-cert", filepath.Join(dir, "missing.crt"), "--tls-key", filepath.Join(dir, "missing.key")}))
	err := m.Run(context.Background())
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "--tls-cert/--tls-key:"), err.Error())
	assert.Empty(t, m.Addr(), "nothing listens without a usable certificate")
	require.NoError(t, m.Close())
}
