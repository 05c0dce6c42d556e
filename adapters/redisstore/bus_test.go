package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"mediasvc/domain"
)

func TestBusCallServe(t *testing.T) {
	rdb, _ := newClient(t)
	a, b := NewBus(rdb, "b:", "a", quiet), NewBus(rdb, "b:", "b", quiet)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, bus := range []*Bus{a, b} {
		wg.Go(func() {
			_ = bus.Serve(ctx, func(_ context.Context, req domain.BusRequest) (domain.BusReply, error) {
				if req.SDP == "fail" {
					return domain.BusReply{}, fmt.Errorf("no such session: %w", domain.ErrSessionNotFound)
				}
				return domain.BusReply{SDP: bus.self + ":" + req.SDP}, nil
			})
		})
	}
	defer func() { cancel(); wg.Wait() }()
	<-a.ready // both subscribed: a call to one not yet listening fails fast
	<-b.ready

	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	var cw sync.WaitGroup
	for range 20 { // concurrent calls each get their own reply
		cw.Go(func() {
			rep, err := a.Call(cctx, "b", domain.BusRequest{Method: domain.BusOffer, SDP: "ping"})
			if err != nil || rep.SDP != "b:ping" {
				t.Errorf("Call(b) = %+v, %v", rep, err)
			}
		})
	}
	cw.Wait()
	if _, err := a.Call(cctx, "b", domain.BusRequest{Method: domain.BusOffer, SDP: "fail"}); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("Call whose handler fails = %v, want the handler's ErrSessionNotFound", err)
	}
	if _, err := a.Call(cctx, "nobody", domain.BusRequest{Method: domain.BusPing}); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Call to an instance not listening = %v, want ErrUnavailable", err)
	}
}

func TestBusCallTimesOut(t *testing.T) {
	rdb, _ := newClient(t)
	a, b := NewBus(rdb, "b:", "a", quiet), NewBus(rdb, "b:", "b", quiet)
	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = a.Serve(ctx, func(context.Context, domain.BusRequest) (domain.BusReply, error) { return domain.BusReply{}, nil })
	})
	wg.Go(func() {
		_ = b.Serve(ctx, func(context.Context, domain.BusRequest) (domain.BusReply, error) {
			<-release
			return domain.BusReply{}, nil
		})
	})
	defer func() { close(release); cancel(); wg.Wait() }()
	<-a.ready
	<-b.ready
	cctx, ccancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer ccancel()
	if _, err := a.Call(cctx, "b", domain.BusRequest{Method: domain.BusPing}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call to a stuck instance = %v, want DeadlineExceeded", err)
	}
}

func TestBusPublishSubscribe(t *testing.T) {
	rdb, _ := newClient(t)
	bus := NewBus(rdb, "b:", "a", quiet)
	ctx := context.Background()
	got := make(chan string, 10)
	cancel, err := bus.Subscribe(ctx, "topic", func(ev domain.SessionEvent) { got <- ev.Reason })
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"1", "2", "3"} {
		if err := bus.Publish(ctx, "topic", domain.SessionEvent{Type: domain.EventState, Reason: m}); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"1", "2", "3"} {
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("got %q, want %q (in order)", m, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("message %s not delivered", want)
		}
	}
	cancel()
	cancel() // idempotent
}
