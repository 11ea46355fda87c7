package main

import (
	"net"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A port that is taken between being found free and etcd binding it (CI saw
// this: "bind: address already in use") makes the member try fresh ports.
func TestEmbeddedEtcdRetriesAPortTakenBeforeItBinds(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	calls := 0
	orig := pickPort
	pickPort = func() (string, error) {
		calls++
		if calls == 1 { // the client port of the first attempt
			return taken.Addr().String(), nil
		}
		return orig()
	}
	t.Cleanup(func() { pickPort = orig })

	dir := filepath.Join(t.TempDir(), "etcd")
	e, client, err := startEmbeddedEtcd(dir, 0, 0)
	require.NoError(t, err)
	defer e.Close()
	u, err := url.Parse(client)
	require.NoError(t, err)
	assert.NotEqual(t, taken.Addr().String(), u.Host, "the taken port is not used")
	assert.Equal(t, 4, calls, "a second attempt picked fresh client and peer ports")
	saved, err := readURLs(dir)
	require.NoError(t, err)
	assert.Equal(t, client, saved.Client, "the ports that worked are kept for the next start")
}

// Something other than a taken port fails at once.
func TestEmbeddedEtcdDoesNotRetryOtherErrors(t *testing.T) {
	calls := 0
	orig := pickPort
	pickPort = func() (string, error) { calls++; return "203.0.113.1:2379", nil } // not a local address
	t.Cleanup(func() { pickPort = orig })
	_, _, err := startEmbeddedEtcd(filepath.Join(t.TempDir(), "etcd"), 0, 0)
	require.Error(t, err)
	assert.Equal(t, 2, calls, "one attempt only")
}
