package memstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"mediasvc/domain"
)

// frozen returns a Limiter whose clock stands still until advanced.
func frozen(t *testing.T, perSecond float64, burst, maxKeys int) (*Limiter, func(time.Duration)) {
	t.Helper()
	l, err := NewLimiter("sessions", perSecond, burst, maxKeys)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	l.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	return l, func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
}

func TestLimiterBurstThenRefuse(t *testing.T) {
	ctx := context.Background()
	l, advance := frozen(t, 2, 3, 10) // 2/s, burst 3
	for i := range 3 {
		if err := l.Allow(ctx, "k"); err != nil {
			t.Fatalf("Allow %d within the burst = %v", i, err)
		}
	}
	err := l.Allow(ctx, "k")
	var rl *domain.RateLimitError
	if !errors.As(err, &rl) || !errors.Is(err, domain.ErrRateLimited) {
		t.Fatalf("Allow past the burst = %v, want *RateLimitError", err)
	}
	if rl.Limit != "sessions" || rl.RetryAfter != 500*time.Millisecond {
		t.Fatalf("RateLimitError = %+v, want Limit sessions, RetryAfter 500ms", rl)
	}
	// A refusal takes no token: after RetryAfter exactly one is allowed.
	for range 5 {
		if err := l.Allow(ctx, "k"); !errors.Is(err, domain.ErrRateLimited) {
			t.Fatalf("Allow = %v, want refused", err)
		}
	}
	advance(rl.RetryAfter)
	if err := l.Allow(ctx, "k"); err != nil {
		t.Fatalf("Allow after RetryAfter = %v", err)
	}
	if err := l.Allow(ctx, "k"); !errors.Is(err, domain.ErrRateLimited) {
		t.Fatalf("second Allow after RetryAfter = %v, want refused", err)
	}
	advance(200 * time.Millisecond)
	if err := l.Allow(ctx, "k"); !errors.As(err, &rl) || rl.RetryAfter != 300*time.Millisecond {
		t.Fatalf("Allow 200ms later = %v, want RetryAfter 300ms", err)
	}
}

func TestLimiterKeysIndependent(t *testing.T) {
	ctx := context.Background()
	l, _ := frozen(t, 1, 1, 10)
	if err := l.Allow(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := l.Allow(ctx, "a"); !errors.Is(err, domain.ErrRateLimited) {
		t.Fatalf("second Allow(a) = %v, want refused", err)
	}
	if err := l.Allow(ctx, "b"); err != nil {
		t.Fatalf("Allow(b) after a is exhausted = %v", err)
	}
}

func TestLimiterEvictionBound(t *testing.T) {
	ctx := context.Background()
	const maxKeys = 8
	l, _ := frozen(t, 1, 1, maxKeys)
	for i := range 100 {
		if err := l.Allow(ctx, fmt.Sprint("k", i)); err != nil {
			t.Fatalf("first Allow(k%d) = %v", i, err)
		}
		if n := l.Len(); n > maxKeys {
			t.Fatalf("%d buckets after %d keys, bound %d", n, i+1, maxKeys)
		}
	}
	if n := l.Len(); n != maxKeys {
		t.Fatalf("%d buckets, want %d", n, maxKeys)
	}
	// The most recent keys are still limited; the oldest was evicted and
	// starts again with a full bucket.
	if err := l.Allow(ctx, "k99"); !errors.Is(err, domain.ErrRateLimited) {
		t.Fatalf("Allow(k99) = %v, want refused (still tracked)", err)
	}
	if err := l.Allow(ctx, "k0"); err != nil {
		t.Fatalf("Allow(k0) = %v, want allowed (evicted)", err)
	}
	// Use keeps a key: k99 was used last-but-one, so adding keys up to the
	// bound evicts others first.
	for i := range maxKeys - 2 {
		_ = l.Allow(ctx, fmt.Sprint("new", i))
	}
	if err := l.Allow(ctx, "k99"); !errors.Is(err, domain.ErrRateLimited) {
		t.Fatalf("Allow(k99) = %v, want refused (recently used)", err)
	}
}

func TestLimiterConcurrent(t *testing.T) {
	ctx := context.Background()
	l, _ := frozen(t, 1, 10, 4)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for g := range 8 {
		wg.Go(func() {
			for range 20 {
				err := l.Allow(ctx, fmt.Sprint("k", g%2))
				if err == nil {
					mu.Lock()
					allowed++
					mu.Unlock()
				} else if !errors.Is(err, domain.ErrRateLimited) {
					t.Errorf("Allow = %v", err)
				}
			}
		})
	}
	wg.Wait()
	if allowed != 20 { // two keys, burst 10 each, the clock frozen
		t.Fatalf("%d allowed, want 20", allowed)
	}
}

func TestNewLimiterInvalid(t *testing.T) {
	tests := []struct {
		rate        float64
		burst, keys int
	}{
		{0, 1, 1}, {-1, 1, 1}, {math.NaN(), 1, 1}, {1, 0, 1}, {1, 1, 0},
	}
	for _, tc := range tests {
		if _, err := NewLimiter("x", tc.rate, tc.burst, tc.keys); err == nil {
			t.Errorf("NewLimiter(%v, %d, %d) = nil error", tc.rate, tc.burst, tc.keys)
		}
	}
	l, err := NewLimiter("x", math.Inf(1), 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if err := l.Allow(context.Background(), "k"); err != nil {
			t.Fatalf("Allow with an infinite rate = %v", err)
		}
	}
}

func TestLimiterCanceled(t *testing.T) {
	l, _ := frozen(t, 1, 1, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Allow(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Allow with a canceled context = %v", err)
	}
}
