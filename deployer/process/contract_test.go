package process

import (
	"testing"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/deployer"
	"github.com/discovery-platform/discovery/deployer/runtimetest"
	"github.com/discovery-platform/discovery/internal/testkit/testapp/build"
)

// TestContract holds the process runtime to the contract every runtime keeps.
func TestContract(t *testing.T) {
	runtimetest.Run(t, runtimetest.Suite{
		Tenant:  "default",
		Runtime: func(t *testing.T) deployer.Runtime { return open(t, testConfig(t)) },
		Spec: func(t *testing.T, id apps.ReplicaID, env map[string]string) deployer.ReplicaSpec {
			return deployer.ReplicaSpec{ReplicaID: id, Command: []string{build.Binary(t)}, Env: env}
		},
	})
}
