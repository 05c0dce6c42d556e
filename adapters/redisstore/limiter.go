package redisstore

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"mediasvc/domain"
	"mediasvc/ports"
)

var _ ports.RateLimiter = (*Limiter)(nil)

// Limiter is a ports.RateLimiter shared by every instance on one Redis: a
// GCRA (github.com/go-redis/redis_rate) per key, so a burst split across
// instances is limited as one. Its state lives in Redis under
// "rate:"+prefix+name+":"+key and expires once the key is idle.
type Limiter struct {
	name   string
	prefix string
	lim    *redis_rate.Limiter
	limit  redis_rate.Limit
}

// NewLimiter returns a Limiter named name (the Limit reported in its
// errors) allowing perSecond actions per second per key with bursts of
// burst. It returns an error if perSecond is not positive and finite or
// burst is less than one.
func NewLimiter(rdb redis.UniversalClient, prefix, name string, perSecond float64, burst int) (*Limiter, error) {
	switch {
	case !(perSecond > 0) || math.IsInf(perSecond, 1):
		return nil, fmt.Errorf("new rate limiter %s: rate %v per second is not positive and finite", name, perSecond)
	case burst < 1:
		return nil, fmt.Errorf("new rate limiter %s: burst %d is less than 1", name, burst)
	}
	if prefix == "" {
		prefix = "mediasvc:"
	}
	// One event per emission interval: a fractional rate stays exact.
	period := time.Duration(float64(time.Second) / perSecond)
	return &Limiter{
		name: name, prefix: prefix + name + ":", lim: redis_rate.NewLimiter(rdb),
		limit: redis_rate.Limit{Rate: 1, Period: max(period, time.Microsecond), Burst: burst},
	}, nil
}

// Allow takes one token for key. When none is left it returns a
// *domain.RateLimitError (errors.Is domain.ErrRateLimited) with the
// Limiter's name and how long until one is, and takes nothing. When Redis
// fails it returns an error wrapping domain.ErrUnavailable.
func (l *Limiter) Allow(ctx context.Context, key string) error {
	res, err := l.lim.Allow(ctx, l.prefix+key, l.limit)
	if err != nil {
		return unavailable("rate limit "+l.name, err)
	}
	if res.Allowed > 0 {
		return nil
	}
	return &domain.RateLimitError{Limit: l.name, RetryAfter: max(res.RetryAfter, time.Millisecond)}
}
