// Package tenants holds the platform's tenants: isolated customers, each mapped
// to its own Kubernetes namespace (<prefix><tenant>) and bounded by a quota.
// A "default" tenant exists from the first start.
package tenants

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Default is the tenant that exists from the first start.
const Default = "default"

// Sentinel errors of the tenants domain.
var (
	ErrNotFound      = errors.New("tenants: not found")
	ErrExists        = errors.New("tenants: already exists")
	ErrInvalid       = errors.New("tenants: invalid")
	ErrConflict      = errors.New("tenants: conflict")
	ErrQuotaExceeded = errors.New("tenants: quota exceeded")
)

// Quota bounds what a tenant may run.
type Quota struct {
	// MaxApps is how many apps the tenant may have.
	MaxApps int `json:"max_apps"`
	// MaxReplicas counts replicas of every revision, draining ones included.
	MaxReplicas int `json:"max_replicas"`
	// MaxRevisions is how many retired or failed revisions an app keeps.
	MaxRevisions int `json:"max_revisions"`
	// MaxCPUMillis and MaxMemoryMB bound one replica's resource request.
	MaxCPUMillis int `json:"max_cpu_millis"`
	MaxMemoryMB  int `json:"max_memory_mb"`
	// MaxLeasesPerRevision bounds the app-held leases one revision may hold.
	MaxLeasesPerRevision int `json:"max_leases_per_revision"`
	// MaxStoredBytes bounds what the tenant's revision specs (image, command,
	// env) occupy in the platform's store, summed over every revision kept.
	MaxStoredBytes int64 `json:"max_stored_bytes"`
}

// DefaultQuota is a new tenant's quota. A quota stored before a field
// existed reads that field's default (see normalize).
var DefaultQuota = Quota{MaxApps: 20, MaxReplicas: 50, MaxRevisions: 10, MaxCPUMillis: 4000, MaxMemoryMB: 8192,
	MaxLeasesPerRevision: 100, MaxStoredBytes: 4 << 20}

// Upper bounds of quota fields.
const (
	MaxLeasesPerRevisionLimit = 10_000
	MaxStoredBytesLimit       = 1 << 30
)

// normalize gives fields a stored quota lacks their defaults.
func (q *Quota) normalize() {
	if q.MaxLeasesPerRevision == 0 {
		q.MaxLeasesPerRevision = DefaultQuota.MaxLeasesPerRevision
	}
	if q.MaxStoredBytes == 0 {
		q.MaxStoredBytes = DefaultQuota.MaxStoredBytes
	}
}

// QuotaPatch changes some fields of a quota; absent fields keep their value.
type QuotaPatch struct {
	MaxApps              *int   `json:"max_apps,omitempty"`
	MaxReplicas          *int   `json:"max_replicas,omitempty"`
	MaxRevisions         *int   `json:"max_revisions,omitempty"`
	MaxCPUMillis         *int   `json:"max_cpu_millis,omitempty"`
	MaxMemoryMB          *int   `json:"max_memory_mb,omitempty"`
	MaxLeasesPerRevision *int   `json:"max_leases_per_revision,omitempty"`
	MaxStoredBytes       *int64 `json:"max_stored_bytes,omitempty"`
}

// Apply returns q with the patch's fields.
func (p QuotaPatch) Apply(q Quota) Quota {
	set := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	set(&q.MaxApps, p.MaxApps)
	set(&q.MaxReplicas, p.MaxReplicas)
	set(&q.MaxRevisions, p.MaxRevisions)
	set(&q.MaxCPUMillis, p.MaxCPUMillis)
	set(&q.MaxMemoryMB, p.MaxMemoryMB)
	set(&q.MaxLeasesPerRevision, p.MaxLeasesPerRevision)
	if p.MaxStoredBytes != nil {
		q.MaxStoredBytes = *p.MaxStoredBytes
	}
	return q
}

// Validate checks a quota's numbers.
func (q Quota) Validate() error {
	for _, f := range []struct {
		name   string
		v, max int
	}{{"max_apps", q.MaxApps, 10000}, {"max_replicas", q.MaxReplicas, 100000}, {"max_revisions", q.MaxRevisions, 1000},
		{"max_cpu_millis", q.MaxCPUMillis, 1_000_000}, {"max_memory_mb", q.MaxMemoryMB, 10_000_000}} {
		if f.v < 0 || f.v > f.max {
			return fmt.Errorf("%w: quota %s %d out of range 0-%d", ErrInvalid, f.name, f.v, f.max)
		}
	}
	if q.MaxRevisions < 1 {
		return fmt.Errorf("%w: quota max_revisions must be at least 1", ErrInvalid)
	}
	if q.MaxLeasesPerRevision < 1 || q.MaxLeasesPerRevision > MaxLeasesPerRevisionLimit {
		return fmt.Errorf("%w: quota max_leases_per_revision %d out of range 1-%d", ErrInvalid, q.MaxLeasesPerRevision, MaxLeasesPerRevisionLimit)
	}
	if q.MaxStoredBytes < 1 || q.MaxStoredBytes > MaxStoredBytesLimit {
		return fmt.Errorf("%w: quota max_stored_bytes %d out of range 1-%d", ErrInvalid, q.MaxStoredBytes, MaxStoredBytesLimit)
	}
	return nil
}

// Tenant is an isolated customer of the platform.
type Tenant struct {
	Name string `json:"name"`
	// Namespace is the Kubernetes namespace its replicas run in.
	Namespace string `json:"namespace"`
	Quota     Quota  `json:"quota"`
	// AllowCommands lets the tenant deploy raw commands on the process
	// runtime (they run on the platform's machine): a platform admin sets it
	// for a trusted tenant only. Others deploy images from the catalog.
	AllowCommands bool `json:"allow_commands,omitempty"`
	// Seq is the tenant's number, unique and never reused: on the process
	// runtime its replicas run as the uid <first replica uid> + Seq. 0 until
	// allocated (tenants created before it existed get one on first use).
	Seq int `json:"seq,omitempty"`
	// Deleting is set by DELETE: its apps are retired, then the tenant goes.
	Deleting  bool      `json:"deleting,omitempty"`
	CreatedAt time.Time `json:"created_at"`

	ModRevision int64 `json:"-"`
}

var dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// IsLabel reports whether s is a DNS-1123 label: at most 63 lower-case
// letters, digits and '-', starting and ending with a letter or digit. It is
// the platform's one rule for names (tenants, apps): what Kubernetes accepts
// as a namespace or label value, safe in a URL path and an etcd key.
func IsLabel(s string) bool { return len(s) <= 63 && dns1123.MatchString(s) }

// ValidName checks a tenant name: a DNS-1123 label that, with the namespace
// prefix, still fits Kubernetes' 63 characters.
func ValidName(name string, namespacePrefix string) error {
	if len(namespacePrefix+name) > 63 || !IsLabel(name) {
		return fmt.Errorf("%w: tenant name %q must be a DNS-1123 label of at most %d characters", ErrInvalid, name, 63-len(namespacePrefix))
	}
	return nil
}
