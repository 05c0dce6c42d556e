package redisstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"mediasvc/domain"
)

func TestLeaseExclusiveAndFenced(t *testing.T) {
	rdb, _ := newClient(t)
	ctx := context.Background()
	l := NewLeases(rdb, "l:", 300*time.Millisecond)

	a, err := l.Acquire(ctx, "dev1", "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(ctx, "dev1", "b"); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("second holder Acquire = %v, want ErrConflict", err)
	}
	again, err := l.Acquire(ctx, "dev1", "a")
	if err != nil || again.Token != a.Token {
		t.Fatalf("holder re-Acquire = %+v, %v; want the same token %d", again, err, a.Token)
	}
	if err := l.Renew(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := l.FencedWrite(ctx, a, map[string]string{"state": "capturing"}); err != nil {
		t.Fatal(err)
	}
	if h, _ := l.Holder(ctx, "dev1"); h != "a" {
		t.Fatalf("Holder = %q, want a", h)
	}

	// a pauses past the TTL; b takes the device with a larger token.
	time.Sleep(400 * time.Millisecond)
	b, err := l.Acquire(ctx, "dev1", "b")
	if err != nil {
		t.Fatalf("Acquire after expiry = %v", err)
	}
	if b.Token <= a.Token {
		t.Fatalf("token %d after %d: fencing tokens must grow", b.Token, a.Token)
	}
	// a wakes up: its renewals and writes are refused.
	if err := l.Renew(ctx, a); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("stale Renew = %v, want ErrConflict", err)
	}
	if err := l.FencedWrite(ctx, a, map[string]string{"state": "stale"}); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("stale FencedWrite = %v, want ErrConflict", err)
	}
	if err := l.Release(ctx, a); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("stale Release = %v, want ErrConflict", err)
	}
	if err := l.FencedWrite(ctx, b, map[string]string{"state": "capturing-b"}); err != nil {
		t.Fatal(err)
	}
	if v, _ := rdb.HGet(ctx, newKeys("l:").device("dev1")[2], "state").Result(); v != "capturing-b" {
		t.Fatalf("device record state = %q", v)
	}
	if err := l.Release(ctx, b); err != nil {
		t.Fatal(err)
	}
	if h, _ := l.Holder(ctx, "dev1"); h != "" {
		t.Fatalf("Holder after Release = %q", h)
	}
}

// TestLeaseRace: many instances race for one device; exactly one wins.
func TestLeaseRace(t *testing.T) {
	rdb, _ := newClient(t)
	l := NewLeases(rdb, "l:", time.Minute)
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 20 {
		wg.Go(func() {
			if _, err := l.Acquire(context.Background(), "dev", string(rune('a'+i))); err == nil {
				mu.Lock()
				won++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d holders won the lease, want 1", won)
	}
}

// A Redis that lost its data restarts its counters; fencing tokens must
// still grow, or a paused old holder could match a new grant's token.
func TestLeaseTokensGrowAcrossDataLoss(t *testing.T) {
	rdb, _ := newClient(t)
	ctx := context.Background()
	l := NewLeases(rdb, "l:", time.Minute)
	a, err := l.Acquire(ctx, "dev1", "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.FlushDB(ctx).Err(); err != nil { // the data is gone
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	b, err := l.Acquire(ctx, "dev1", "b")
	if err != nil {
		t.Fatal(err)
	}
	if b.Token <= a.Token {
		t.Fatalf("token %d after the data loss, %d before: fencing tokens must keep growing", b.Token, a.Token)
	}
	if err := l.Renew(ctx, a); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("the old holder's Renew = %v, want ErrConflict", err)
	}
	// Back-to-back grants within one millisecond still grow.
	if err := l.Release(ctx, b); err != nil {
		t.Fatal(err)
	}
	c, err := l.Acquire(ctx, "dev1", "c")
	if err != nil || c.Token <= b.Token {
		t.Fatalf("next grant %+v (%v) after token %d", c, err, b.Token)
	}
}
