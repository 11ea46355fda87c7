package deployer

import (
	"context"
	"errors"
	"time"

	"github.com/discovery-platform/discovery/apps"
)

// Runtime is where replicas run: local processes (deployer/process) or pods
// (deployer/kubernetes). The reconciler is its only user. Every method is
// idempotent and returns quickly; the runtime reports progress through List and
// Changes, so the reconciler stays level-triggered.
type Runtime interface {
	// Start launches a replica. If a replica with this ID already runs (for
	// example one adopted after a platform restart), Start leaves it alone.
	Start(ctx context.Context, spec ReplicaSpec) error
	// Stop begins a graceful stop: SIGTERM (or pod deletion), then a kill after
	// grace. It returns at once; List shows the replica stopping, then exited.
	// Stopping an unknown or exited replica is not an error.
	Stop(ctx context.Context, id apps.ReplicaID, grace time.Duration) error
	// List returns what the runtime observes of one app's replicas, exited ones
	// included until they are removed.
	List(ctx context.Context, tenant, app string) ([]Observed, error)
	// Remove forgets an exited replica: its state and logs. Removing a replica
	// that still runs is an error.
	Remove(ctx context.Context, id apps.ReplicaID) error
	// Logs returns up to tail bytes of the end of a replica's output.
	Logs(ctx context.Context, id apps.ReplicaID, tail int) ([]byte, error)
	// Changes names an app each time one of its replicas changes state
	// (ready, unhealthy, exited). Sends never block the runtime: a slow reader
	// may miss some, which the reconciler's periodic resync covers.
	Changes() <-chan apps.Ref
}

// ErrRuntimeUnavailable wraps a runtime error that says nothing about the
// replica (the Kubernetes API server unreachable, throttling): the reconciler
// retries later instead of counting a failed start against the revision.
var ErrRuntimeUnavailable = errors.New("deployer: runtime unavailable")

// ReplicaSpec is what a runtime needs to start one replica.
type ReplicaSpec struct {
	apps.ReplicaID
	// Image is the container image (Kubernetes); Command is the argv (process).
	Image   string
	Command []string
	// Env is the revision's environment; the runtime adds PORT.
	Env map[string]string
	// Port is the container port (Kubernetes). The process runtime picks a free
	// loopback port instead and passes it in $PORT.
	Port int
	// HealthPath is probed with HTTP GET; empty means a TCP connect.
	HealthPath string
	// Resources is what the replica requests (Kubernetes: requests = limits);
	// nil takes the tenant's defaults.
	Resources *apps.Resources
	// ShutdownGrace is the default grace for stops the runtime initiates itself.
	ShutdownGrace time.Duration
}

// Observed is a runtime's view of one replica.
type Observed struct {
	apps.ReplicaID
	State apps.ReplicaState
	// Address is host:port where the replica serves.
	Address   string
	StartedAt time.Time
	// Exit describes why an exited replica ended ("exit status 1", "signal: killed").
	Exit string
}
