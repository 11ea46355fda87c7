// Package apps holds Discovery's core domain: apps, their immutable revisions and
// the replicas that run them, the lifecycle rules that move a revision from
// pending to retired without cutting a session, and the etcd store that keeps it
// all. It knows nothing of HTTP and nothing of how replicas are started.
package apps

import (
	"strings"
	"time"
	"unicode/utf8"
)

// RevisionState is where a revision stands in its lifecycle (see lifecycle.go).
type RevisionState string

const (
	// Pending: deployed through the API, nothing started yet.
	Pending RevisionState = "pending"
	// Starting: replicas are launched and health-checked; the previous active
	// revision keeps serving until this one is healthy.
	Starting RevisionState = "starting"
	// Active: the one revision of the app that get-endpoint hands out.
	Active RevisionState = "active"
	// Draining: superseded; keeps serving the sessions it has until empty.
	Draining RevisionState = "draining"
	// Retired: stopped for good; its replicas are terminated.
	Retired RevisionState = "retired"
	// Failed: never became healthy; its replicas are stopped, the app untouched.
	Failed RevisionState = "failed"
)

// Terminal reports whether no replica of a revision in this state should run.
func (s RevisionState) Terminal() bool { return s == Retired || s == Failed }

// Serving reports whether a revision in this state serves sessions.
func (s RevisionState) Serving() bool { return s == Active || s == Draining }

// App is a stateful server within a tenant: the settings every revision shares.
type App struct {
	// Tenant owns the app; Name is a DNS-1123 label unique within the tenant.
	Tenant string `json:"tenant"`
	Name   string `json:"name"`
	// Port is the port the app's container listens on (Kubernetes runtime). The
	// process runtime ignores it and passes a free loopback port in $PORT.
	Port int `json:"port"`
	// HealthPath is probed with HTTP GET for readiness; empty means a TCP connect.
	HealthPath string `json:"health_path,omitempty"`
	// ClientPath is the path game clients connect to under a replica's
	// endpoint (e.g. "/ws"): get-endpoint's socket URL ends with it.
	ClientPath string `json:"client_path,omitempty"`
	// DrainHook, if set, is the path on each replica the platform POSTs a
	// drain notice to when its revision starts draining or is re-activated.
	DrainHook string `json:"drain_hook,omitempty"`
	// HandoffPath, if set, is the path on each replica that receives a
	// player's state handed off from a draining revision; without it the
	// app's replicas cannot hand off.
	HandoffPath string `json:"handoff_path,omitempty"`
	// Replicas is how many replicas the active revision runs.
	Replicas int `json:"replicas"`
	// MaxSessions caps sessions per replica for get-endpoint; 0 means no cap.
	MaxSessions int `json:"max_sessions,omitempty"`
	// TargetSessions turns the autoscaler on (0 = off: Replicas is fixed): it
	// sizes the active revision to about this many sessions per replica,
	// between MinReplicas and MaxReplicas. MinReplicas 0 is scale-to-zero.
	TargetSessions int `json:"target_sessions,omitempty"`
	MinReplicas    int `json:"min_replicas"`
	MaxReplicas    int `json:"max_replicas,omitempty"`
	// ScaleDownDelay is how long a replica must have had no session before a
	// scale-down may stop it (and, with MinReplicas 0, how long the app must be
	// idle before it goes to zero).
	ScaleDownDelay Duration `json:"scale_down_delay"`
	// ReservationTTL is how long a get-endpoint answer holds a place on its
	// replica (counting as a session) while no socket has connected: short,
	// so a client that only asked does not keep a replica up for long.
	ReservationTTL Duration `json:"reservation_ttl,omitempty"`
	// Strategy is how get-endpoint chooses among replicas with room: packed
	// (the fullest first, so others empty and can go) or spread (least loaded).
	Strategy Strategy `json:"strategy,omitempty"`
	// ReconnectGrace is how long a draining revision must stay empty before it is
	// retired, so a player who just dropped can still come back.
	ReconnectGrace Duration `json:"reconnect_grace"`
	// DrainTimeout bounds how long a revision may drain; 0 means no bound.
	DrainTimeout Duration `json:"drain_timeout"`
	// ShutdownGrace is the time between SIGTERM and SIGKILL when a replica stops.
	ShutdownGrace Duration `json:"shutdown_grace"`
	// StartTimeout bounds how long a starting revision may take to become healthy
	// before it is marked failed.
	StartTimeout Duration `json:"start_timeout"`
	// Generation counts deploys; each new revision takes the next number, so the
	// newest revision is the one with the highest generation.
	Generation int64 `json:"generation"`
	// Deleting is set by DELETE: the reconciler retires every revision, then
	// removes the app.
	Deleting bool `json:"deleting,omitempty"`
	// DrainFirst is set with Deleting by a delete with drain: the
	// revisions drain (their players stay until they leave) instead of
	// being retired at once.
	DrainFirst bool `json:"drain_first,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`

	// ModRevision is the etcd mod revision the app was read at (compare-and-swap).
	ModRevision int64 `json:"-"`
}

