package client

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The types below are the API's JSON documents (api/openapi.json), field for
// field; a test checks them against the platform's own types.

// RevisionState is where a revision stands in its lifecycle:
// pending -> starting -> active -> draining -> retired, or starting -> failed.
type RevisionState string

// The revision states.
const (
	Pending  RevisionState = "pending"
	Starting RevisionState = "starting"
	Active   RevisionState = "active"
	Draining RevisionState = "draining"
	Retired  RevisionState = "retired"
	Failed   RevisionState = "failed"
)

// Terminal reports whether a revision in this state runs nothing any more.
func (s RevisionState) Terminal() bool { return s == Retired || s == Failed }

// Duration is a time.Duration that the API reads and writes as a Go duration
// string ("30s").
type Duration time.Duration

// D returns the standard library duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes "30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Int, String and Dur make the pointers AppSpec and friends use for "set this
// field" (nil leaves a field as it is).
func Int(v int) *int { return &v }

// String returns a pointer to v (see Int).
func String(v string) *string { return &v }

// Int64 returns a pointer to v (see Int).
func Int64(v int64) *int64 { return &v }

// Bool returns a pointer to v (see Int).
func Bool(v bool) *bool { return &v }

// Dur returns a pointer to d as a Duration (see Int).
func Dur(d time.Duration) *Duration { v := Duration(d); return &v }

