package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.uber.org/goleak"

	"mediasvc/adapters/memstore"
	"mediasvc/app"
	"mediasvc/domain"
	"mediasvc/ports"
	"mediasvc/ports/portstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var demoInfo = domain.StreamInfo{Video: domain.CodecH264, Audio: domain.CodecOpus, Width: 640, Height: 360, FPS: 30}

// rig is a service wired to fakes, with a controllable capture.
type rig struct {
	svc      *app.Service
	src      *portstest.Source
	opens    atomic.Int64
	captures chan *portstest.Capture
	fanouts  []*portstest.Fanout
	peers    []*portstest.Peer
	opts     []ports.PeerOptions
	mu       sync.Mutex
	inputs   []domain.InputEvent
	openErr  atomic.Pointer[error]
	nextInfo atomic.Pointer[domain.StreamInfo] // what the next capture yields; nil = demoInfo
	store    *memstore.Store
	unwell   atomic.Pointer[error] // what Deps.Healthy reports; nil = healthy
	// wrap, when set, wraps the next capture opened (and is cleared).
	wrap atomic.Pointer[func(*portstest.Capture) ports.Capture]
	// openGate, when set, holds every open until it is closed.
	openGate atomic.Pointer[chan struct{}]
}

func newRig(t *testing.T, cfg app.Config) *rig {
	t.Helper()
	return newRigOn(t, cfg, memstore.New(memstore.Options{}), nil)
}

// newRigWithMeter is newRig with the service recording on meter.
func newRigWithMeter(t *testing.T, cfg app.Config, meter metric.Meter) *rig {
	t.Helper()
	return newRigOn(t, cfg, memstore.New(memstore.Options{}), nil, func(d *app.Deps) { d.Meter = meter })
}

