package apps

import (
	"fmt"

	"github.com/discovery-platform/discovery/tenants"
)

// Resources is what one replica asks for (Kubernetes requests and limits).
// Zero means the runtime's default.
type Resources struct {
	CPUMillis int `json:"cpu_millis,omitempty"`
	MemoryMB  int `json:"memory_mb,omitempty"`
}

// Validate checks the numbers are sane.
func (r Resources) Validate() error {
	if r.CPUMillis < 0 || r.CPUMillis > 1_000_000 || r.MemoryMB < 0 || r.MemoryMB > 10_000_000 {
		return fmt.Errorf("%w: resources cpu_millis 0-1000000 and memory_mb 0-10000000", ErrInvalid)
	}
	return nil
}

func checkResources(q tenants.Quota, r *Resources) error {
	if r == nil {
		return nil
	}
	if r.CPUMillis > q.MaxCPUMillis {
		return fmt.Errorf("%w: max_cpu_millis per replica is %d, the revision asks for %d", tenants.ErrQuotaExceeded, q.MaxCPUMillis, r.CPUMillis)
	}
	if r.MemoryMB > q.MaxMemoryMB {
		return fmt.Errorf("%w: max_memory_mb per replica is %d, the revision asks for %d", tenants.ErrQuotaExceeded, q.MaxMemoryMB, r.MemoryMB)
	}
	return nil
}