// App is a stateful server within a tenant: the settings its revisions share.
type App struct {
	Tenant string `json:"tenant"`
	Name   string `json:"name"`
	// Port is the container port (Kubernetes runtime; the process runtime
	// passes $PORT instead).
	Port int `json:"port"`
	// HealthPath is probed over HTTP for readiness; empty means a TCP connect.
	HealthPath string `json:"health_path,omitempty"`
	// ClientPath is where game clients connect under a replica's endpoint
	// (get-endpoint's socket ends with it); DrainHook is the path drain
	// notices are POSTed to; HandoffPath receives handed-off players' state.
	ClientPath  string `json:"client_path,omitempty"`
	DrainHook   string `json:"drain_hook,omitempty"`
	HandoffPath string `json:"handoff_path,omitempty"`
	// Replicas is how many replicas the active revision runs (without the
	// autoscaler).
	Replicas int `json:"replicas"`
	// MaxSessions caps sessions per replica; 0 means no cap.
	MaxSessions int `json:"max_sessions,omitempty"`
	// TargetSessions turns the autoscaler on (sessions per replica it aims
	// for), between MinReplicas and MaxReplicas; 0 is off.
	TargetSessions int      `json:"target_sessions,omitempty"`
	MinReplicas    int      `json:"min_replicas"`
	MaxReplicas    int      `json:"max_replicas,omitempty"`
	ScaleDownDelay Duration `json:"scale_down_delay"`
	// ReservationTTL is how long a get-endpoint answer holds its place.
	ReservationTTL Duration `json:"reservation_ttl,omitempty"`
	// Strategy is get-endpoint's choice among replicas: "packed" or "spread".
	Strategy string `json:"strategy,omitempty"`
	// ReconnectGrace is how long a draining revision stays empty before it
	// is retired; DrainTimeout bounds a drain (0: none); ShutdownGrace is
	// SIGTERM to SIGKILL; StartTimeout bounds starting before failed.
	ReconnectGrace Duration `json:"reconnect_grace"`
	DrainTimeout   Duration `json:"drain_timeout"`
	ShutdownGrace  Duration `json:"shutdown_grace"`
	StartTimeout   Duration `json:"start_timeout"`
	// Generation counts deploys: the newest revision has the highest.
	Generation int64 `json:"generation"`
	// Deleting is set once the app is being deleted.
	Deleting bool `json:"deleting,omitempty"`
	// LastDeploy is how the app's last deploy went (in the apps list).
	LastDeploy *DeployStatus `json:"last_deploy,omitempty"`
	// DrainFirst: the app is deleted once its players have left.
	DrainFirst bool      `json:"drain_first,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// String is one line: "acme/arena replicas 2 generation 3", with the
// protocol paths the app sets ("client /ws, drain hook /discovery/drain").
func (a App) String() string {
	s := fmt.Sprintf("%s/%s replicas %d generation %d", a.Tenant, a.Name, a.Replicas, a.Generation)
	var paths []string
	for _, p := range [][2]string{{"client", a.ClientPath}, {"drain hook", a.DrainHook}, {"handoff", a.HandoffPath}} {
		if p[1] != "" {
			paths = append(paths, p[0]+" "+p[1])
		}
	}
	if len(paths) > 0 {
		s += ", " + strings.Join(paths, ", ")
	}
	if a.Deleting {
		s += " (deleting)"
	}
	return s
}

// Setting is one of an app's settings, named as the API names it, with its
// value as dsh prints it.
type Setting struct {
	Name  string
	Value string
}

func (s Setting) String() string { return s.Name + " " + s.Value }

// Settings lists every setting AppSpec can change, paths first; an unset
// path or bound says what it means ("none (a TCP connect)", "no cap").
func (a App) Settings() []Setting {
	or := func(v, empty string) string {
		if v == "" {
			return empty
		}
		return v
	}
	num := func(n int, zero string) string {
		if n == 0 {
			return zero
		}
		return fmt.Sprint(n)
	}
	dur := func(d Duration, zero string) string {
		if d == 0 {
			return zero
		}
		return d.String()
	}
	return []Setting{
		{"port", fmt.Sprint(a.Port)},
		{"health_path", or(a.HealthPath, "none (a TCP connect)")},
		{"client_path", or(a.ClientPath, "none (clients dial the endpoint itself)")},
		{"drain_hook", or(a.DrainHook, "none (no drain notice is POSTed)")},
		{"handoff_path", or(a.HandoffPath, "none (players cannot be handed off to it)")},
		{"replicas", fmt.Sprint(a.Replicas)},
		{"max_sessions", num(a.MaxSessions, "no cap")},
		{"target_sessions", num(a.TargetSessions, "off (no autoscaler)")},
		{"min_replicas", fmt.Sprint(a.MinReplicas)},
		{"max_replicas", fmt.Sprint(a.MaxReplicas)},
		{"scale_down_delay", a.ScaleDownDelay.String()},
		{"reservation_ttl", dur(a.ReservationTTL, "the platform's default")},
		{"strategy", or(a.Strategy, "the platform's default")},
		{"reconnect_grace", a.ReconnectGrace.String()},
		{"drain_timeout", dur(a.DrainTimeout, "none (drains until empty)")},
		{"shutdown_grace", a.ShutdownGrace.String()},
		{"start_timeout", a.StartTimeout.String()},
	}
}

// AppSpec creates an app (Name required) or changes one. A nil field takes
// the platform's default on create and keeps its value on update.
type AppSpec struct {
	Name           string    `json:"name,omitempty"`
	Port           *int      `json:"port,omitempty"`
	HealthPath     *string   `json:"health_path,omitempty"`
	ClientPath     *string   `json:"client_path,omitempty"`
	DrainHook      *string   `json:"drain_hook,omitempty"`
	HandoffPath    *string   `json:"handoff_path,omitempty"`
	Replicas       *int      `json:"replicas,omitempty"`
	MaxSessions    *int      `json:"max_sessions,omitempty"`
	TargetSessions *int      `json:"target_sessions,omitempty"`
	MinReplicas    *int      `json:"min_replicas,omitempty"`
	MaxReplicas    *int      `json:"max_replicas,omitempty"`
	ScaleDownDelay *Duration `json:"scale_down_delay,omitempty"`
	ReservationTTL *Duration `json:"reservation_ttl,omitempty"`
	Strategy       *string   `json:"strategy,omitempty"`
	ReconnectGrace *Duration `json:"reconnect_grace,omitempty"`
	DrainTimeout   *Duration `json:"drain_timeout,omitempty"`
	ShutdownGrace  *Duration `json:"shutdown_grace,omitempty"`
	StartTimeout   *Duration `json:"start_timeout,omitempty"`
}

// Resources is what each replica of a revision asks for (Kubernetes runtime).
type Resources struct {
	CPUMillis int `json:"cpu_millis,omitempty"`
	MemoryMB  int `json:"memory_mb,omitempty"`
}

// RevisionSpec deploys a revision: an image (Kubernetes runtime) and/or the
// command the process runtime runs (argv; $PORT is set for it), with its
// environment.
type RevisionSpec struct {
	Image     string            `json:"image,omitempty"`
	Command   []string          `json:"command,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Resources *Resources        `json:"resources,omitempty"`
	// Label and Note are for people: a version name ("v1.4.2", at most 64
	// bytes) and what changed (at most 256), shown wherever the revision is.
	Label string `json:"label,omitempty"`
	Note  string `json:"note,omitempty"`
}

