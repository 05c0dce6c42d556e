package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"mediasvc/app"
	"mediasvc/domain"
)

// Device input: who may send it, its rate limit, coordinates after a size change.

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
