package tenants_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/tenants"
)

func ptr[T any](v T) *T { return &v }

func TestValidName(t *testing.T) {
	const prefix = "discovery-" // 10 characters: names up to 53 fit
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"acme", true},
		{"a-1", true},
		{"0abc", true},
		{"a--b", true},
		{strings.Repeat("a", 53), true},
		{"", false},
		{strings.Repeat("a", 54), false}, // "discovery-" + 54 > 63
		{"Acme", false},
		{"-a", false},
		{"a-", false},
		{"a_b", false},
		{"a.b", false},
		{"a b", false},
		{"a/b", false},
		{"..", false},
		{"ä", false},
	} {
		err := tenants.ValidName(tc.name, prefix)
		if tc.ok {
			assert.NoError(t, err, "%q", tc.name)
		} else {
			assert.ErrorIs(t, err, tenants.ErrInvalid, "%q", tc.name)
		}
	}
}

func TestQuotaValidate(t *testing.T) {
	for _, tc := range []struct {
		what string
		q    tenants.Quota
		ok   bool
	}{
		{"default", tenants.DefaultQuota, true},
		{"zeros where zero is allowed", patched(tenants.QuotaPatch{MaxApps: ptr(0), MaxReplicas: ptr(0), MaxCPUMillis: ptr(0), MaxMemoryMB: ptr(0)}), true},
		{"upper bounds", patched(tenants.QuotaPatch{MaxApps: ptr(10000), MaxReplicas: ptr(100000), MaxRevisions: ptr(1000),
			MaxCPUMillis: ptr(1_000_000), MaxMemoryMB: ptr(10_000_000),
			MaxLeasesPerRevision: ptr(tenants.MaxLeasesPerRevisionLimit), MaxStoredBytes: ptr[int64](tenants.MaxStoredBytesLimit)}), true},
		{"negative apps", patched(tenants.QuotaPatch{MaxApps: ptr(-1)}), false},
		{"too many apps", patched(tenants.QuotaPatch{MaxApps: ptr(10001)}), false},
		{"negative replicas", patched(tenants.QuotaPatch{MaxReplicas: ptr(-1)}), false},
		{"too many replicas", patched(tenants.QuotaPatch{MaxReplicas: ptr(100001)}), false},
		{"no revision kept", patched(tenants.QuotaPatch{MaxRevisions: ptr(0)}), false},
		{"too many revisions", patched(tenants.QuotaPatch{MaxRevisions: ptr(1001)}), false},
		{"negative cpu", patched(tenants.QuotaPatch{MaxCPUMillis: ptr(-1)}), false},
		{"too much cpu", patched(tenants.QuotaPatch{MaxCPUMillis: ptr(1_000_001)}), false},
		{"too much memory", patched(tenants.QuotaPatch{MaxMemoryMB: ptr(10_000_001)}), false},
		{"no lease", patched(tenants.QuotaPatch{MaxLeasesPerRevision: ptr(0)}), false},
		{"too many leases", patched(tenants.QuotaPatch{MaxLeasesPerRevision: ptr(tenants.MaxLeasesPerRevisionLimit + 1)}), false},
		{"no stored bytes", patched(tenants.QuotaPatch{MaxStoredBytes: ptr[int64](0)}), false},
		{"too many stored bytes", patched(tenants.QuotaPatch{MaxStoredBytes: ptr[int64](tenants.MaxStoredBytesLimit + 1)}), false},
	} {
		err := tc.q.Validate()
		if tc.ok {
			assert.NoError(t, err, tc.what)
		} else {
			assert.ErrorIs(t, err, tenants.ErrInvalid, tc.what)
		}
	}
}

func patched(p tenants.QuotaPatch) tenants.Quota { return p.Apply(tenants.DefaultQuota) }

func TestQuotaPatchApplyKeepsAbsentFields(t *testing.T) {
	base := tenants.Quota{MaxApps: 1, MaxReplicas: 2, MaxRevisions: 3, MaxCPUMillis: 4, MaxMemoryMB: 5,
		MaxLeasesPerRevision: 6, MaxStoredBytes: 7}
	for _, tc := range []struct {
		what  string
		patch tenants.QuotaPatch
		want  tenants.Quota
	}{
		{"empty patch changes nothing", tenants.QuotaPatch{}, base},
		{"one field", tenants.QuotaPatch{MaxApps: ptr(10)},
			tenants.Quota{MaxApps: 10, MaxReplicas: 2, MaxRevisions: 3, MaxCPUMillis: 4, MaxMemoryMB: 5, MaxLeasesPerRevision: 6, MaxStoredBytes: 7}},
		{"an explicit zero is a value, not an absence", tenants.QuotaPatch{MaxReplicas: ptr(0)},
			tenants.Quota{MaxApps: 1, MaxReplicas: 0, MaxRevisions: 3, MaxCPUMillis: 4, MaxMemoryMB: 5, MaxLeasesPerRevision: 6, MaxStoredBytes: 7}},
		{"the newer fields", tenants.QuotaPatch{MaxLeasesPerRevision: ptr(60), MaxStoredBytes: ptr[int64](70)},
			tenants.Quota{MaxApps: 1, MaxReplicas: 2, MaxRevisions: 3, MaxCPUMillis: 4, MaxMemoryMB: 5, MaxLeasesPerRevision: 60, MaxStoredBytes: 70}},
		{"every field", tenants.QuotaPatch{MaxApps: ptr(10), MaxReplicas: ptr(20), MaxRevisions: ptr(30), MaxCPUMillis: ptr(40),
			MaxMemoryMB: ptr(50), MaxLeasesPerRevision: ptr(60), MaxStoredBytes: ptr[int64](70)},
			tenants.Quota{MaxApps: 10, MaxReplicas: 20, MaxRevisions: 30, MaxCPUMillis: 40, MaxMemoryMB: 50, MaxLeasesPerRevision: 60, MaxStoredBytes: 70}},
	} {
		assert.Equal(t, tc.want, tc.patch.Apply(base), tc.what)
	}

	// As the API decodes it: a field left out of the JSON is absent.
	var p tenants.QuotaPatch
	require.NoError(t, json.Unmarshal([]byte(`{"max_apps":9,"max_stored_bytes":99}`), &p))
	assert.Equal(t, tenants.Quota{MaxApps: 9, MaxReplicas: 2, MaxRevisions: 3, MaxCPUMillis: 4, MaxMemoryMB: 5,
		MaxLeasesPerRevision: 6, MaxStoredBytes: 99}, p.Apply(base))
	assert.Equal(t, tenants.Quota{MaxApps: 1, MaxReplicas: 2, MaxRevisions: 3, MaxCPUMillis: 4, MaxMemoryMB: 5,
		MaxLeasesPerRevision: 6, MaxStoredBytes: 7}, base, "Apply returns a copy")
}
