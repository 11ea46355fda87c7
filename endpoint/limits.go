package endpoint

import (
	"sync"
)

// SessionLimits bounds the sessions one gateway instance holds, so one client
// address cannot take a gateway's sockets and one tenant cannot exhaust what
// the others need. Zero means no bound.
type SessionLimits struct {
	PerAddress int
	PerTenant  int
}

// sessionBook counts open sessions per client address and per tenant.
type sessionBook struct {
	limits SessionLimits
	mu     sync.Mutex
	byAddr map[string]int
	byTen  map[string]int
}

// limitHit names the bound a new session would cross.
type limitHit int

const (
	withinLimits limitHit = iota
	addressFull
	tenantFull
)

// acquire takes a place for a session from addr to tenant, unless a bound is
// reached.
func (b *sessionBook) acquire(addr, tenant string) limitHit {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byAddr == nil {
		b.byAddr, b.byTen = map[string]int{}, map[string]int{}
	}
	if b.limits.PerAddress > 0 && b.byAddr[addr] >= b.limits.PerAddress {
		return addressFull
	}
	if b.limits.PerTenant > 0 && b.byTen[tenant] >= b.limits.PerTenant {
		return tenantFull
	}
	b.byAddr[addr]++
	b.byTen[tenant]++
	return withinLimits
}

// release gives the place back; empty entries go, so the maps stay bounded by
// what is open.
func (b *sessionBook) release(addr, tenant string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byAddr[addr]--; b.byAddr[addr] <= 0 {
		delete(b.byAddr, addr)
	}
	if b.byTen[tenant]--; b.byTen[tenant] <= 0 {
		delete(b.byTen, tenant)
	}
}
