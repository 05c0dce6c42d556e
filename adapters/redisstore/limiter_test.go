package redisstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mediasvc/domain"
)

func TestLimiterBurstThenRefuse(t *testing.T) {
	rdb, _ := newClient(t)
	ctx := context.Background()
	l, err := NewLimiter(rdb, "t:", "owner", 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := l.Allow(ctx, "alice"); err != nil {
			t.Fatalf("Allow %d within the burst = %v", i, err)
		}
	}
	err = l.Allow(ctx, "alice")
	var rl *domain.RateLimitError
	if !errors.As(err, &rl) || !errors.Is(err, domain.ErrRateLimited) {
		t.Fatalf("Allow past the burst = %v, want *domain.RateLimitError", err)
	}
	if rl.Limit != "owner" || rl.RetryAfter <= 0 || rl.RetryAfter > time.Second {
		t.Fatalf("RateLimitError = %+v, want limit owner and retry within 1s", rl)
	}
	if err := l.Allow(ctx, "bob"); err != nil {
		t.Fatalf("another key = %v, want allowed", err)
	}
}

func TestLimiterBadArgs(t *testing.T) {
	for _, c := range []struct {
		rate  float64
		burst int
	}{{0, 1}, {-1, 1}, {1, 0}} {
		if _, err := NewLimiter(nil, "", "x", c.rate, c.burst); err == nil {
			t.Errorf("NewLimiter(rate %v, burst %d) = nil error", c.rate, c.burst)
		}
	}
}

// TestLimiterSharedAcrossInstances splits a burst across three clients
// (three instances): together they get the burst, not three times it.
func TestLimiterSharedAcrossInstances(t *testing.T) {
	_, srv := newClient(t)
	ctx := context.Background()
	const burst = 10
	var allowed, refused atomic.Int32
	var wg sync.WaitGroup
	for range 3 {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
		t.Cleanup(func() { _ = rdb.Close() })
		l, err := NewLimiter(rdb, "t:", "global", 0.01, burst)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for range 10 {
				switch err := l.Allow(ctx, "global"); {
				case err == nil:
					allowed.Add(1)
				case errors.Is(err, domain.ErrRateLimited):
					refused.Add(1)
				default:
					t.Errorf("Allow = %v", err)
				}
			}
		})
	}
	wg.Wait()
	if allowed.Load() != burst || refused.Load() != 30-burst {
		t.Fatalf("allowed %d, refused %d of 30; want %d allowed", allowed.Load(), refused.Load(), burst)
	}
}

func TestLimiterUnavailable(t *testing.T) {
	rdb, srv := newClient(t)
	srv.Kill()
	l, err := NewLimiter(rdb, "", "owner", 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Allow(context.Background(), "alice"); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Allow with Redis down = %v, want ErrUnavailable", err)
	}
}