// newRigOn is newRig on a given store and bus (shared by several rigs to
// play several instances).
func newRigOn(t *testing.T, cfg app.Config, store *memstore.Store, bus ports.Bus, opts ...func(*app.Deps)) *rig {
	t.Helper()
	r := &rig{captures: make(chan *portstest.Capture, 16)}
	r.src = &portstest.Source{
		DeviceFunc: func(_ context.Context, id domain.DeviceID) (domain.Device, error) {
			if id != "dev" {
				return domain.Device{}, domain.ErrDeviceNotFound
			}
			return domain.Device{ID: "dev", Width: 1280, Height: 720, State: domain.DeviceOnline}, nil
		},
		DevicesFunc: func(context.Context) ([]domain.Device, error) {
			return []domain.Device{{ID: "dev", Width: 1280, Height: 720}}, nil
		},
		OpenFunc: func(ctx context.Context, _ domain.DeviceID, _ domain.CaptureOptions) (ports.Capture, error) {
			if g := r.openGate.Load(); g != nil {
				select {
				case <-*g:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			if p := r.openErr.Load(); p != nil {
				return nil, *p
			}
			r.opens.Add(1)
			info := demoInfo
			if p := r.nextInfo.Load(); p != nil {
				info = *p
			}
			c := portstest.NewCapture(info)
			r.captures <- c
			if w := r.wrap.Swap(nil); w != nil {
				return (*w)(c), nil
			}
			return c, nil
		},
		InputFunc: func(_ context.Context, _ domain.DeviceID, ev domain.InputEvent) error {
			r.mu.Lock()
			r.inputs = append(r.inputs, ev)
			r.mu.Unlock()
			return nil
		},
	}
	tr := &portstest.Transport{
		NewFanoutFunc: func(domain.DeviceID, domain.StreamInfo) (ports.Fanout, error) {
			f := portstest.NewFanout()
			r.mu.Lock()
			r.fanouts = append(r.fanouts, f)
			r.mu.Unlock()
			return f, nil
		},
		NewPeerFunc: func(_ context.Context, _ ports.Fanout, o ports.PeerOptions) (ports.Peer, error) {
			p := &portstest.Peer{AddCandidateFunc: func(c domain.Candidate) error {
				return domain.ValidateCandidate(c.Candidate, 1024)
			}}
			r.mu.Lock()
			r.peers = append(r.peers, p)
			r.opts = append(r.opts, o)
			r.mu.Unlock()
			return p, nil
		},
	}
	if cfg.CleanupInterval == 0 {
		cfg.CleanupInterval = 10 * time.Millisecond
	}
	r.store = store
	deps := app.Deps{
		Bus:       bus,
		Store:     r.store,
		Sources:   []app.Source{{Screen: r.src, Input: r.src}},
		Transport: tr,
		Healthy: func() error {
			if p := r.unwell.Load(); p != nil {
				return *p
			}
			return nil
		},
	}
	for _, o := range opts {
		o(&deps)
	}
	r.svc = app.New(cfg, deps, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	busDone := make(chan struct{})
	go func() { defer close(done); _ = r.svc.Run(ctx) }()
	go func() { defer close(busDone); _ = r.svc.ServeBus(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		<-busDone
		_ = r.svc.Drain(context.Background(), "test over")
		// Unblock any capture still waiting on its channel.
		for {
			select {
			case c := <-r.captures:
				_ = c.Close()
			default:
				return
			}
		}
	})
	return r
}

// events collects a session's events.
type events struct {
	mu  sync.Mutex
	evs []domain.SessionEvent
}

func (e *events) add(ev domain.SessionEvent) { e.mu.Lock(); e.evs = append(e.evs, ev); e.mu.Unlock() }
func (e *events) has(typ domain.EventType, what string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.evs {
		if ev.Type == typ && (what == "" || ev.State == what || ev.Reason == what) {
			return true
		}
	}
	return false
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSessionLifecycle(t *testing.T) {
	r := newRig(t, app.Config{})
	ctx := context.Background()

	sess, token, err := r.svc.CreateSession(ctx, "dev", domain.RoleController, "ip:127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if sess.State != domain.StateNew || token == "" || sess.ID == "" {
		t.Fatalf("created %+v token %q", sess, token)
	}
	if _, err := r.svc.Connect(ctx, sess.ID, "wrong", func(domain.SessionEvent) {}); !errors.Is(err, domain.ErrUnauthorized) {
		t.Fatalf("wrong token: %v", err)
	}
	var ev events
	detach, err := r.svc.Connect(ctx, sess.ID, token, ev.add)
	if err != nil {
		t.Fatal(err)
	}
	defer detach()
	if _, err := r.svc.Connect(ctx, sess.ID, token, ev.add); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("second socket: %v", err)
	}
	if err := r.svc.AddCandidate(ctx, sess.ID, domain.Candidate{Candidate: "candidate:1 1 udp 1 192.0.2.1 9 typ host"}); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("candidate before offer: %v", err)
	}
	answer, err := r.svc.Offer(ctx, sess.ID, "offer")
	if err != nil || answer != "answer" {
		t.Fatalf("offer: %q %v", answer, err)
	}
	if got, _ := r.svc.Session(ctx, sess.ID); got.State != domain.StateNegotiating {
		t.Fatalf("state after offer = %s", got.State)
	}
	if err := r.svc.AddCandidate(ctx, sess.ID, domain.Candidate{Candidate: "garbage"}); !errors.Is(err, domain.ErrInvalidCandidate) {
		t.Fatalf("garbage candidate: %v", err)
	}
	r.mu.Lock()
	opts := r.opts[0]
	r.mu.Unlock()
	// Pion's callback only posts to the session's owner: the store and
	// the socket hear of it soon after.
	opts.OnState(ports.PeerConnected)
	eventually(t, "connected in the store", func() bool {
		got, _ := r.svc.Session(ctx, sess.ID)
		return got.State == domain.StateConnected
	})
	eventually(t, "connected event", func() bool { return ev.has(domain.EventState, "connected") })
	// Input in video space (640x360) maps to device space (1280x720).
	if err := r.svc.Input(ctx, sess.ID, domain.InputEvent{Type: domain.InputTap, X: 320, Y: 180}); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	in := r.inputs[0]
	r.mu.Unlock()
	if in.X != 640 || in.Y != 360 {
		t.Fatalf("mapped tap = (%d,%d), want (640,360)", in.X, in.Y)
	}
	if err := r.svc.Input(ctx, sess.ID, domain.InputEvent{Type: domain.InputTap, X: 9999, Y: 1}); !errors.Is(err, domain.ErrInvalidInput) {
		t.Fatalf("out of bounds tap: %v", err)
	}
	if err := r.svc.CloseSession(ctx, sess.ID, "client_bye"); err != nil {
		t.Fatal(err)
	}
	if !ev.has(domain.EventBye, "client_bye") {
		t.Fatal("no bye event")
	}
	r.mu.Lock()
	closed := r.peers[0].Closed.Load()
	r.mu.Unlock()
	if closed != 1 {
		t.Fatalf("peer closed %d times", closed)
	}
	if _, err := r.svc.Session(ctx, sess.ID); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("after close: %v", err)
	}
	if err := r.svc.CloseSession(ctx, sess.ID, "again"); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("second close: %v", err)
	}
}

