package app_test

import (
	"context"
	"errors"
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
