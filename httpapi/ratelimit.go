package httpapi

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits are the HTTP edge's rate limits. Their JSON names are those of
// the node's configuration file (package node embeds them).
type Limits struct {
	// LoginPerMinute limits login and registration attempts per client IP.
	LoginPerMinute int `json:"login_per_minute"`
	// LoginBurst is the burst allowed above that rate.
	LoginBurst int `json:"login_burst"`
}

// DefaultLimits returns the default rate limits.
func DefaultLimits() Limits { return Limits{LoginPerMinute: 30, LoginBurst: 10} }

// ipLimiter rate-limits per key (a client IP, a user). It is per node on purpose: limits
// protect this node's CPU (password hashing) and need no agreement.
type ipLimiter struct {
	perMinute, burst int

	mu      sync.Mutex // guards buckets and lastGC
	buckets map[string]*rate.Limiter
	lastGC  time.Time
}

func newIPLimiter(perMinute, burst int) *ipLimiter {
	return &ipLimiter{perMinute: perMinute, burst: burst, buckets: map[string]*rate.Limiter{}, lastGC: time.Now()}
}

// allow reports whether ip may make a request now, or how long to wait.
func (l *ipLimiter) allow(ip string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.lastGC) > 10*time.Minute {
		for k, b := range l.buckets {
			if b.TokensAt(now) >= float64(l.burst) {
				delete(l.buckets, k)
			}
		}
		l.lastGC = now
	}
	b := l.buckets[ip]
	if b == nil {
		b = rate.NewLimiter(rate.Limit(float64(l.perMinute)/60), l.burst)
		l.buckets[ip] = b
	}
	res := b.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}
