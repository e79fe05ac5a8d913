package app

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/verdictpdp/verdict/server"
)

// redisLimiter shares the route rate limits (server.rate_limits) of every
// replica through Redis: one token bucket a key, kept as GCRA state in one
// Lua call (github.com/go-redis/redis_rate, by go-redis's authors: atomic
// across replicas, one round trip, no lock held between calls). A call
// that fails or takes longer than limitTimeout is an error, and the server
// then counts on its own replica; after a failure Redis is not asked again
// for limitBackoff, so that an outage costs no request a timeout.
type redisLimiter struct {
	l      *redis_rate.Limiter
	prefix string
	// downUntil is when Redis may be asked again (unix nanoseconds).
	downUntil atomic.Int64
}

const (
	limitTimeout = 100 * time.Millisecond
	limitBackoff = time.Second
)

var errLimiterBackoff = errors.New("rate limit: Redis failed a moment ago; counting on this replica")

func newRedisLimiter(rdb redis.UniversalClient, prefix string) *redisLimiter {
	return &redisLimiter{l: redis_rate.NewLimiter(rdb), prefix: prefix}
}

// Allow counts one request under key against max a window.
func (r *redisLimiter) Allow(ctx context.Context, key string, max int, window time.Duration) (bool, time.Duration, error) {
	if time.Now().UnixNano() < r.downUntil.Load() {
		return false, 0, errLimiterBackoff
	}
	ctx, cancel := context.WithTimeout(ctx, limitTimeout)
	defer cancel()
	res, err := r.l.Allow(ctx, r.prefix+key, redis_rate.Limit{Rate: max, Burst: max, Period: window})
	if err != nil {
		r.downUntil.Store(time.Now().Add(limitBackoff).UnixNano())
		return false, 0, err
	}
	return res.Allowed > 0, res.RetryAfter, nil
}

var _ server.RateLimiter = (*redisLimiter)(nil)
