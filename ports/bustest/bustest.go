// Package bustest is the contract of ports.Bus, one suite every
// implementation passes (the in-memory portstest.BusNet and
// redisstore.Bus), as storetest is for session stores.
package bustest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
)

// Network returns, for one test, the bus of each instance by id; every bus
// it returns for that test reaches the others. The suite runs Serve itself.
type Network func(t *testing.T) func(instance string) ports.Bus

// Run runs the contract against the buses net makes.
func Run(t *testing.T, net Network) {
	t.Run("CallRoundTrip", func(t *testing.T) { testCallRoundTrip(t, net) })
	t.Run("ErrorsKeepTheirIdentity", func(t *testing.T) { testErrors(t, net) })
	t.Run("CallToNoOne", func(t *testing.T) { testCallToNoOne(t, net) })
	t.Run("CallTimesOut", func(t *testing.T) { testCallTimesOut(t, net) })
	t.Run("RepliesDoNotWaitBehindRequests", func(t *testing.T) { testRepliesFirst(t, net) })
	t.Run("PublishSubscribe", func(t *testing.T) { testPublishSubscribe(t, net) })
	t.Run("ServeEndsWithItsContext", func(t *testing.T) { testServeEnds(t, net) })
}

// handler answers the suite's calls: ping echoes, offer echoes the SDP
// with the instance's name and every field back, input fails with the
// error named by Input.Key, keyframe blocks until release is closed.
func handler(self string, release <-chan struct{}) func(context.Context, domain.BusRequest) (domain.BusReply, error) {
	return func(ctx context.Context, r domain.BusRequest) (domain.BusReply, error) {
		switch r.Method {
		case domain.BusPing:
			return domain.BusReply{SDP: self}, nil
		case domain.BusOffer:
			sess := domain.Session{ID: r.Session, DeviceID: r.Device, Role: r.Role, Owner: r.Owner, Kind: r.Kind,
				State: domain.StateNegotiating, Reason: r.Reason, Instance: self, TTL: time.Minute,
				CreatedAt: time.Unix(1700000000, 0).UTC(), TokenHash: [32]byte{1, 2, 3}}
			st := domain.QualityStats{State: "connected", PacketsSent: 7, RTTMs: 12.5, LossFraction: 0.25}
			if r.Candidate != nil {
				st.State = r.Candidate.Candidate
			}
			// The trace context comes back in the token, to show it crossed.
			return domain.BusReply{SDP: self + ":" + r.SDP + ":" + r.Topic, Session: &sess, Stats: &st, Token: "tok" + r.TraceParent + r.TraceState}, nil
		case domain.BusInput:
			return domain.BusReply{}, errorNamed(r.Input.Key)
		case domain.BusKeyframe:
			select {
			case <-release:
			case <-ctx.Done():
			}
			return domain.BusReply{}, nil
		}
		return domain.BusReply{}, fmt.Errorf("method %q: %w", r.Method, domain.ErrInvalidRequest)
	}
}

var sentinels = []error{
	domain.ErrSessionNotFound, domain.ErrSessionExists, domain.ErrSessionClosed, domain.ErrInvalidTransition,
	domain.ErrDeviceNotFound, domain.ErrDeviceUnavailable, domain.ErrTooManyCandidates, domain.ErrInvalidCandidate,
	domain.ErrInvalidOffer, domain.ErrInvalidInput, domain.ErrInvalidRequest, domain.ErrLimitExceeded,
	domain.ErrUnauthorized, domain.ErrForbidden, domain.ErrConflict, domain.ErrDraining, domain.ErrUnavailable,
}

func errorNamed(name string) error {
	if name == "rate" {
		return &domain.RateLimitError{Limit: "input", RetryAfter: 1500 * time.Millisecond}
	}
	for _, e := range sentinels {
		if e.Error() == name {
			return fmt.Errorf("on the holder: %w", e)
		}
	}
	return errors.New("not a domain error")
}

