//go:build e2e

package e2e

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"mediasvc/e2e/adbdevice"
)

// TestChromiumPinchOnScrcpy: two fingers on the viewer page (touch events
// from Chromium's input domain) reach the emulated scrcpy server as two
// pointers — down, a second pointer down, moves, pointer up, up.
func TestChromiumPinchOnScrcpy(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
	d.EnableScrcpy("")
	in := startInstance(t, scrcpyConfig(t, srv, map[string]any{"audio": false}))
	waitDevices(t, in, 5*time.Second, "device online", func(ds map[string]adbDevice) bool { return ds[d.Serial()].Width > 0 })

	bctx := startChromium(t)
	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(in.Base+"/?device="+url.QueryEscape(d.Serial()))); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	if _, err := chromedp.Call(ctx, emulation.SetTouchEmulationEnabled, emulation.SetTouchEmulationEnabledParams{Enabled: true, MaxTouchPoints: 5}); err != nil {
		t.Fatalf("touch emulation: %v", err)
	}
	type rect struct{ X, Y, W, H float64 }
	for deadline := time.Now().Add(30 * time.Second); ; {
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const v = document.querySelector('#video'); return v.videoWidth > 0 && v.currentTime > 0.3; })()`)); err == nil && ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the page never played")
		}
		time.Sleep(300 * time.Millisecond)
	}
	r, err := chromedp.Run(ctx, chromedp.Evaluate[rect](`(() => { const b = document.querySelector('#video').getBoundingClientRect(); return {X: b.x, Y: b.y, W: b.width, H: b.height}; })()`))
	if err != nil {
		t.Fatal(err)
	}
	cx, cy := r.X+r.W/2, r.Y+r.H/2
	pts := func(dx float64) []*input.TouchPoint {
		one, two := 1.0, 2.0
		return []*input.TouchPoint{{X: cx - dx, Y: cy, ID: &one}, {X: cx + dx, Y: cy, ID: &two}}
	}
	d.ResetInputs()
	steps := []input.DispatchTouchEventParams{
		{Type: input.DispatchTouchEventTypeTouchStart, TouchPoints: pts(20)[:1]},
		{Type: input.DispatchTouchEventTypeTouchStart, TouchPoints: pts(20)},
		{Type: input.DispatchTouchEventTypeTouchMove, TouchPoints: pts(60)},
		{Type: input.DispatchTouchEventTypeTouchMove, TouchPoints: pts(100)},
		{Type: input.DispatchTouchEventTypeTouchEnd, TouchPoints: []*input.TouchPoint{}},
	}
	for _, s := range steps {
		if _, err := chromedp.Call(ctx, input.DispatchTouchEvent, s); err != nil {
			t.Fatalf("touch: %v", err)
		}
		time.Sleep(30 * time.Millisecond)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	var got []string
	for {
		got = d.Inputs()
		if n := len(got); n > 0 && strings.HasPrefix(got[n-1], "scrcpy touch up ") {
			break
		}
		if wctx.Err() != nil {
			t.Fatalf("no pinch at the device: %q", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("pinch → %q", got)
	all := strings.Join(got, "|")
	if !strings.HasPrefix(got[0], "scrcpy touch down ") || !strings.Contains(all, "scrcpy touch pointer_down 1 ") ||
		!strings.Contains(all, "scrcpy touch move ") || !strings.Contains(all, "scrcpy touch pointer_up ") {
		t.Errorf("device recorded %q, want down, pointer_down 1, moves, pointer_up, up", got)
	}
}
