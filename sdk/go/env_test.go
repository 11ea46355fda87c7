package discovery

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// platformEnv is what the platform sets for replica r-0 of acme/arena
// revision 9d00cc18.
func platformEnv(api string) map[string]string {
	return map[string]string{
		EnvAPI: api, EnvPublicAPI: "http://127.0.0.1:4000", EnvLeaseToken: "cap-secret",
		EnvTenant: "acme", EnvApp: "arena", EnvRevision: "9d00cc18", EnvReplica: "r-0",
	}
}

// testReplica is replica r-0 of acme/arena revision 9d00cc18, whose
// platform API is api.
func testReplica(t *testing.T, api string) *Replica {
	t.Helper()
	env := platformEnv(api)
	r, err := FromLookup(func(k string) string { return env[k] })
	require.NoError(t, err)
	return r
}

func TestFromLookup(t *testing.T) {
	tests := []struct {
		name    string
		change  map[string]string
		want    func(r *Replica)
		wantErr []string
	}{
		{name: "everything set"},
		{name: "trailing slash trimmed", change: map[string]string{EnvAPI: "http://10.0.0.1:4000/"},
			want: func(r *Replica) { r.API = "http://10.0.0.1:4000" }},
		{name: "public API optional", change: map[string]string{EnvPublicAPI: ""},
			want: func(r *Replica) { r.PublicAPI = "" }},
		{name: "not on the platform", change: map[string]string{EnvAPI: "", EnvLeaseToken: "", EnvTenant: "", EnvApp: "", EnvRevision: "", EnvReplica: "", EnvPublicAPI: ""},
			wantErr: []string{"DISCOVERY_API, DISCOVERY_LEASE_TOKEN, DISCOVERY_TENANT, DISCOVERY_APP, DISCOVERY_REVISION, DISCOVERY_REPLICA not set"}},
		{name: "one missing", change: map[string]string{EnvLeaseToken: "  "}, wantErr: []string{"DISCOVERY_LEASE_TOKEN not set"}},
		{name: "API not a URL", change: map[string]string{EnvAPI: "127.0.0.1:4000"}, wantErr: []string{"DISCOVERY_API", "http://"}},
		{name: "public API not http", change: map[string]string{EnvPublicAPI: "ws://x"}, wantErr: []string{"DISCOVERY_PUBLIC_API_URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := platformEnv("http://10.0.0.1:4000")
			for k, v := range tt.change {
				env[k] = v
			}
			got, err := FromLookup(func(k string) string { return env[k] })
			if tt.wantErr != nil {
				require.Error(t, err)
				for _, s := range tt.wantErr {
					assert.Contains(t, err.Error(), s)
				}
				return
			}
			require.NoError(t, err)
			want := &Replica{API: "http://10.0.0.1:4000", PublicAPI: "http://127.0.0.1:4000", LeaseToken: "cap-secret",
				Tenant: "acme", App: "arena", Revision: "9d00cc18", Name: "r-0"}
			if tt.want != nil {
				tt.want(want)
			}
			assert.Equal(t, want, got)
		})
	}
}

func TestFromEnv(t *testing.T) {
	for k, v := range platformEnv("http://10.0.0.1:4000") {
		t.Setenv(k, v)
	}
	r, err := FromEnv()
	require.NoError(t, err)
	assert.Equal(t, "acme/arena revision 9d00cc18 replica r-0", r.String())

	t.Setenv(EnvRevision, "")
	_, err = FromEnv()
	assert.ErrorIs(t, err, ErrMissingEnv)
}
