package app_test

import (
	"context"
	"testing"
	"time"

	"mediasvc/app"
	"mediasvc/domain"
)

// Captures: one per device with a grace, and reopened with continuous timestamps.

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
