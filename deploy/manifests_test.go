// Package deploy holds the manifests that run Discovery on Kubernetes; its
// test proves them valid against a real API server.
package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/discovery-platform/discovery/internal/testkit/kubetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	kubetest.StopShared()
	os.Exit(code)
}

// TestManifestsApplyWithServerSideDryRun renders each kustomization with
// kubectl and applies it with --dry-run=server: the API server admits every
// object (schema, RBAC, defaults), nothing is created. The namespace is
// created for real first, since a dry run creates nothing to put objects in.
func TestManifestsApplyWithServerSideDryRun(t *testing.T) {
	c := kubetest.Shared(t)
	ctx := t.Context()
	out, err := c.Kubectl(ctx, "apply", "-f", filepath.Join("base", "namespace.yaml"))
	require.NoError(t, err, string(out))
	for _, dir := range []string{"base", filepath.Join("overlays", "external-etcd")} {
		t.Run(dir, func(t *testing.T) {
			rendered, err := c.Kubectl(ctx, "kustomize", dir)
			require.NoError(t, err, string(rendered))
			f := filepath.Join(t.TempDir(), "all.yaml")
			require.NoError(t, os.WriteFile(f, rendered, 0o600))
			out, err := c.Kubectl(ctx, "apply", "--dry-run=server", "--server-side", "--field-manager=discovery-test", "-f", f)
			require.NoError(t, err, string(out))
			got := string(out)
			for _, want := range []string{"clusterrole.rbac.authorization.k8s.io/discovery-platform", "deployment.apps/discovery-api", "deployment.apps/discovery-gateway"} {
				assert.Contains(t, got, want+" serverside-applied (server dry run)")
			}
			withEtcd := strings.Contains(got, "statefulset.apps/discovery-etcd")
			assert.Equal(t, dir == "base", withEtcd, "only the base runs its own etcd")
		})
	}
	// Nothing but the namespace exists: the dry run created nothing.
	out, err = c.Kubectl(ctx, "-n", "discovery", "get", "deployments", "-o", "name")
	require.NoError(t, err, string(out))
	assert.Empty(t, strings.TrimSpace(string(out)))
}