// Replica is one running instance of a revision.
type Replica struct {
	ID string `json:"id"`
	// State is starting, ready, unhealthy, stopping or exited.
	State string `json:"state"`
	// Address is host:port where it serves, once known.
	Address string `json:"address,omitempty"`
	// Stopping is set once the platform decided to stop it.
	Stopping  bool   `json:"stopping,omitempty"`
	CreatedAt string `json:"created_at,omitempty"`
}

// Revision is one immutable deployment of an app, with its lifecycle state
// and (when read from the API) its replicas.
type Revision struct {
	// ID is 8 hex characters.
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	App    string `json:"app"`
	// Generation orders an app's revisions: higher is newer.
	Generation int64             `json:"generation"`
	Image      string            `json:"image,omitempty"`
	Command    []string          `json:"command,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	Resources  *Resources        `json:"resources,omitempty"`
	Label      string            `json:"label,omitempty"`
	Note       string            `json:"note,omitempty"`
	State      RevisionState     `json:"state"`
	// Reason explains the last transition ("healthy", "superseded by …").
	Reason string `json:"reason,omitempty"`
	// LastOutput is the end of the output of the revision's last replica
	// that crashed, kept after its replicas are gone (at most 1 KiB).
	LastOutput  string     `json:"last_output,omitempty"`
	Crashes     int        `json:"crashes"`
	CreatedAt   time.Time  `json:"created_at"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	ActivatedAt *time.Time `json:"activated_at,omitempty"`
	DrainingAt  *time.Time `json:"draining_at,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	// Replicas is nil when the API answered without them (activate, retire).
	Replicas []Replica `json:"replicas,omitempty"`
}

// Ready counts the replicas passing their health check, and those running;
// a replica the platform is stopping counts as neither.
func (r Revision) Ready() (ready, running int) {
	for _, p := range r.Replicas {
		if p.Stopping || p.State == "exited" || p.State == "stopping" {
			continue
		}
		running++
		if p.State == "ready" {
			ready++
		}
	}
	return ready, running
}

// Spec is what the revision was deployed with.
func (r Revision) Spec() RevisionSpec {
	return RevisionSpec{Image: r.Image, Command: r.Command, Env: r.Env, Resources: r.Resources, Label: r.Label, Note: r.Note}
}

// String is one line: "9d00cc18 active (2/2 ready) generation 3", with the
// reason when the revision failed. The ready count is left out when the
// revision came without its replicas (the answers to activate and retire).
func (r Revision) String() string {
	s := fmt.Sprintf("%s %s generation %d", r.ID, r.State, r.Generation)
	if r.Replicas != nil {
		ready, running := r.Ready()
		s = fmt.Sprintf("%s %s (%d/%d ready) generation %d", r.ID, r.State, ready, running, r.Generation)
	}
	if r.State == Failed && r.Reason != "" {
		s += ": " + r.Reason
	}
	return s
}

// What is the image or command, shortened for a table.
func (r Revision) What() string {
	w := r.Image
	if len(r.Command) > 0 {
		w = strings.Join(r.Command, " ")
	}
	if len(w) > 48 {
		w = "…" + w[len(w)-47:]
	}
	return w
}

// Event is one line of an app's activity log.
type Event struct {
	// ID sorts events in time order; pass the last one seen as "after".
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Type     string    `json:"type"`
	Tenant   string    `json:"tenant"`
	App      string    `json:"app"`
	Revision string    `json:"revision,omitempty"`
	Replica  string    `json:"replica,omitempty"`
	// From and To are set on transitions.
	From    RevisionState `json:"from,omitempty"`
	To      RevisionState `json:"to,omitempty"`
	Message string        `json:"message"`
	// Actor is who did it: a token's subject, or "platform" for what the
	// platform did on its own (empty on events older than actors).
	Actor string `json:"actor,omitempty"`
	// Changes are what a settings change (app_updated) changed.
	Changes []SettingChange `json:"changes,omitempty"`
	// NoticeFigures and HandoffFigures are a notice's or a handoff's
	// counts as the platform records them (Notice and Handoff read them).
	NoticeFigures  *NoticeFigures  `json:"notice,omitempty"`
	HandoffFigures *HandoffFigures `json:"handoff,omitempty"`
}

// DeployStatus is how an app's last deploy went: its newest revision.
type DeployStatus struct {
	Revision   string        `json:"revision"`
	Generation int64         `json:"generation"`
	State      RevisionState `json:"state"`
	Reason     string        `json:"reason,omitempty"`
	Label      string        `json:"label,omitempty"`
	// Failed: the revision never became active (its LastOutput says why).
	Failed bool `json:"failed,omitempty"`
}

// SettingChange is one setting an app_updated event changed, as text.
type SettingChange struct {
	Field string `json:"field"`
	Old   string `json:"old"`
	New   string `json:"new"`
}

// NoticeFigures are a notice event's counts.
type NoticeFigures struct {
	State          string `json:"state"`
	ActiveRevision string `json:"active_revision,omitempty"`
	Told           int    `json:"told"`
	Replicas       int    `json:"replicas"`
	Hook           string `json:"hook"`
}

// HandoffFigures are a handoff event's counts.
type HandoffFigures struct {
	To     string `json:"to,omitempty"`
	Moved  int    `json:"moved"`
	Failed int    `json:"failed"`
}

// String is one line: time, the type's symbol (see Symbol), type, revision
// and the platform's message, then who asked when a person did.
func (e Event) String() string {
	s := fmt.Sprintf("%s %s %-16s %-8s %s", e.Time.Local().Format("15:04:05"), e.Symbol(), e.Type, e.Revision, e.Message)
	if e.Actor != "" && e.Actor != "platform" {
		s += " (by " + e.Actor + ")"
	}
	return s
}

// Endpoint is get-endpoint's answer: where one client should connect. It
// pins tenant, app, revision and replica, and holds a place for ExpiresIn
// seconds.
type Endpoint struct {
	// Socket is the WebSocket URL a game client dials as it is: Endpoint
	// followed by the app's client_path (and, for a handoff's target, the
	// ticket). Empty from a platform older than client_path.
	Socket string `json:"socket,omitempty"`
	// Endpoint is the WebSocket URL of the replica's base; URL the same
	// place over http(s).
	Endpoint  string `json:"endpoint"`
	URL       string `json:"url"`
	Tenant    string `json:"tenant"`
	App       string `json:"app"`
	Revision  string `json:"revision"`
	Replica   string `json:"replica"`
	ExpiresIn int    `json:"expires_in"`
}

// Dial is the URL to dial: Socket, or Endpoint from a platform that does
// not answer Socket.
func (e Endpoint) Dial() string {
	if e.Socket != "" {
		return e.Socket
	}
	return e.Endpoint
}

func (e Endpoint) String() string {
	return fmt.Sprintf("%s (revision %s, replica %s, held %ds)", e.Dial(), e.Revision, e.Replica, e.ExpiresIn)
}

// Quota bounds what a tenant may run.
type Quota struct {
	MaxApps int `json:"max_apps"`
	// MaxReplicas counts every revision's replicas, draining ones included.
	MaxReplicas int `json:"max_replicas"`
	// MaxRevisions is how many retired or failed revisions an app keeps.
	MaxRevisions int `json:"max_revisions"`
	// MaxCPUMillis and MaxMemoryMB bound one replica's request.
	MaxCPUMillis int `json:"max_cpu_millis"`
	MaxMemoryMB  int `json:"max_memory_mb"`
	// MaxLeasesPerRevision bounds the app-held leases one revision may hold
	// (the platform's default is 100).
	MaxLeasesPerRevision int `json:"max_leases_per_revision"`
	// MaxStoredBytes bounds what the tenant's revision specs (image,
	// command, env) occupy in the platform's store, over every revision kept
	// (the platform's default is 4 MiB).
	MaxStoredBytes int64 `json:"max_stored_bytes"`
}

func (q Quota) String() string {
	return fmt.Sprintf("apps %d, replicas %d, revisions kept %d, per replica %dm CPU %d MB, leases per revision %d, stored %s",
		q.MaxApps, q.MaxReplicas, q.MaxRevisions, q.MaxCPUMillis, q.MaxMemoryMB, q.MaxLeasesPerRevision, Bytes(q.MaxStoredBytes))
}

// Patch is the QuotaPatch that sets every field of q, except the two that
// cannot be 0 (MaxLeasesPerRevision, MaxStoredBytes) when they are: those
// keep the tenant's value, so a Quota written before they existed still
// sets what it names.
func (q Quota) Patch() QuotaPatch {
	p := QuotaPatch{MaxApps: Int(q.MaxApps), MaxReplicas: Int(q.MaxReplicas), MaxRevisions: Int(q.MaxRevisions),
		MaxCPUMillis: Int(q.MaxCPUMillis), MaxMemoryMB: Int(q.MaxMemoryMB)}
	if q.MaxLeasesPerRevision != 0 {
		p.MaxLeasesPerRevision = Int(q.MaxLeasesPerRevision)
	}
	if q.MaxStoredBytes != 0 {
		p.MaxStoredBytes = Int64(q.MaxStoredBytes)
	}
	return p
}

// QuotaPatch changes some fields of a tenant's quota; a nil field keeps its
// value: client.QuotaPatch{MaxApps: client.Int(5)}.
type QuotaPatch struct {
	MaxApps              *int   `json:"max_apps,omitempty"`
	MaxReplicas          *int   `json:"max_replicas,omitempty"`
	MaxRevisions         *int   `json:"max_revisions,omitempty"`
	MaxCPUMillis         *int   `json:"max_cpu_millis,omitempty"`
	MaxMemoryMB          *int   `json:"max_memory_mb,omitempty"`
	MaxLeasesPerRevision *int   `json:"max_leases_per_revision,omitempty"`
	MaxStoredBytes       *int64 `json:"max_stored_bytes,omitempty"`
}

// Usage is what a tenant uses of its quota.
type Usage struct {
	Apps     int `json:"apps"`
	Replicas int `json:"replicas"`
	// Revisions counts the revisions the tenant's apps keep, every state.
	Revisions int `json:"revisions"`
	// StoredBytes is the size of every revision spec the tenant keeps: what
	// MaxStoredBytes bounds.
	StoredBytes int64 `json:"stored_bytes"`
}

// QuotaUsage is a tenant's quota with its usage.
type QuotaUsage struct {
	Quota
	Usage Usage `json:"usage"`
}

func (q QuotaUsage) String() string {
	return fmt.Sprintf("apps %d/%d, replicas %d/%d, stored %s/%s, revisions %d (%d kept per app), per replica %dm CPU %d MB, leases per revision %d",
		q.Usage.Apps, q.MaxApps, q.Usage.Replicas, q.MaxReplicas, Bytes(q.Usage.StoredBytes), Bytes(q.MaxStoredBytes),
		q.Usage.Revisions, q.MaxRevisions, q.MaxCPUMillis, q.MaxMemoryMB, q.MaxLeasesPerRevision)
}

// Bytes is a byte count printed in KiB, MiB or GiB ("4 MiB", "512 B").
type Bytes int64

func (b Bytes) String() string {
	const k = 1024
	switch {
	case b >= k*k*k && b%(k*k*k) == 0:
		return fmt.Sprintf("%d GiB", b/(k*k*k))
	case b >= k*k:
		return trimFloat(float64(b)/(k*k)) + " MiB"
	case b >= k:
		return trimFloat(float64(b)/k) + " KiB"
	}
	return fmt.Sprintf("%d B", int64(b))
}

// trimFloat prints v with at most one decimal, none when it is whole.
func trimFloat(v float64) string {
	return strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0")
}

// Tenant is an isolated customer of the platform.
type Tenant struct {
	Name string `json:"name"`
	// Namespace is the Kubernetes namespace its replicas run in.
	Namespace string `json:"namespace"`
	Quota     Quota  `json:"quota"`
	// AllowCommands lets the tenant's deployers deploy raw commands on the
	// process runtime (they run on the platform's machine); a platform
	// admin sets it for trusted tenants only (SetTenantTrust). Other
	// tenants deploy images from the catalog (Images).
	AllowCommands bool `json:"allow_commands,omitempty"`
	// Seq is the tenant's number, never reused (on the process runtime its
	// replicas run as their own uid, derived from it).
	Seq       int       `json:"seq,omitempty"`
	Deleting  bool      `json:"deleting,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

func (t Tenant) String() string {
	s := fmt.Sprintf("tenant %s (namespace %s)", t.Name, t.Namespace)
	if t.AllowCommands {
		s += ", may deploy commands"
	}
	if t.Deleting {
		s += " (deleting)"
	}
	return s
}

// TenantPatch changes a tenant (admin): some fields of its quota, and
// whether it may deploy raw commands. A nil field keeps its value.
type TenantPatch struct {
	Quota         *QuotaPatch `json:"quota,omitempty"`
	AllowCommands *bool       `json:"allow_commands,omitempty"`
}

// TenantSpec creates a tenant; a nil Quota takes the platform's default. A
// Quota given here must set every field (MaxLeasesPerRevision and
// MaxStoredBytes cannot be 0); to change a few, create with nil and PatchQuota.
type TenantSpec struct {
	Name  string `json:"name"`
	Quota *Quota `json:"quota,omitempty"`
}

// TenantDeletion is the answer to deleting a tenant: its apps are retired
// first, then it is removed.
type TenantDeletion struct {
	Tenant       string `json:"tenant"`
	Deleting     bool   `json:"deleting"`
	AppsRetiring int    `json:"apps_retiring"`
	Message      string `json:"message"`
}

func (d TenantDeletion) String() string { return "tenant " + d.Tenant + ": " + d.Message }

// Roles a member of a tenant may have.
const (
	RoleOwner    = "owner"
	RoleDeployer = "deployer"
	RoleViewer   = "viewer"
)

// Member is a subject's role in a tenant.
type Member struct {
	Subject string `json:"subject"`
	Role    string `json:"role"`
}

func (m Member) String() string { return m.Subject + " " + m.Role }

// TokenRequest issues a token. A platform admin may issue one for any
// subject, bound to a tenant or (Tenant "") unscoped. Anyone else must name
// Tenant: an owner of that tenant issues tokens bound to it, for its members
// whose role there is not above the owner's own (never for a platform admin).
// A token bound to a tenant grants its subject's role in that tenant and
// nothing anywhere else.
type TokenRequest struct {
	Subject string `json:"subject"`
	// TTL is the token's lifetime (the platform's default, 24h, when 0).
	TTL Duration `json:"ttl,omitempty"`
	// Tenant binds the token to one tenant: required unless a platform admin
	// issues an unscoped token.
	Tenant string `json:"tenant,omitempty"`
}

// Token is an issued bearer token. Keep Token secret; ID revokes it.
type Token struct {
	Token   string `json:"token"`
	ID      string `json:"id"`
	Subject string `json:"subject"`
	// Tenant is the tenant the token is bound to ("" for unscoped).
	Tenant    string    `json:"tenant,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// String leaves the secret out.
func (t Token) String() string {
	scope := ""
	if t.Tenant != "" {
		scope = " in tenant " + t.Tenant
	}
	return fmt.Sprintf("token %s for %s%s, expires %s", t.ID, t.Subject, scope, t.ExpiresAt.Local().Format(time.RFC3339))
}

// Identity is who the caller is, and what it may do in a tenant.
type Identity struct {
	Subject string `json:"subject"`
	// Admin is a platform admin (never with a token bound to a tenant).
	Admin bool `json:"admin"`
	// Scope is the tenant the caller's token is bound to ("" for unscoped):
	// such a token grants nothing outside it.
	Scope string `json:"scope,omitempty"`
	// Tenant is the tenant asked about; Role the caller's role there ("" for
	// none).
	Tenant string `json:"tenant,omitempty"`
	Role   string `json:"role"`
	// Can maps "object:action" (e.g. "revisions:write", "leases:write",
	// "images:write") to whether the caller may do it in Tenant.
	Can map[string]bool `json:"can"`
}

func (i Identity) String() string {
	s := i.Subject
	if i.Admin {
		s += " (platform admin)"
	}
	if i.Scope != "" {
		s += " (token bound to tenant " + i.Scope + ")"
	}
	switch {
	case i.Tenant == "":
	case i.Role != "":
		s += fmt.Sprintf(", %s in tenant %s", i.Role, i.Tenant)
	case i.Admin:
		s += ", tenant " + i.Tenant
	default:
		s += ", no role in tenant " + i.Tenant
	}
	return s
}

// Image is one entry of the platform's image catalog: an image tenants may
// deploy on the process runtime, and the command a platform admin mapped it
// to. (On Kubernetes images are pulled; the catalog is not consulted.)
type Image struct {
	// Ref is what a deploy names: "example/arena:0.2".
	Ref string `json:"image"`
	// Command is what the process runtime runs for it: an absolute program
	// path and its arguments.
	Command []string `json:"command"`
	// Description tells tenants what the image is.
	Description string    `json:"description,omitempty"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func (i Image) String() string {
	s := i.Ref + " runs " + strings.Join(i.Command, " ")
	if i.Description != "" {
		s += " (" + i.Description + ")"
	}
	return s
}

// Lease is an app-held lease: while it lives, its revision (and replica, if
// named) counts as having a session, so it is neither retired nor scaled
// down. Its holder keeps it alive before TTL runs out (KeepLease).
type Lease struct {
	// ID is the holder's handle, the lease number and a secret: only the
	// answer to TakeLease carries it.
	ID string `json:"id,omitempty"`
	// Lease is the lease number, by which the tenant's owners and deployers
	// list and release it (ReleaseLease).
	Lease    string `json:"lease"`
	Tenant   string `json:"tenant"`
	App      string `json:"app"`
	Revision string `json:"revision"`
	Replica  string `json:"replica,omitempty"`
	// TTL is the time to live each keep-alive renews.
	TTL Duration `json:"ttl"`
	// Holder says who took it: a subject, or "revision capability" for a
	// replica of the revision.
	Holder    string    `json:"holder,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresIn is how long it has left, when listed.
	ExpiresIn Duration `json:"expires_in,omitempty"`
}

func (l Lease) String() string {
	s := fmt.Sprintf("lease %s on %s/%s revision %s", l.Lease, l.Tenant, l.App, l.Revision)
	if l.Replica != "" {
		s += " replica " + l.Replica
	}
	if l.Holder != "" {
		s += " held by " + l.Holder
	}
	if l.ExpiresIn > 0 {
		s += fmt.Sprintf(", %s left", l.ExpiresIn.D().Round(time.Second))
	} else {
		s += ", ttl " + l.TTL.String()
	}
	return s
}

// LeaseSpec takes a lease: its TTL (the platform's default, 30s, when 0;
// 1s to 1h) and, optionally, the one replica of the revision it holds.
type LeaseSpec struct {
	TTL     Duration `json:"ttl,omitempty"`
	Replica string   `json:"replica,omitempty"`
}
