// Package apps is dsh's view of the current tenant's apps: create, list,
// read (Settings lists every setting), change, scale, delete, and Ensure for
// scripts that declare their apps.
// It is a thin layer over the client bound to the dsh session.
package apps

import (
	"time"

	"github.com/discovery-platform/discovery/client"
	"github.com/discovery-platform/discovery/shell/lib/dsh"
)

// Spec declares an app's settings. A zero field is left out: the platform's
// default on Create, unchanged on Update, not compared by Ensure. To set a
// field to zero (scale-to-zero MinReplicas, no MaxSessions cap) use Patch with
// a client.AppSpec.
type Spec struct {
	// Name is the app's name, a DNS-1123 label (required by Create, Ensure).
	Name string
	// Port is the container port (Kubernetes runtime).
	Port int
	// HealthPath is probed over HTTP for readiness ("" keeps a TCP check).
	HealthPath string
	// ClientPath is where game clients connect under a replica's endpoint
	// (get-endpoint's socket ends with it: "/ws"); DrainHook is the path
	// drain notices are POSTed to; HandoffPath receives handed-off players'
	// state (sdk/PROTOCOL.md). To clear one, Patch it with client.String("").
	ClientPath  string
	DrainHook   string
	HandoffPath string
	// Replicas is how many replicas the active revision runs.
	Replicas int
	// MaxSessions caps sessions per replica.
	MaxSessions int
	// TargetSessions turns the autoscaler on, between MinReplicas and
	// MaxReplicas, waiting ScaleDownDelay before removing an idle replica.
	TargetSessions int
	MinReplicas    int
	MaxReplicas    int
	ScaleDownDelay time.Duration
	// ReservationTTL is how long a get-endpoint answer holds its place on a
	// replica (1s to 2m; the platform's default is 10s).
	ReservationTTL time.Duration
	// Strategy is "packed" or "spread".
	Strategy string
	// ReconnectGrace, DrainTimeout, ShutdownGrace and StartTimeout: see the
	// README's app settings.
	ReconnectGrace time.Duration
	DrainTimeout   time.Duration
	ShutdownGrace  time.Duration
	StartTimeout   time.Duration
}

// ClientSpec is the API request for s: only its non-zero fields set.
func (s Spec) ClientSpec() client.AppSpec {
	cs := client.AppSpec{Name: s.Name}
	setInt(&cs.Port, s.Port)
	setString(&cs.HealthPath, s.HealthPath)
	setString(&cs.ClientPath, s.ClientPath)
	setString(&cs.DrainHook, s.DrainHook)
	setString(&cs.HandoffPath, s.HandoffPath)
	setInt(&cs.Replicas, s.Replicas)
	setInt(&cs.MaxSessions, s.MaxSessions)
	setInt(&cs.TargetSessions, s.TargetSessions)
	setInt(&cs.MinReplicas, s.MinReplicas)
	setInt(&cs.MaxReplicas, s.MaxReplicas)
	setDur(&cs.ScaleDownDelay, s.ScaleDownDelay)
	setDur(&cs.ReservationTTL, s.ReservationTTL)
	setString(&cs.Strategy, s.Strategy)
	setDur(&cs.ReconnectGrace, s.ReconnectGrace)
	setDur(&cs.DrainTimeout, s.DrainTimeout)
	setDur(&cs.ShutdownGrace, s.ShutdownGrace)
	setDur(&cs.StartTimeout, s.StartTimeout)
	return cs
}

func setInt(p **int, v int) {
	if v != 0 {
		*p = client.Int(v)
	}
}

func setString(p **string, v string) {
	if v != "" {
		*p = client.String(v)
	}
}

func setDur(p **client.Duration, v time.Duration) {
	if v != 0 {
		*p = client.Dur(v)
	}
}

// List lists the tenant's apps.
func List() ([]client.App, error) {
	c, err := dsh.Connected()
	if err != nil {
		return nil, err
	}
	return c.ListApps(dsh.Context(), dsh.Tenant())
}

// Names lists the tenant's app names.
func Names() ([]string, error) {
	list, err := List()
	names := make([]string, 0, len(list))
	for _, a := range list {
		names = append(names, a.Name)
	}
	return names, err
}

// Create creates an app.
func Create(spec Spec) (client.App, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.App{}, err
	}
	return c.CreateApp(dsh.Context(), dsh.Tenant(), spec.ClientSpec())
}

// Get reads an app.
func Get(name string) (client.App, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.App{}, err
	}
	return c.GetApp(dsh.Context(), dsh.Tenant(), name)
}

// Settings lists every setting of an app with its value, unset ones saying
// what they mean: apps.Settings("arena").
func Settings(name string) ([]client.Setting, error) {
	a, err := Get(name)
	if err != nil {
		return nil, err
	}
	return a.Settings(), nil
}

// Update changes the settings spec sets (its Name may be left empty).
func Update(name string, spec Spec) (client.App, error) {
	spec.Name = ""
	return Patch(name, spec.ClientSpec())
}

// Patch changes exactly the fields spec sets, zeros included:
// apps.Patch("arena", client.AppSpec{MinReplicas: client.Int(0)}).
func Patch(name string, spec client.AppSpec) (client.App, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.App{}, err
	}
	return c.UpdateApp(dsh.Context(), dsh.Tenant(), name, spec)
}

// Scale sets how many replicas the active revision runs (0 included).
func Scale(name string, replicas int) (client.App, error) {
	return Patch(name, client.AppSpec{Replicas: client.Int(replicas)})
}

// Delete deletes an app: every revision is retired, then the app is removed.
// An app with players connected is refused, naming them: see DeleteNow and
// DeleteWhenEmpty.
func Delete(name string) (client.App, error) { return deleteApp(name, client.DeleteOptions{}) }

// DeleteNow deletes an app even with players connected: they are cut.
func DeleteNow(name string) (client.App, error) {
	return deleteApp(name, client.DeleteOptions{Force: true})
}

// DeleteWhenEmpty deletes an app once its players have left: no new
// players, every revision drains as after a deploy, then the app goes.
func DeleteWhenEmpty(name string) (client.App, error) {
	return deleteApp(name, client.DeleteOptions{Drain: true})
}

func deleteApp(name string, opt client.DeleteOptions) (client.App, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.App{}, err
	}
	return c.DeleteAppWith(dsh.Context(), dsh.Tenant(), name, opt)
}

// Ensure makes the app match spec: creates it, changes what differs, or
// changes nothing ("unchanged"). Run twice, the second run changes nothing.
func Ensure(spec Spec) (client.AppChange, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.AppChange{}, err
	}
	return c.EnsureApp(dsh.Context(), dsh.Tenant(), spec.ClientSpec())
}
