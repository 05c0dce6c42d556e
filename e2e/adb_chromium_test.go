//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"mediasvc/e2e/adbdevice"
)

// TestChromiumPlaysADBDevice: headless Chromium opens the viewer page on an
// emulated device behind the real adb server, decodes its screen, and a
// click on the video arrives at the device as a tap where it was clicked.
func TestChromiumPlaysADBDevice(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
	in := startInstance(t, adbConfig(srv))
	waitDevices(t, in, 5*time.Second, "device online", func(ds map[string]adbDevice) bool { return ds[d.Serial()].Width > 0 })

	bctx := startChromium(t)
	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(in.Base+"/?device="+url.QueryEscape(d.Serial()))); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var last pageStats
	for {
		st, err := chromedp.Run(ctx, chromedp.Evaluate[pageStats](pcStatsJS, chromedp.EvalAwaitPromise))
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Logf("getStats: %v", err)
		}
		if err == nil {
			last = st
			if st.FramesDecoded > 30 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("within 30 s the page reached only %+v; want framesDecoded > 30", last)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("chromium on %s: %+v", d.Serial(), last)
	if last.Width != 1280 || last.Height != 720 {
		t.Errorf("decoded %dx%d, want 1280x720", last.Width, last.Height)
	}

	d.ResetInputs()
	clicked := time.Now()
	type rect struct{ X, Y, W, H float64 }
	r, err := chromedp.Run(ctx, chromedp.Evaluate[rect](`(() => { const b = document.querySelector('#video').getBoundingClientRect(); return {X: b.x, Y: b.y, W: b.width, H: b.height}; })()`))
	if err != nil {
		t.Fatalf("video rect: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.MouseClickXY(r.X+r.W/2, r.Y+r.H/2)); err != nil {
		t.Fatalf("click: %v", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	got, err := d.WaitInputs(wctx, 1)
	if err != nil {
		t.Fatalf("no input at the device after a click: %v", err)
	}
	t.Logf("click → device recorded %q in %s", got[0], time.Since(clicked).Round(time.Millisecond))
	var x, y int
	if _, err := fmt.Sscanf(got[0], "tap %d %d", &x, &y); err != nil {
		t.Fatalf("device recorded %q, want a tap", got[0])
	}
	// The middle of the video is the middle of the 1280x720 display.
	if x < 640-64 || x > 640+64 || y < 360-36 || y > 360+36 {
		t.Errorf("tap at (%d,%d), want near (640,360)", x, y)
	}
}