// serve starts Serve on each bus and waits until each answers a ping.
func serve(t *testing.T, buses map[string]ports.Bus, release <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for id, b := range buses {
		wg.Go(func() { _ = b.Serve(ctx, handler(id, release)) })
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	for id := range buses {
		for from, b := range buses {
			waitListening(t, b, from, id)
		}
	}
}

func waitListening(t *testing.T, b ports.Bus, from, to string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		rep, err := b.Call(ctx, to, domain.BusRequest{Method: domain.BusPing})
		cancel()
		if err == nil && rep.SDP == to {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached %s: %v", from, to, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func twoBuses(t *testing.T, net Network, release <-chan struct{}) (a, b ports.Bus) {
	on := net(t)
	a, b = on("a"), on("b")
	serve(t, map[string]ports.Bus{"a": a, "b": b}, release)
	return a, b
}

func testCallRoundTrip(t *testing.T, net Network) {
	a, _ := twoBuses(t, net, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mid, idx := "0", uint16(0)
	req := domain.BusRequest{
		Method: domain.BusOffer, Session: "s1", SDP: "v=0", Topic: "t", Reason: "why", Device: "dev",
		Role: domain.RoleController, Owner: "ip:1", Kind: "ws",
		TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", TraceState: "mediasvc=1",
		Candidate: &domain.Candidate{Candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host", SDPMid: &mid, SDPMLineIndex: &idx},
	}
	var wg sync.WaitGroup
	for i := range 20 { // concurrent calls each get their own reply
		wg.Go(func() {
			r := req
			r.SDP = fmt.Sprint("v=", i)
			rep, err := a.Call(ctx, "b", r)
			if err != nil {
				t.Errorf("Call(b) = %v", err)
				return
			}
			if want := "b:" + r.SDP + ":t"; rep.SDP != want {
				t.Errorf("reply SDP %q, want %q: replies crossed", rep.SDP, want)
			}
			if rep.Session == nil || rep.Session.ID != "s1" || rep.Session.DeviceID != "dev" || rep.Session.Role != domain.RoleController ||
				rep.Session.Owner != "ip:1" || rep.Session.Kind != "ws" || rep.Session.Reason != "why" || rep.Session.Instance != "b" ||
				rep.Session.TTL != time.Minute || !rep.Session.CreatedAt.Equal(time.Unix(1700000000, 0)) || rep.Session.TokenHash != [32]byte{1, 2, 3} {
				t.Errorf("reply session %+v: fields lost on the way", rep.Session)
			}
			if rep.Stats == nil || rep.Stats.State != req.Candidate.Candidate || rep.Stats.PacketsSent != 7 || rep.Stats.RTTMs != 12.5 || rep.Token != "tok"+req.TraceParent+req.TraceState {
				t.Errorf("reply stats %+v token %q: fields lost on the way", rep.Stats, rep.Token)
			}
		})
	}
	wg.Wait()
}

func testErrors(t *testing.T, net Network) {
	a, _ := twoBuses(t, net, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, want := range sentinels {
		_, err := a.Call(ctx, "b", domain.BusRequest{Method: domain.BusInput, Input: &domain.InputEvent{Key: want.Error()}})
		if !errors.Is(err, want) {
			t.Errorf("remote %v arrived as %v", want, err)
		}
	}
	_, err := a.Call(ctx, "b", domain.BusRequest{Method: domain.BusInput, Input: &domain.InputEvent{Key: "rate"}})
	var rl *domain.RateLimitError
	if !errors.As(err, &rl) || rl.Limit != "input" || rl.RetryAfter != 1500*time.Millisecond {
		t.Errorf("remote rate limit arrived as %v", err)
	}
	if _, err := a.Call(ctx, "b", domain.BusRequest{Method: domain.BusInput, Input: &domain.InputEvent{Key: "other"}}); err == nil {
		t.Error("a remote error that is no domain error arrived as success")
	}
	if _, err := a.Call(ctx, "b", domain.BusRequest{Method: "nonsense"}); !errors.Is(err, domain.ErrInvalidRequest) {
		t.Errorf("unknown method = %v, want the handler's ErrInvalidRequest", err)
	}
}

func testCallToNoOne(t *testing.T, net Network) {
	a, _ := twoBuses(t, net, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := a.Call(ctx, "nobody", domain.BusRequest{Method: domain.BusPing}); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Call to an instance not listening = %v, want ErrUnavailable", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("a call to no one waited for its context instead of failing at once")
	}
}

func testCallTimesOut(t *testing.T, net Network) {
	release := make(chan struct{})
	defer close(release)
	a, _ := twoBuses(t, net, release)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := a.Call(ctx, "b", domain.BusRequest{Method: domain.BusKeyframe}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call to a stuck handler = %v, want DeadlineExceeded", err)
	}
}

// testRepliesFirst fills b with requests its handler holds, then has b
// call a: the reply must reach b while every one of b's handlers is busy.
func testRepliesFirst(t *testing.T, net Network) {
	const stuck = 300 // more than an implementation's handlers at once
	release := make(chan struct{})
	a, b := twoBuses(t, net, release)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(release)
	for range stuck {
		wg.Go(func() { _, _ = a.Call(ctx, "b", domain.BusRequest{Method: domain.BusKeyframe}) })
	}
	time.Sleep(200 * time.Millisecond) // let them land on b
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	rep, err := b.Call(cctx, "a", domain.BusRequest{Method: domain.BusPing})
	if err != nil || rep.SDP != "a" {
		t.Fatalf("b's call to a while b serves %d stuck requests = %+v, %v: its reply waited behind them", stuck, rep, err)
	}
}

func testPublishSubscribe(t *testing.T, net Network) {
	a, b := twoBuses(t, net, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type got struct {
		mu  sync.Mutex
		evs []domain.SessionEvent
	}
	var g1, g2 got
	add := func(g *got) func(domain.SessionEvent) {
		return func(ev domain.SessionEvent) { g.mu.Lock(); g.evs = append(g.evs, ev); g.mu.Unlock() }
	}
	t1, cancel1, err := b.Subscribe(ctx, add(&g1))
	if err != nil {
		t.Fatal(err)
	}
	t2, cancel2, err := b.Subscribe(ctx, add(&g2))
	if err != nil {
		t.Fatal(err)
	}
	defer cancel2()
	if t1 == t2 || t1 == "" {
		t.Fatalf("two subscriptions got topics %q and %q", t1, t2)
	}
	mid := "0"
	var want []domain.SessionEvent
	for i := range 50 {
		ev := domain.SessionEvent{Type: domain.EventState, State: fmt.Sprint("s", i), Reason: "r"}
		if i%10 == 0 {
			ev = domain.SessionEvent{Type: domain.EventCandidate, Candidate: &domain.Candidate{Candidate: fmt.Sprint("candidate:", i), SDPMid: &mid}}
		}
		want = append(want, ev)
		if err := a.Publish(ctx, t1, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Publish(ctx, t2, domain.SessionEvent{Type: domain.EventBye, Reason: "only for two"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "50 events in order", func() bool { g1.mu.Lock(); defer g1.mu.Unlock(); return len(g1.evs) >= 50 })
	g1.mu.Lock()
	if !reflect.DeepEqual(g1.evs, want) {
		t.Errorf("events arrived as %+v, want %+v", g1.evs, want)
	}
	g1.mu.Unlock()
	waitFor(t, "the other topic's event", func() bool { g2.mu.Lock(); defer g2.mu.Unlock(); return len(g2.evs) == 1 })
	g2.mu.Lock()
	if g2.evs[0].Type != domain.EventBye || g2.evs[0].Reason != "only for two" {
		t.Errorf("second topic got %+v", g2.evs)
	}
	g2.mu.Unlock()

	cancel1()
	cancel1() // idempotent
	if err := a.Publish(ctx, t1, domain.SessionEvent{Type: domain.EventBye}); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, t2, domain.SessionEvent{Type: domain.EventBye, Reason: "marker"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the marker", func() bool { g2.mu.Lock(); defer g2.mu.Unlock(); return len(g2.evs) == 2 })
	g1.mu.Lock()
	defer g1.mu.Unlock()
	if len(g1.evs) != 50 {
		t.Fatalf("an event reached a cancelled subscription: %+v", g1.evs[50:])
	}
}

func testServeEnds(t *testing.T, net Network) {
	b := net(t)("solo")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx, handler("solo", nil)) }()
	waitListening(t, b, "solo", "solo")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after its context ended = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not end with its context")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
