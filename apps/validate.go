package apps

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/discovery-platform/discovery/tenants"
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
	DefaultReservationTTL = 10 * time.Second
	// MaxReservationTTL bounds reservation_ttl: a reservation is for a
	// client on its way to the socket.
	MaxReservationTTL = 2 * time.Minute
)

var (
	envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// ValidName checks a DNS-1123 label: what Kubernetes accepts as a namespace or
// label value, and what is safe in a URL path and an etcd key.
func ValidName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%w: %s name is required", ErrInvalid, kind)
	}
	if !tenants.IsLabel(name) {
		return fmt.Errorf("%w: %s name %q must be a DNS-1123 label: at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit", ErrInvalid, kind, truncate(name, 80))
	}
	return nil
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
	for _, p := range []struct{ name, v string }{{"health_path", a.HealthPath}, {"client_path", a.ClientPath}, {"drain_hook", a.DrainHook}, {"handoff_path", a.HandoffPath}} {
		if err := validPath(p.name, p.v); err != nil {
			return err
		}
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
	if a.ReservationTTL != 0 && (a.ReservationTTL.D() < time.Second || a.ReservationTTL.D() > MaxReservationTTL) {
		return fmt.Errorf("%w: reservation_ttl %s out of range 1s-%s", ErrInvalid, a.ReservationTTL, MaxReservationTTL)
	}
	if a.StartTimeout.D() < time.Second {
		return fmt.Errorf("%w: start_timeout %s must be at least 1s", ErrInvalid, a.StartTimeout)
	}
	return nil
}

// validPath checks an app's path setting: empty, or an absolute URL path of
// printable ASCII without query, fragment or dot segments, at most
// MaxHealthPathLen bytes.
func validPath(name, p string) error {
	if p == "" {
		return nil
	}
	bad := !strings.HasPrefix(p, "/") || len(p) > MaxHealthPathLen || strings.ContainsAny(p, "?#%\\")
	for _, c := range []byte(p) {
		bad = bad || c <= ' ' || c >= 0x7f
	}
	for _, seg := range strings.Split(p, "/") {
		bad = bad || seg == "." || seg == ".."
	}
	if bad {
		return fmt.Errorf("%w: %s must be an absolute URL path (starting with '/', printable ASCII, no spaces, '?', '#', '%%', '\\' or dot segments, at most %d bytes)", ErrInvalid, name, MaxHealthPathLen)
	}
	return nil
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
	if err := validText("label", s.Label, MaxLabelLen); err != nil {
		return err
	}
	if err := validText("note", s.Note, MaxNoteLen); err != nil {
		return err
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

// Bounds of a revision's label and note.
const (
	MaxLabelLen = 64
	MaxNoteLen  = 256
)

// validText checks a line of text for people: UTF-8, at most max bytes, no
// control characters (a label lands in terminals and pages).
func validText(name, s string, max int) error {
	if len(s) > max || !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return fmt.Errorf("%w: %s must be at most %d bytes of UTF-8 text on one line, without control characters", ErrInvalid, name, max)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