func TestCreateErrors(t *testing.T) {
	r := newRig(t, app.Config{Quota: domain.Quota{PerDevice: 1}})
	ctx := context.Background()
	if _, _, err := r.svc.CreateSession(ctx, "nope", domain.RoleViewer, "o"); !errors.Is(err, domain.ErrDeviceNotFound) {
		t.Fatalf("unknown device: %v", err)
	}
	if _, _, err := r.svc.CreateSession(ctx, "dev", "admin", "o"); !errors.Is(err, domain.ErrInvalidRequest) {
		t.Fatalf("bad role: %v", err)
	}
	if _, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o"); !errors.Is(err, domain.ErrLimitExceeded) {
		t.Fatalf("over quota: %v", err)
	}
}

func TestViewerMayNotSendInput(t *testing.T) {
	r := newRig(t, app.Config{})
	ctx := context.Background()
	sess, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Input(ctx, sess.ID, domain.InputEvent{Type: domain.InputHome}); !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("viewer input: %v", err)
	}
}

func TestInputRateLimit(t *testing.T) {
	r := newRig(t, app.Config{InputRate: 1, InputBurst: 3})
	ctx := context.Background()
	sess, _, _ := r.svc.CreateSession(ctx, "dev", domain.RoleController, "o")
	if _, err := r.svc.Offer(ctx, sess.ID, "offer"); err != nil {
		t.Fatal(err)
	}
	var limited int
	for range 10 {
		err := r.svc.Input(ctx, sess.ID, domain.InputEvent{Type: domain.InputBack})
		var rl *domain.RateLimitError
		if errors.As(err, &rl) {
			limited++
			if rl.RetryAfter <= 0 {
				t.Fatalf("retry after %v", rl.RetryAfter)
			}
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if limited != 7 {
		t.Fatalf("limited %d of 10 with burst 3", limited)
	}
}

// onFakeClock is an option of newRigOn: the service runs on a fake clock
// that moves only when the test says.
func onFakeClock(c *portstest.Clock) func(*app.Deps) { return func(d *app.Deps) { d.Clock = c } }

func newClock() *portstest.Clock {
	return portstest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
}

// advanceUntil moves c by step until cond holds, letting the service's
// goroutines run between steps; it fails after 1000 steps.
func advanceUntil(t *testing.T, c *portstest.Clock, step time.Duration, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		c.Advance(step)
		for range 50 { // give the goroutines the timers woke a moment
			if cond() {
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	t.Fatalf("%s did not happen within 1000 steps of %v", what, step)
}

func TestOneCapturePerDeviceAndGrace(t *testing.T) {
	clock := newClock()
	r := newRigOn(t, app.Config{Hub: app.HubConfig{Grace: 50 * time.Millisecond}}, newMemstore(), nil, onFakeClock(clock))
	ctx := context.Background()
	var ids []domain.SessionID
	for range 3 {
		sess, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.svc.Offer(ctx, sess.ID, "offer"); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sess.ID)
	}
	if n := r.opens.Load(); n != 1 {
		t.Fatalf("%d captures opened for 3 viewers", n)
	}
	if d, _ := r.svc.Device(ctx, "dev"); d.Viewers != 3 {
		t.Fatalf("viewers = %d", d.Viewers)
	}
	capt := <-r.captures
	// Frames flow into the fanout; keyframe requests reach the capture.
	capt.Frames <- domain.Frame{Kind: domain.KindVideo, Keyframe: true, PTS: time.Second}
	r.mu.Lock()
	fan := r.fanouts[0]
	r.mu.Unlock()
	fan.Requests <- struct{}{}
	eventually(t, "keyframe request", func() bool { return capt.Keyframes.Load() == 1 })
	if err := r.svc.RequestKeyframe(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	eventually(t, "client keyframe request", func() bool { return capt.Keyframes.Load() == 2 })

	for _, id := range ids {
		if err := r.svc.CloseSession(ctx, id, "done"); err != nil {
			t.Fatal(err)
		}
	}
	// Not before the grace period ends.
	clock.Advance(49 * time.Millisecond)
	time.Sleep(10 * time.Millisecond)
	if capt.Closed.Load() {
		t.Fatal("capture closed before its grace period ended")
	}
	clock.Advance(time.Millisecond)
	eventually(t, "capture closed after grace", capt.Closed.Load)
	eventually(t, "fanout closed", fan.Closed.Load)
	if d, _ := r.svc.Device(ctx, "dev"); d.Viewers != 0 {
		t.Fatalf("viewers after close = %d", d.Viewers)
	}
}

func TestCaptureReopensWithContinuousTimestamps(t *testing.T) {
	r := newRig(t, app.Config{Hub: app.HubConfig{RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond}})
	ctx := context.Background()
	sess, token, _ := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	var ev events
	detach, err := r.svc.Connect(ctx, sess.ID, token, ev.add)
	if err != nil {
		t.Fatal(err)
	}
	defer detach()
	if _, err := r.svc.Offer(ctx, sess.ID, "offer"); err != nil {
		t.Fatal(err)
	}
	first := <-r.captures
	first.Frames <- domain.Frame{Kind: domain.KindVideo, Keyframe: true, PTS: 2 * time.Second}
	// The device goes away: opens fail for a while.
	failure := domain.ErrDeviceUnavailable
	r.openErr.Store(&failure)
	close(first.Frames)
	eventually(t, "device_unavailable", func() bool { return ev.has(domain.EventState, "device_unavailable") })
	r.openErr.Store(nil)
	second := <-r.captures
	eventually(t, "device_available", func() bool { return ev.has(domain.EventState, "device_available") })
	second.Frames <- domain.Frame{Kind: domain.KindVideo, Keyframe: true, PTS: 0}
	r.mu.Lock()
	fan := r.fanouts[0]
	nfan := len(r.fanouts)
	r.mu.Unlock()
	if nfan != 1 {
		t.Fatalf("%d fanouts; a reopen must keep the viewers' fanout", nfan)
	}
	eventually(t, "second frame", func() bool { return len(fan.Frames()) == 2 })
	fr := fan.Frames()
	if fr[1].PTS <= fr[0].PTS {
		t.Fatalf("PTS went back across the reopen: %v then %v", fr[0].PTS, fr[1].PTS)
	}
}

func TestExpiryClosesSession(t *testing.T) {
	clock := newClock()
	r := newRigOn(t, app.Config{SessionTTL: 50 * time.Millisecond}, newMemstore(), nil, onFakeClock(clock))
	ctx := context.Background()
	sess, token, _ := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	var ev events
	detach, _ := r.svc.Connect(ctx, sess.ID, token, ev.add)
	defer detach()
	start := clock.Now()
	advanceUntil(t, clock, 10*time.Millisecond, "expired bye", func() bool { return ev.has(domain.EventBye, "expired") })
	if lived := clock.Now().Sub(start); lived < 50*time.Millisecond {
		t.Fatalf("session expired after %v, before its TTL", lived)
	}
	if _, err := r.svc.Session(ctx, sess.ID); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("expired session still stored: %v", err)
	}
}

func TestConnectedSessionIsKeptAlive(t *testing.T) {
	const ttl = 90 * time.Millisecond
	clock := newClock()
	r := newRigOn(t, app.Config{SessionTTL: ttl}, newMemstore(), nil, onFakeClock(clock))
	ctx := context.Background()
	sess, _ := r.connect(t)
	// Ten keepalive periods, each ending with the session touched again
	// (and the reaper run), which is what keeps it: 300 ms of clock.
	for i := range 10 {
		clock.Advance(ttl / 3)
		eventually(t, fmt.Sprint("touch ", i), func() bool {
			got, err := r.svc.Session(ctx, sess.ID)
			return err == nil && got.ExpiresAt.Equal(clock.Now().Add(ttl))
		})
	}
}

func TestPanickingNotifyClosesOnlyThatSession(t *testing.T) {
	r := newRig(t, app.Config{})
	ctx := context.Background()
	bad, badTok, _ := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	good, goodTok, _ := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	d1, _ := r.svc.Connect(ctx, bad.ID, badTok, func(ev domain.SessionEvent) {
		if ev.Type == domain.EventState {
			panic("boom")
		}
	})
	defer d1()
	var ev events
	d2, _ := r.svc.Connect(ctx, good.ID, goodTok, ev.add)
	defer d2()
	for _, id := range []domain.SessionID{bad.ID, good.ID} {
		if _, err := r.svc.Offer(ctx, id, "offer"); err != nil {
			t.Fatal(err)
		}
	}
	r.mu.Lock()
	badOpts := r.opts[0]
	r.mu.Unlock()
	badOpts.OnState(ports.PeerConnected)
	eventually(t, "bad session closed", func() bool {
		_, err := r.svc.Session(ctx, bad.ID)
		return errors.Is(err, domain.ErrSessionNotFound)
	})
	if _, err := r.svc.Session(ctx, good.ID); err != nil {
		t.Fatalf("good session hurt: %v", err)
	}
}

func TestDrainSaysByeAndRefusesNewSessions(t *testing.T) {
	r := newRig(t, app.Config{})
	ctx := context.Background()
	sess, token, _ := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	var ev events
	detach, _ := r.svc.Connect(ctx, sess.ID, token, ev.add)
	defer detach()
	if _, err := r.svc.Offer(ctx, sess.ID, "offer"); err != nil {
		t.Fatal(err)
	}
	capt := <-r.captures
	if err := r.svc.Drain(ctx, "shutdown"); err != nil {
		t.Fatal(err)
	}
	if r.svc.Ready() {
		t.Fatal("ready while draining")
	}
	if !ev.has(domain.EventBye, "shutdown") {
		t.Fatal("no bye on drain")
	}
	if !capt.Closed.Load() {
		t.Fatal("capture left open after drain")
	}
	if _, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o"); !errors.Is(err, domain.ErrDraining) {
		t.Fatalf("create while draining: %v", err)
	}
}

func TestWHEPFailureLeavesNothing(t *testing.T) {
	r := newRig(t, app.Config{})
	ctx := context.Background()
	_, _, err := r.svc.WHEP(ctx, "nope", "o", "offer")
	if !errors.Is(err, domain.ErrDeviceNotFound) {
		t.Fatalf("whep unknown device: %v", err)
	}
	sess, answer, err := r.svc.WHEP(ctx, "dev", "o", "offer")
	if err != nil || answer != "answer" || sess.Kind != "whep" {
		t.Fatalf("whep: %+v %q %v", sess, answer, err)
	}
}

var _ = io.EOF

// connect creates a session, offers and marks its peer connected.
func (r *rig) connect(t *testing.T) (domain.Session, *events) {
	t.Helper()
	ctx := context.Background()
	sess, token, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	detach, err := r.svc.Connect(ctx, sess.ID, token, ev.add)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(detach)
	if _, err := r.svc.Offer(ctx, sess.ID, "offer"); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	opts := r.opts[len(r.opts)-1]
	r.mu.Unlock()
	opts.OnState(ports.PeerConnected)
	eventually(t, "connected in the store", func() bool {
		got, _ := r.svc.Session(ctx, sess.ID)
		return got.State == domain.StateConnected
	})
	return sess, ev
}

func TestUnhealthyStoreRefusesCreationOnly(t *testing.T) {
	r := newRig(t, app.Config{})
	ctx := context.Background()
	sess, _ := r.connect(t)
	down := fmt.Errorf("ping: %w", domain.ErrUnavailable)
	r.unwell.Store(&down)
	if r.svc.Ready() {
		t.Fatal("Ready with the store down")
	}
	if _, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o"); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("CreateSession with the store down = %v, want ErrUnavailable", err)
	}
	// The live session still answers: its peer is local.
	if err := r.svc.RequestKeyframe(ctx, sess.ID); err != nil {
		t.Fatalf("RequestKeyframe on a live session with the store down = %v", err)
	}
	r.unwell.Store(nil)
	if !r.svc.Ready() {
		t.Fatal("not Ready once the store is back")
	}
}

// TestSessionRemovedElsewhereIsClosed: another instance deleted (or
// reaped) the session in the shared store; the keepalive notices and
// closes the local peer.
func TestSessionRemovedElsewhereIsClosed(t *testing.T) {
	clock := newClock()
	r := newRigOn(t, app.Config{SessionTTL: 90 * time.Millisecond, CleanupInterval: time.Hour}, newMemstore(), nil, onFakeClock(clock))
	sess, ev := r.connect(t)
	if _, err := r.store.Delete(context.Background(), sess.ID); err != nil {
		t.Fatal(err)
	}
	advanceUntil(t, clock, 10*time.Millisecond, "bye after the store lost the session", func() bool { return ev.has(domain.EventBye, "expired") })
}

// TestResyncPutsSessionsBack: the store came back empty; Resync writes
// the live sessions back with their state.
func TestResyncPutsSessionsBack(t *testing.T) {
	r := newRig(t, app.Config{SessionTTL: time.Minute})
	ctx := context.Background()
	sess, _ := r.connect(t)
	if _, err := r.store.Delete(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := r.svc.Session(ctx, sess.ID)
	if err != nil {
		t.Fatalf("session after Resync: %v", err)
	}
	if got.State != domain.StateConnected || got.DeviceID != "dev" || got.TokenHash != sess.TokenHash {
		t.Fatalf("session after Resync = %+v", got)
	}
	if err := r.svc.Resync(ctx); err != nil { // present: only touched
		t.Fatal(err)
	}
}

// TestSessionLostByStoreStillCloses: a store that lost a live session (a
// Redis restarted empty, before Resync) does not make it vanish here: it
// is still found, and closing it tells its socket bye (the e2e stress test
// lost byes this way: DELETE answered 404 and the session played on).
func TestSessionLostByStoreStillCloses(t *testing.T) {
	r := newRig(t, app.Config{SessionTTL: time.Minute})
	ctx := context.Background()
	sess, ev := r.connect(t)
	if _, err := r.store.Delete(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	got, err := r.svc.Session(ctx, sess.ID)
	if err != nil || got.ID != sess.ID || got.State != domain.StateConnected {
		t.Fatalf("live session the store lost = %+v, %v", got, err)
	}
	if err := r.svc.CloseSession(ctx, sess.ID, "deleted"); err != nil {
		t.Fatalf("close a live session the store lost: %v", err)
	}
	if !ev.has(domain.EventBye, "deleted") {
		t.Fatal("no bye for a live session the store lost")
	}
	if _, err := r.svc.Session(ctx, sess.ID); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("closed session = %v, want not found", err)
	}
}

func TestInstancesWithoutRegistry(t *testing.T) {
	r := newRig(t, app.Config{Instance: "solo"})
	ins, err := r.svc.Instances(context.Background())
	if err != nil || len(ins) != 1 || ins[0].ID != "solo" {
		t.Fatalf("Instances = %+v, %v", ins, err)
	}
}

// TestUnconnectedSessionRemovedElsewhereIsClosed: a session never offered
// has no keepalive; when another instance reaps it from the shared store,
// the watch still closes it here.
func TestUnconnectedSessionRemovedElsewhereIsClosed(t *testing.T) {
	clock := newClock()
	r := newRigOn(t, app.Config{SessionTTL: 80 * time.Millisecond, CleanupInterval: time.Hour}, newMemstore(), nil, onFakeClock(clock))
	ctx := context.Background()
	sess, token, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	if err != nil {
		t.Fatal(err)
	}
	var ev events
	detach, err := r.svc.Connect(ctx, sess.ID, token, ev.add)
	if err != nil {
		t.Fatal(err)
	}
	defer detach()
	if _, err := r.store.Delete(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	advanceUntil(t, clock, 10*time.Millisecond, "bye after another instance reaped it", func() bool { return ev.has(domain.EventBye, "expired") })
}

// A capture reopened with another size (a rotated device) changes how the
// controller's clicks map: they follow the picture the viewer sees now,
// letterboxed into the device's screen.
func TestInputFollowsReopenedCaptureSize(t *testing.T) {
	r := newRig(t, app.Config{Hub: app.HubConfig{RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond}})
	ctx := context.Background()
	sess, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleController, "o")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Offer(ctx, sess.ID, "offer"); err != nil {
		t.Fatal(err)
	}
	first := <-r.captures
	portrait := domain.StreamInfo{Video: domain.CodecH264, Width: 360, Height: 640, FPS: 30}
	r.nextInfo.Store(&portrait)
	close(first.Frames)
	second := <-r.captures
	defer second.Close()
	// The capture shows up here from inside Open, before the hub has taken
	// its size; the pump reads a frame only after it has. Not a keyframe:
	// the size must come from the reopen itself.
	second.Frames <- domain.Frame{Kind: domain.KindVideo, Data: []byte{0, 0, 0, 1, 0x41}}
	// The 1280x720 screen fits the 360x640 picture as 360x202.5 from y=218.75.
	if err := r.svc.Input(ctx, sess.ID, domain.InputEvent{Type: domain.InputTap, X: 180, Y: 320}); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	got := r.inputs[len(r.inputs)-1]
	r.mu.Unlock()
	if got.X != 640 || got.Y != 360 {
		t.Fatalf("tap at the picture's centre reached (%d,%d), want (640,360)", got.X, got.Y)
	}
	if err := r.svc.Input(ctx, sess.ID, domain.InputEvent{Type: domain.InputTap, X: 180, Y: 100}); !errors.Is(err, domain.ErrInvalidInput) {
		t.Fatalf("tap on the letterbox bar: %v, want ErrInvalidInput", err)
	}
}

// Reconfigure changes the quota and the input budget for sessions created
// from then on; a session in progress keeps the budget it started with.
func TestReconfigure(t *testing.T) {
	r := newRig(t, app.Config{Quota: domain.Quota{Total: 10}, InputRate: 1000, InputBurst: 1000})
	ctx := context.Background()
	early, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleController, "o")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o"); err != nil {
		t.Fatal(err)
	}
	r.svc.Reconfigure(app.Tunables{Quota: domain.Quota{Total: 2}, InputRate: 0.001, InputBurst: 1})
	if _, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o"); !errors.Is(err, domain.ErrLimitExceeded) {
		t.Fatalf("third session under the lowered quota = %v, want ErrLimitExceeded", err)
	}
	r.svc.Reconfigure(app.Tunables{Quota: domain.Quota{Total: 3}, InputRate: 0.001, InputBurst: 1})
	late, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleController, "o")
	if err != nil {
		t.Fatalf("session under the raised quota = %v", err)
	}
	tap := domain.InputEvent{Type: domain.InputTap, X: 10, Y: 10}
	for _, id := range []domain.SessionID{early.ID, late.ID} {
		if _, err := r.svc.Offer(ctx, id, "offer"); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		if err := r.svc.Input(ctx, early.ID, tap); errors.Is(err, domain.ErrRateLimited) {
			t.Fatal("the session from before the reload lost its input budget")
		}
	}
	_ = r.svc.Input(ctx, late.ID, tap)
	if err := r.svc.Input(ctx, late.ID, tap); !errors.Is(err, domain.ErrRateLimited) {
		t.Fatalf("second input of a session with burst 1 = %v, want ErrRateLimited", err)
	}
}

