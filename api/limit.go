package api

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/time/rate"
)

// Limiter is a token bucket per key: per client address for the public
// get-endpoint, so one client cannot flood it (or reserve a whole app's
// capacity), and per tenant for management writes, so one tenant cannot fill
// the store's history for everyone.
type Limiter struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	clients map[string]*client
	sweep   time.Time
}

type client struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewLimiter allows perSecond calls per address with bursts of burst;
// perSecond <= 0 turns limiting off (returns nil).
func NewLimiter(perSecond float64, burst int) *Limiter {
	if perSecond <= 0 {
		return nil
	}
	return &Limiter{rate: rate.Limit(perSecond), burst: max(burst, 1), clients: map[string]*client{}}
}

// Allow reports whether addr may call now, else how long it should wait.
func (l *Limiter) Allow(addr string) (bool, time.Duration) { return l.AllowN(addr, 1) }

// AllowN reports whether key may spend n tokens now, else how long it should
// wait. A cost above the burst is charged as the whole burst.
func (l *Limiter) AllowN(addr string, n int) (bool, time.Duration) {
	now := time.Now()
	l.mu.Lock()
	c := l.clients[addr]
	if c == nil {
		c = &client{lim: rate.NewLimiter(l.rate, l.burst)}
		l.clients[addr] = c
	}
	c.seen = now
	if now.Sub(l.sweep) > time.Minute {
		// Forget idle clients so the table stays bounded.
		for a, cl := range l.clients {
			if now.Sub(cl.seen) > 5*time.Minute {
				delete(l.clients, a)
			}
		}
		l.sweep = now
	}
	l.mu.Unlock()
	r := c.lim.ReserveN(now, min(n, l.burst))
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// limited wraps a get-endpoint handler: 429 with Retry-After when the client
// address is over its limit.
func (s *Server) limited(h fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		// Game pages may be served from anywhere; get-endpoint involves no
		// credential, so any origin may read its answers (and errors).
		c.Set(fiber.HeaderAccessControlAllowOrigin, "*")
		if err := s.limit(c); err != nil {
			return err
		}
		return h(c)
	}
}

func (s *Server) limit(c *fiber.Ctx) error {
	if s.cfg.Limiter == nil {
		return nil
	}
	ok, wait := s.cfg.Limiter.Allow(c.IP())
	if !ok {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		return fiber.NewError(fiber.StatusTooManyRequests, "too many get-endpoint calls from "+c.IP()+"; retry after "+wait.Round(time.Millisecond).String())
	}
	return nil
}

// writeCost is what one management write costs against its tenant's write
// budget, in bytes: its body plus a fixed part for the records, events and
// etcd history a write leaves behind; a body passed on, not stored
// (Access.Unstored), costs nothing.
func writeCost(c *fiber.Ctx, a Access) int {
	if a.Unstored {
		return 1024
	}
	return 1024 + len(c.Body())
}

// tenantWrite bounds the bytes one tenant can make the platform write per
// second (429 with Retry-After past it): what a tenant writes stays in etcd's
// history until compaction, shared by every tenant.
func (s *Server) tenantWrite(c *fiber.Ctx, a Access, tenant string) error {
	if s.cfg.TenantWrites == nil || tenant == "" || !isWrite(c) {
		return nil
	}
	ok, wait := s.cfg.TenantWrites.AllowN(tenant, writeCost(c, a))
	if !ok {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		return fiber.NewError(fiber.StatusTooManyRequests, fmt.Sprintf("tenant %s is writing faster than its write budget (%.0f bytes/s); retry after %s", tenant, float64(s.cfg.TenantWrites.rate), wait.Round(time.Millisecond)))
	}
	return nil
}
