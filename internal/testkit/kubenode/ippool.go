package kubenode

import (
	"errors"
	"net/netip"
	"sync"
)

// IPPool hands out pod addresses from a /16 of the loopback network (on
// Linux every 127.0.0.0/8 address is local, so a pod can listen on its own
// address without any network set-up). Nodes of one cluster share a pool, so
// pod IPs are unique cluster-wide. Addresses are handed out round-robin:
// a freed address is the last to come back, which keeps a new pod from
// answering on an address a client still remembers for an old one.
type IPPool struct {
	mu   sync.Mutex
	base [2]byte // the first two octets
	next int     // index of the next candidate in [0, poolSize)
	used map[netip.Addr]bool
}

// poolSize is the number of usable addresses in a pool: x.y with y in 1..254.
const poolSize = 256 * 254

// ErrPoolExhausted is returned when every address of a pool is in use.
var ErrPoolExhausted = errors.New("kubenode: no free pod address")

// NewIPPool returns a pool of the addresses 127.<second>.x.y (y in 1..254).
func NewIPPool(second byte) *IPPool {
	return &IPPool{base: [2]byte{127, second}, used: map[netip.Addr]bool{}}
}

// Get reserves a free address.
func (p *IPPool) Get() (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range poolSize {
		i := p.next
		p.next = (p.next + 1) % poolSize
		a := netip.AddrFrom4([4]byte{p.base[0], p.base[1], byte(i / 254), byte(i%254 + 1)})
		if !p.used[a] {
			p.used[a] = true
			return a, nil
		}
	}
	return netip.Addr{}, ErrPoolExhausted
}

// Put releases an address Get returned.
func (p *IPPool) Put(a netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.used, a)
}
