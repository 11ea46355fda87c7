package api

import (
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/time/rate"
)

// Limiter is a token bucket per client address for the public get-endpoint,
// so one client cannot flood it (or reserve a whole app's capacity).
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
func (l *Limiter) Allow(addr string) (bool, time.Duration) {
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
	r := c.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// limit is the middleware: 429 with Retry-After when over the limit.
func (s *Server) limit(c *fiber.Ctx) error {
	if s.cfg.Limiter == nil {
		return c.Next()
	}
	ok, wait := s.cfg.Limiter.Allow(c.IP())
	if !ok {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		return fiber.NewError(fiber.StatusTooManyRequests, "too many get-endpoint calls from "+c.IP()+"; retry after "+wait.Round(time.Millisecond).String())
	}
	return c.Next()
}
