package redisstore

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"mediasvc/domain"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestRegistry(t *testing.T) {
	rdb, _ := newClient(t)
	ctx := context.Background()
	a := NewRegistry(rdb, "r:", domain.Instance{ID: "a", URL: "http://a"}, time.Second, quiet)
	b := NewRegistry(rdb, "r:", domain.Instance{ID: "b", URL: "http://b"}, time.Second, quiet)
	for _, r := range []*Registry{a, b} {
		if err := r.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got, err := a.Instances(ctx)
	if err != nil || len(got) != 2 || got[0].ID != "a" || got[1].URL != "http://b" {
		t.Fatalf("Instances = %+v, %v", got, err)
	}
	// b stops heartbeating: it leaves the list within the TTL.
	deadline := time.Now().Add(3 * time.Second)
	for {
		if err := a.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
		got, err = a.Instances(ctx)
		if err == nil && len(got) == 1 && got[0].ID == "a" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b still listed after its TTL: %+v, %v", got, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := a.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Instances(ctx); len(got) != 0 {
		t.Fatalf("Instances after Deregister = %+v", got)
	}
}

// TestMonitorOutage kills Redis under a monitor, checks it reports the
// outage, restarts Redis empty and checks onUp ran again (so the instance
// re-registers) and health came back.
func TestMonitorOutage(t *testing.T) {
	rdb, srv := newClient(t)
	var ups atomic.Int32
	m := NewMonitor(rdb, 50*time.Millisecond, 200*time.Millisecond, func(ctx context.Context) error {
		ups.Add(1)
		return rdb.Set(ctx, "up", "1", 0).Err()
	}, quiet)
	if err := m.Healthy(); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Healthy before the first ping = %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("healthy", func() bool { return m.Healthy() == nil })
	srv.Kill()
	waitFor("unhealthy", func() bool { return errors.Is(m.Healthy(), domain.ErrUnavailable) })
	srv.Restart()
	waitFor("healthy again", func() bool { return m.Healthy() == nil })
	if n := ups.Load(); n != 2 {
		t.Fatalf("onUp ran %d times, want 2", n)
	}
	if v, _ := rdb.Get(context.Background(), "up").Result(); v != "1" {
		t.Fatal("onUp did not run against the restarted Redis")
	}
}

func TestMonitorSchemaMismatch(t *testing.T) {
	rdb, _ := newClient(t)
	m := NewMonitor(rdb, 50*time.Millisecond, 100*time.Millisecond, func(context.Context) error {
		return ErrSchema
	}, quiet)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_ = m.Run(ctx)
	if err := m.Healthy(); !errors.Is(err, ErrSchema) {
		t.Fatalf("Healthy = %v, want ErrSchema", err)
	}
}
