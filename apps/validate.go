package apps

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Limits a request must stay within. They keep one tenant's typo from asking for
// a million replicas or a week-long grace.
const (
	MaxReplicas      = 100
	MaxSessionsLimit = 1_000_000
	MaxGrace         = 24 * time.Hour
	MaxCommandArgs   = 64
	MaxArgLen        = 4096
	MaxEnvVars       = 128
	MaxEnvValueLen   = 32 << 10
	MaxImageLen      = 512
	MaxHealthPathLen = 256
	// MaxSpecBytes bounds one revision spec (image, command, env): what a
	// deploy may store.
	MaxSpecBytes = 64 << 10
)

// Defaults for fields an app create request leaves out.
const (
	DefaultPort           = 8080
	DefaultReplicas       = 1
	DefaultReconnectGrace = 30 * time.Second
	DefaultShutdownGrace  = 10 * time.Second
	DefaultStartTimeout   = 60 * time.Second
	DefaultScaleDownDelay = 30 * time.Second
)

var (
	dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	envName      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// ValidName checks a DNS-1123 label: what Kubernetes accepts as a namespace or
// label value, and what is safe in a URL path and an etcd key.
func ValidName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%w: %s name is required", ErrInvalid, kind)
	}
	if len(name) > 63 || !dns1123Label.MatchString(name) {
		return fmt.Errorf("%w: %s name %q must be a DNS-1123 label: at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit", ErrInvalid, kind, truncate(name, 80))
	}
	return nil
}

// AppSpec is a create or update request for an app. Nil fields keep their
// current value (update) or take the default (create).
type AppSpec struct {
	Name           string    `json:"name,omitempty"`
	Port           *int      `json:"port,omitempty"`
	HealthPath     *string   `json:"health_path,omitempty"`
	Replicas       *int      `json:"replicas,omitempty"`
	MaxSessions    *int      `json:"max_sessions,omitempty"`
	TargetSessions *int      `json:"target_sessions,omitempty"`
	MinReplicas    *int      `json:"min_replicas,omitempty"`
	MaxReplicas    *int      `json:"max_replicas,omitempty"`
	ScaleDownDelay *Duration `json:"scale_down_delay,omitempty"`
	Strategy       *Strategy `json:"strategy,omitempty"`
	ReconnectGrace *Duration `json:"reconnect_grace,omitempty"`
	DrainTimeout   *Duration `json:"drain_timeout,omitempty"`
	ShutdownGrace  *Duration `json:"shutdown_grace,omitempty"`
	StartTimeout   *Duration `json:"start_timeout,omitempty"`
}

// NewApp builds a valid app from a create request, filling defaults.
func NewApp(tenant string, spec AppSpec, now time.Time) (App, error) {
	if err := ValidName("tenant", tenant); err != nil {
		return App{}, err
	}
	if err := ValidName("app", spec.Name); err != nil {
		return App{}, err
	}
	a := App{
		Tenant:         tenant,
		Name:           spec.Name,
		Port:           DefaultPort,
		Replicas:       DefaultReplicas,
		ReconnectGrace: Duration(DefaultReconnectGrace),
		ShutdownGrace:  Duration(DefaultShutdownGrace),
		StartTimeout:   Duration(DefaultStartTimeout),
		MinReplicas:    1,
		MaxReplicas:    10,
		ScaleDownDelay: Duration(DefaultScaleDownDelay),
		Strategy:       Packed,
		CreatedAt:      now,
		UpdatedAt:      now,
	}
	spec.Name = ""
	if err := a.Apply(spec, now); err != nil {
		return App{}, err
	}
	return a, nil
}

