package apps

import (
	"fmt"
	"time"
)

// What operators send: a create or update request for an app, and a deploy
// request for a revision. Their rules are in validate.go.

// AppSpec is a create or update request for an app. Nil fields keep their
// current value (update) or take the default (create).
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
		ReservationTTL: Duration(DefaultReservationTTL),
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
	set(&b.ClientPath, spec.ClientPath)
	set(&b.DrainHook, spec.DrainHook)
	set(&b.HandoffPath, spec.HandoffPath)
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
	set(&b.ReservationTTL, spec.ReservationTTL)
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

// RevisionSpec is a deploy request: what to run.
type RevisionSpec struct {
	Image     string            `json:"image,omitempty"`
	Command   []string          `json:"command,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Resources *Resources        `json:"resources,omitempty"`
	// Label and Note are for people: a version name ("v1.4.2") and a line
	// on what changed, shown wherever the revision is.
	Label string `json:"label,omitempty"`
	Note  string `json:"note,omitempty"`
}

// Size is what the spec occupies: the bytes of its image, command, env,
// label and note,
// what max_stored_bytes counts.
func (s RevisionSpec) Size() int64 {
	n := int64(len(s.Image) + len(s.Label) + len(s.Note))
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