// A capture whose size changes mid-stream (scrcpy restarts its encoder on
// a rotation) changes how clicks map from its next keyframe on, without a
// reopen.
func TestInputFollowsSizeChangeAtKeyframe(t *testing.T) {
	r := newRig(t, app.Config{})
	ctx := context.Background()
	sess, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleController, "o")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Offer(ctx, sess.ID, "offer"); err != nil {
		t.Fatal(err)
	}
	c := <-r.captures
	defer c.Close()
	c.Frames <- domain.Frame{Kind: domain.KindVideo, Keyframe: true, Data: []byte{0, 0, 0, 1, 0x65}}
	// Turned: 1280x720 becomes 720x1280 at the next keyframe.
	c.SetInfo(domain.StreamInfo{Video: domain.CodecH264, Width: 720, Height: 1280, FPS: 30})
	if err := r.svc.Input(ctx, sess.ID, domain.InputEvent{Type: domain.InputTap, X: 360, Y: 1000}); !errors.Is(err, domain.ErrInvalidInput) {
		t.Fatalf("before the keyframe the old size holds: %v", err)
	}
	c.Frames <- domain.Frame{Kind: domain.KindVideo, Keyframe: true, Data: []byte{0, 0, 0, 1, 0x65}, PTS: time.Second}
	c.Frames <- domain.Frame{Kind: domain.KindVideo, Data: []byte{0, 0, 0, 1, 0x41}, PTS: 2 * time.Second} // the keyframe was handled
	// The rig's 1280x720 screen letterboxed into the 720x1280 picture.
	if err := r.svc.Input(ctx, sess.ID, domain.InputEvent{Type: domain.InputTap, X: 360, Y: 640}); err != nil {
		t.Fatalf("after the keyframe: %v", err)
	}
	r.mu.Lock()
	got := r.inputs[len(r.inputs)-1]
	r.mu.Unlock()
	if got.X != 640 || got.Y != 360 {
		t.Fatalf("centre tap reached (%d,%d), want (640,360)", got.X, got.Y)
	}
}