// Strategy is get-endpoint's allocation strategy.
type Strategy string

const (
	// Packed fills the fullest replica with room first (the default: cost).
	Packed Strategy = "packed"
	// Spread picks the least loaded replica.
	Spread Strategy = "spread"
)

// Reservation is the app's reservation TTL (the default for an app stored
// before it had one).
func (a App) Reservation() time.Duration {
	if a.ReservationTTL <= 0 {
		return DefaultReservationTTL
	}
	return a.ReservationTTL.D()
}

// Autoscaled reports whether the autoscaler sizes the active revision.
func (a App) Autoscaled() bool { return a.TargetSessions > 0 }

// Revision is one immutable deployment of an app plus its lifecycle status.
type Revision struct {
	// ID is 8 hex characters, unique within the app.
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	App    string `json:"app"`
	// Generation orders revisions of one app: higher is newer.
	Generation int64 `json:"generation"`

	// Image names the container image (Kubernetes runtime); Command is the argv
	// the process runtime runs. At least one of them is set.
	Image   string            `json:"image,omitempty"`
	Command []string          `json:"command,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	// Resources is what each replica asks for (Kubernetes runtime).
	Resources *Resources `json:"resources,omitempty"`
	// Label and Note came with the deploy, for people (RevisionSpec).
	Label string `json:"label,omitempty"`
	Note  string `json:"note,omitempty"`

	// State and its bookkeeping are written only through lifecycle transitions.
	State RevisionState `json:"state"`
	// Reason explains the last transition ("healthy", "superseded by 1a2b3c4d"…).
	Reason string `json:"reason,omitempty"`
	// Crashes counts replicas of this revision that exited unexpectedly.
	Crashes int `json:"crashes"`
	// LastOutput is the end of the output of the last of its replicas that
	// crashed (at most MaxLastOutput bytes), kept after the replicas are
	// gone: why a failed deploy failed.
	LastOutput string `json:"last_output,omitempty"`

	CreatedAt   time.Time  `json:"created_at"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	ActivatedAt *time.Time `json:"activated_at,omitempty"`
	DrainingAt  *time.Time `json:"draining_at,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	ModRevision int64      `json:"-"`
}

// Spec is what the revision runs.
func (r Revision) Spec() RevisionSpec {
	return RevisionSpec{Image: r.Image, Command: r.Command, Env: r.Env, Resources: r.Resources, Label: r.Label, Note: r.Note}
}

// ReplicaUsage is what a replica uses of its machine: CPU as a percentage
// of one core over the last interval measured, and resident memory.
type ReplicaUsage struct {
	CPUPercent float64 `json:"cpu_percent"`
	RSSBytes   int64   `json:"rss_bytes"`
}

// DeployStatus is how an app's last deploy went: its newest revision.
type DeployStatus struct {
	Revision   string        `json:"revision"`
	Generation int64         `json:"generation"`
	State      RevisionState `json:"state"`
	Reason     string        `json:"reason,omitempty"`
	Label      string        `json:"label,omitempty"`
	// Failed is set when the deploy failed: its revision never became
	// active (its LastOutput says why, when its replicas printed anything).
	Failed bool `json:"failed,omitempty"`
}

// LastDeploy is the status of the newest of revs; false without any.
func LastDeploy(revs map[string]Revision) (DeployStatus, bool) {
	var newest Revision
	found := false
	for _, r := range revs {
		if !found || r.Generation > newest.Generation {
			newest, found = r, true
		}
	}
	if !found {
		return DeployStatus{}, false
	}
	return DeployStatus{Revision: newest.ID, Generation: newest.Generation, State: newest.State, Reason: newest.Reason,
		Label: newest.Label, Failed: newest.State == Failed}, true
}

// MaxLastOutput bounds a revision's LastOutput.
const MaxLastOutput = 1024

// NoteCrash counts a crash of one of r's replicas, keeping the end of its
// output (at most MaxLastOutput bytes, whole UTF-8 characters) when it has
// any.
func (r *Revision) NoteCrash(output string) {
	r.Crashes++
	if output == "" {
		return
	}
	if len(output) > MaxLastOutput {
		output = output[len(output)-MaxLastOutput:]
		for i := 0; i < 4 && i < len(output) && !utf8.RuneStart(output[i]); i++ {
			output = output[1:]
		}
	}
	r.LastOutput = strings.ToValidUTF8(output, "?")
}

// InFlight reports whether the revision is on its way to active (pending or
// starting): an app has at most one such revision.
func (r Revision) InFlight() bool { return r.State == Pending || r.State == Starting }

// ReplicaState is the observed state of one running instance.
type ReplicaState string

const (
	// ReplicaStarting: launched, not yet passing its health check.
	ReplicaStarting ReplicaState = "starting"
	// ReplicaReady: passing its health check; may receive sessions.
	ReplicaReady ReplicaState = "ready"
	// ReplicaUnhealthy: was ready, now failing its health check.
	ReplicaUnhealthy ReplicaState = "unhealthy"
	// ReplicaStopping: told to stop (SIGTERM sent), not yet gone.
	ReplicaStopping ReplicaState = "stopping"
	// ReplicaExited: the process is gone.
	ReplicaExited ReplicaState = "exited"
)

// Replica is one running instance of a revision, as recorded in etcd. The
// reconciler writes it before it asks the runtime to start anything, so a
// replica never runs without a record.
type Replica struct {
	ID       string       `json:"id"`
	Tenant   string       `json:"tenant"`
	App      string       `json:"app"`
	Revision string       `json:"revision"`
	State    ReplicaState `json:"state"`
	// Address is host:port where the replica serves, once known.
	Address string `json:"address,omitempty"`
	// Stop is set once the platform decided this replica must go; it is never
	// cleared, so a restarted control plane finishes the stop.
	Stop      bool      `json:"stop,omitempty"`
	CreatedAt time.Time `json:"created_at"`

	ModRevision int64 `json:"-"`
}

// IsDeletable reports whether the replica may be stopped by a scale-down: only
// when it holds no session (the Agones rule for Allocated game servers).
func (r Replica) IsDeletable(sessions int) bool { return sessions == 0 }

// ReplicaID names one replica everywhere: the runtime, the route table, the
// session counts, the logs.
type ReplicaID struct {
	Tenant, App, Revision, Replica string
}

func (r ReplicaID) String() string {
	return r.Tenant + "/" + r.App + "/" + r.Revision + "/" + r.Replica
}

// Ref names an app within a tenant: the reconciler's work-queue key.
type Ref struct {
	Tenant string
	App    string
}

func (r Ref) String() string { return r.Tenant + "/" + r.App }