// Apply changes the app's settings from an update request and validates the
// result; on error the app is unchanged.
func (a *App) Apply(spec AppSpec, now time.Time) error {
	if spec.Name != "" && spec.Name != a.Name {
		return fmt.Errorf("%w: an app's name cannot change", ErrInvalid)
	}
	b := *a
	set(&b.Port, spec.Port)
	set(&b.HealthPath, spec.HealthPath)
	set(&b.Replicas, spec.Replicas)
	set(&b.MaxSessions, spec.MaxSessions)
	set(&b.ReconnectGrace, spec.ReconnectGrace)
	set(&b.DrainTimeout, spec.DrainTimeout)
	set(&b.ShutdownGrace, spec.ShutdownGrace)
	set(&b.StartTimeout, spec.StartTimeout)
	set(&b.TargetSessions, spec.TargetSessions)
	set(&b.MinReplicas, spec.MinReplicas)
	set(&b.MaxReplicas, spec.MaxReplicas)
	set(&b.ScaleDownDelay, spec.ScaleDownDelay)
	set(&b.Strategy, spec.Strategy)
	if err := b.Validate(); err != nil {
		return err
	}
	b.UpdatedAt = now
	*a = b
	return nil
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// Validate checks every field against the platform's limits.
func (a App) Validate() error {
	if err := ValidName("tenant", a.Tenant); err != nil {
		return err
	}
	if err := ValidName("app", a.Name); err != nil {
		return err
	}
	if a.Port < 1 || a.Port > 65535 {
		return fmt.Errorf("%w: port %d out of range 1-65535", ErrInvalid, a.Port)
	}
	if a.HealthPath != "" && (!strings.HasPrefix(a.HealthPath, "/") || len(a.HealthPath) > MaxHealthPathLen || strings.ContainsAny(a.HealthPath, " \t\r\n")) {
		return fmt.Errorf("%w: health_path must be an absolute URL path (starting with '/', no spaces, at most %d bytes)", ErrInvalid, MaxHealthPathLen)
	}
	if a.Replicas < 0 || a.Replicas > MaxReplicas {
		return fmt.Errorf("%w: replicas %d out of range 0-%d", ErrInvalid, a.Replicas, MaxReplicas)
	}
	if a.MaxSessions < 0 || a.MaxSessions > MaxSessionsLimit {
		return fmt.Errorf("%w: max_sessions %d out of range 0-%d", ErrInvalid, a.MaxSessions, MaxSessionsLimit)
	}
	if a.TargetSessions < 0 || a.TargetSessions > MaxSessionsLimit {
		return fmt.Errorf("%w: target_sessions %d out of range 0-%d", ErrInvalid, a.TargetSessions, MaxSessionsLimit)
	}
	if a.MinReplicas < 0 || a.MaxReplicas < 0 || a.MaxReplicas > MaxReplicas || a.MinReplicas > a.MaxReplicas {
		return fmt.Errorf("%w: want 0 <= min_replicas (%d) <= max_replicas (%d) <= %d", ErrInvalid, a.MinReplicas, a.MaxReplicas, MaxReplicas)
	}
	if a.TargetSessions > 0 && a.MaxSessions > 0 && a.TargetSessions > a.MaxSessions {
		return fmt.Errorf("%w: target_sessions %d above max_sessions %d: replicas would fill before the autoscaler adds one", ErrInvalid, a.TargetSessions, a.MaxSessions)
	}
	if a.Strategy != "" && a.Strategy != Packed && a.Strategy != Spread {
		return fmt.Errorf("%w: strategy %q: want packed or spread", ErrInvalid, a.Strategy)
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{{"reconnect_grace", a.ReconnectGrace}, {"drain_timeout", a.DrainTimeout}, {"shutdown_grace", a.ShutdownGrace}, {"start_timeout", a.StartTimeout}, {"scale_down_delay", a.ScaleDownDelay}} {
		if d.v < 0 || d.v.D() > MaxGrace {
			return fmt.Errorf("%w: %s %s out of range 0-%s", ErrInvalid, d.name, d.v, MaxGrace)
		}
	}
	if a.StartTimeout.D() < time.Second {
		return fmt.Errorf("%w: start_timeout %s must be at least 1s", ErrInvalid, a.StartTimeout)
	}
	return nil
}

// RevisionSpec is a deploy request: what to run.
type RevisionSpec struct {
	Image     string            `json:"image,omitempty"`
	Command   []string          `json:"command,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Resources *Resources        `json:"resources,omitempty"`
}

// Validate checks a deploy request. HOST, PORT, POD_IP and DISCOVERY_* are
// reserved: the runtime sets them (apps listen on $HOST:$PORT).
func (s RevisionSpec) Validate() error {
	if s.Image == "" && len(s.Command) == 0 {
		return fmt.Errorf("%w: a revision needs an image or a command", ErrInvalid)
	}
	if len(s.Image) > MaxImageLen || strings.ContainsAny(s.Image, " \t\r\n") {
		return fmt.Errorf("%w: image must be at most %d bytes with no spaces", ErrInvalid, MaxImageLen)
	}
	if len(s.Command) > MaxCommandArgs {
		return fmt.Errorf("%w: command has %d arguments, at most %d allowed", ErrInvalid, len(s.Command), MaxCommandArgs)
	}
	if len(s.Command) > 0 && strings.TrimSpace(s.Command[0]) == "" {
		return fmt.Errorf("%w: command[0] (the program) is empty", ErrInvalid)
	}
	for i, arg := range s.Command {
		if len(arg) > MaxArgLen || strings.ContainsRune(arg, 0) {
			return fmt.Errorf("%w: command[%d] must be at most %d bytes with no NUL", ErrInvalid, i, MaxArgLen)
		}
	}
	if s.Resources != nil {
		if err := s.Resources.Validate(); err != nil {
			return err
		}
	}
	if len(s.Env) > MaxEnvVars {
		return fmt.Errorf("%w: %d env vars, at most %d allowed", ErrInvalid, len(s.Env), MaxEnvVars)
	}
	if n := s.Size(); n > MaxSpecBytes {
		return fmt.Errorf("%w: the revision spec (image, command, env) is %d bytes, at most %d", ErrInvalid, n, MaxSpecBytes)
	}
	for k, v := range s.Env {
		if !envName.MatchString(k) || len(k) > 256 {
			return fmt.Errorf("%w: env name %q must match [A-Za-z_][A-Za-z0-9_]*", ErrInvalid, truncate(k, 80))
		}
		if k == "PORT" || k == "HOST" || k == "POD_IP" || strings.HasPrefix(k, "DISCOVERY_") {
			return fmt.Errorf("%w: env %s is reserved: the platform sets it", ErrInvalid, k)
		}
		if len(v) > MaxEnvValueLen || strings.ContainsRune(v, 0) {
			return fmt.Errorf("%w: env %s must be at most %d bytes with no NUL", ErrInvalid, k, MaxEnvValueLen)
		}
	}
	return nil
}

// Size is what the spec occupies: the bytes of its image, command and env,
// what max_stored_bytes counts.
func (s RevisionSpec) Size() int64 {
	n := int64(len(s.Image))
	for _, arg := range s.Command {
		n += int64(len(arg)) + 1
	}
	for k, v := range s.Env {
		n += int64(len(k)+len(v)) + 2
	}
	if s.Resources != nil {
		n += 16
	}
	return n
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
