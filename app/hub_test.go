package app_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"mediasvc/adapters/memstore"
	"mediasvc/app"
	"mediasvc/domain"
	"mediasvc/ports"
	"mediasvc/ports/portstest"
)

// A capture belongs to the hub: the viewer whose offer started it gives up
// (its request is cancelled) while the capture is still opening, and the
// viewer who joined meanwhile gets the stream all the same.
func TestCancelledJoinerOnlyDetachesItself(t *testing.T) {
	r := newRig(t, app.Config{Hub: app.HubConfig{Grace: time.Minute}})
	gate := make(chan struct{})
	r.openGate.Store(&gate)
	ctx := context.Background()
	first, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	firstErr := make(chan error, 1)
	go func() { _, err := r.svc.Offer(cctx, first.ID, "offer"); firstErr <- err }()
	eventually(t, "first viewer waiting for the capture", func() bool {
		d, _ := r.svc.Device(ctx, "dev")
		return d.Viewers == 1
	})
	secondErr := make(chan error, 1)
	go func() { _, err := r.svc.Offer(ctx, second.ID, "offer"); secondErr <- err }()
	eventually(t, "second viewer waiting for the capture", func() bool {
		d, _ := r.svc.Device(ctx, "dev")
		return d.Viewers == 2
	})
	cancel()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled offer = %v, want context.Canceled", err)
	}
	close(gate)
	if err := <-secondErr; err != nil {
		t.Fatalf("the other viewer's offer = %v, want its answer", err)
	}
	if n := r.opens.Load(); n != 1 {
		t.Fatalf("%d captures opened, want the one", n)
	}
	capt := <-r.captures
	if capt.Closed.Load() {
		t.Fatal("the capture was closed with the first viewer's request")
	}
	eventually(t, "the second viewer only", func() bool {
		d, _ := r.svc.Device(ctx, "dev")
		return d.Viewers == 1
	})
	// The first session can still offer again and join.
	if _, err := r.svc.Offer(ctx, first.ID, "offer"); err != nil {
		t.Fatalf("offer after a cancelled one = %v", err)
	}
}

// panicOnce is a capture whose first ReadFrame panics.
type panicOnce struct {
	*portstest.Capture
	done atomic.Bool
}

func (p *panicOnce) ReadFrame(ctx context.Context) (domain.Frame, error) {
	if p.done.CompareAndSwap(false, true) {
		panic("decoder bug")
	}
	return p.Capture.ReadFrame(ctx)
}

// A pump that panics closes its capture, counts the panic, tells the
// viewers the device is unavailable and reopens with backoff; the viewers
// are told it is back and frames flow again into the same fanout.
func TestPumpPanicReopens(t *testing.T) {
	rd, mp := newReading(t)
	r := newRigOn(t, app.Config{Hub: app.HubConfig{RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond}},
		newMemstore(), nil, func(d *app.Deps) { d.Meter = mp.Meter("mediasvc/app") })
	wrap := func(c *portstest.Capture) ports.Capture { return &panicOnce{Capture: c} }
	r.wrap.Store(&wrap)
	sess, ev := r.connect(t)
	first := <-r.captures
	eventually(t, "device_unavailable after the panic", func() bool { return ev.has(domain.EventState, "device_unavailable") })
	eventually(t, "panicked capture closed", first.Closed.Load)
	second := <-r.captures
	eventually(t, "device_available after the reopen", func() bool { return ev.has(domain.EventState, "device_available") })
	second.Frames <- domain.Frame{Kind: domain.KindVideo, Keyframe: true, PTS: time.Second}
	r.mu.Lock()
	fan, nfan := r.fanouts[0], len(r.fanouts)
	r.mu.Unlock()
	if nfan != 1 {
		t.Fatalf("%d fanouts, want the viewers' one kept", nfan)
	}
	eventually(t, "frames after the panic", func() bool { return len(fan.Frames()) == 1 })
	if got := rd.value("media_capture_panics", kvDevice); got != 1 {
		t.Fatalf("capture panics counted = %v, want 1", got)
	}
	if _, err := r.svc.Session(context.Background(), sess.ID); err != nil {
		t.Fatalf("session lost with the panic: %v", err)
	}
}

var kvDevice = attribute.String("device_id", "dev")

func newMemstore() *memstore.Store { return memstore.New(memstore.Options{}) }
