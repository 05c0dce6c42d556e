package memstore

import (
	"container/list"
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"mediasvc/domain"
	"mediasvc/ports"
)

var _ ports.RateLimiter = (*Limiter)(nil)

// Limiter is an in-memory ports.RateLimiter: one token bucket
// (golang.org/x/time/rate) per key, made on a key's first use with the
// configured rate and burst.
//
// Memory is bounded: at most maxKeys buckets are kept, and making one more
// evicts the least recently used. An evicted key starts again with a full
// bucket, so maxKeys should exceed the number of keys active within
// burst/rate seconds; a bucket idle that long is full anyway and evicting
// it loses nothing. The Limiter starts no goroutine.
//
// A Limiter must be made with NewLimiter. Its methods are safe for
// concurrent use.
type Limiter struct {
	name    string
	limit   rate.Limit
	burst   int
	maxKeys int
	now     func() time.Time // time.Now; tests replace it

	mu   sync.Mutex
	keys map[string]*list.Element // of *bucket, in lru
	lru  list.List                // front: most recently used
}

// bucket is one key's token bucket.
type bucket struct {
	key string
	lim *rate.Limiter
}

// NewLimiter returns a Limiter named name (the Limit reported in its
// errors) allowing perSecond actions per second per key with bursts of
// burst, keeping at most maxKeys keys. It returns an error if perSecond is
// not positive (+Inf allows everything), or burst or maxKeys is less than
// one.
func NewLimiter(name string, perSecond float64, burst, maxKeys int) (*Limiter, error) {
	switch {
	case !(perSecond > 0): // also rejects NaN
		return nil, fmt.Errorf("new rate limiter %s: rate %v per second is not positive", name, perSecond)
	case burst < 1:
		return nil, fmt.Errorf("new rate limiter %s: burst %d is less than 1", name, burst)
	case maxKeys < 1:
		return nil, fmt.Errorf("new rate limiter %s: max keys %d is less than 1", name, maxKeys)
	}
	lim := rate.Limit(perSecond)
	if math.IsInf(perSecond, 1) {
		lim = rate.Inf
	}
	return &Limiter{
		name: name, limit: lim, burst: burst, maxKeys: maxKeys,
		now:  time.Now,
		keys: make(map[string]*list.Element),
	}, nil
}

// Allow takes one token from key's bucket. When the bucket is empty it
// returns a *domain.RateLimitError (errors.Is domain.ErrRateLimited) with
// the Limiter's name and how long until a token is available, and takes
// nothing. It wraps ctx.Err() if ctx is done and returns no other error.
func (l *Limiter) Allow(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("rate limit %s: %w", l.name, err)
	}
	now := l.now()
	b := l.bucket(key)
	if b.AllowN(now, 1) { // the common path: no allocation
		return nil
	}
	// Refused: ask a reservation how long to wait, then give the token back.
	r := b.ReserveN(now, 1)
	if !r.OK() { // cannot happen with burst ≥ 1; refuse for one token's time
		return &domain.RateLimitError{Limit: l.name, RetryAfter: time.Duration(float64(time.Second) / float64(l.limit))}
	}
	d := r.DelayFrom(now)
	if d <= 0 { // a token came back in between (a concurrent cancel): keep it
		return nil
	}
	r.CancelAt(now)
	return &domain.RateLimitError{Limit: l.name, RetryAfter: d}
}

// Len returns how many keys have a bucket now; it never exceeds maxKeys.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// bucket returns key's limiter, making it (and evicting the least recently
// used one if full) on first use.
func (l *Limiter) bucket(key string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.keys[key]; ok {
		l.lru.MoveToFront(el)
		return el.Value.(*bucket).lim
	}
	if len(l.keys) >= l.maxKeys {
		// Evict the least recently used key, reusing its list element.
		el := l.lru.Back()
		b := el.Value.(*bucket)
		delete(l.keys, b.key)
		b.key = key
		b.lim = rate.NewLimiter(l.limit, l.burst)
		l.keys[key] = el
		l.lru.MoveToFront(el)
		return b.lim
	}
	b := &bucket{key: key, lim: rate.NewLimiter(l.limit, l.burst)}
	l.keys[key] = l.lru.PushFront(b)
	return b.lim
}
