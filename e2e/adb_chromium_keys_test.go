//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"image/png"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"mediasvc/e2e/adbdevice"
)

// TestChromiumKeysTextWheelScreenshot: on a scrcpy device's page,
// Ctrl+Shift+C (Chromium's input domain) goes down and up with its meta
// state, a typed é goes as text, a wheel notch scrolls, and the
// Screenshot button downloads the device's PNG.
func TestChromiumKeysTextWheelScreenshot(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
	d.EnableScrcpy("")
	in := startInstance(t, scrcpyConfig(t, srv, map[string]any{"audio": false}))
	waitDevices(t, in, 5*time.Second, "device online", func(ds map[string]adbDevice) bool { return ds[d.Serial()].Width > 0 })

	bctx := startChromium(t)
	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	dl := t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dl}); err != nil {
		t.Fatalf("downloads: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(in.Base+"/?device="+url.QueryEscape(d.Serial()))); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const v = document.querySelector('#video'); return v.videoWidth > 0 && v.currentTime > 0.3; })()`)); err == nil && ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the page never played")
		}
		time.Sleep(300 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // the device's backend (scrcpy) read by the page
	type rect struct{ X, Y, W, H float64 }
	r, err := chromedp.Run(ctx, chromedp.Evaluate[rect](`(() => { const v = document.querySelector('#video'); v.focus(); const b = v.getBoundingClientRect(); return {X: b.x, Y: b.y, W: b.width, H: b.height}; })()`))
	if err != nil {
		t.Fatal(err)
	}
	d.ResetInputs()
	const ctrlShift = 2 | 8
	for _, k := range []input.DispatchKeyEventParams{
		{Type: input.DispatchKeyEventTypeKeyDown, Modifiers: ctrlShift, Key: "C", Code: "KeyC", WindowsVirtualKeyCode: 67},
		{Type: input.DispatchKeyEventTypeKeyUp, Modifiers: ctrlShift, Key: "C", Code: "KeyC", WindowsVirtualKeyCode: 67},
		{Type: input.DispatchKeyEventTypeKeyDown, Key: "é", Text: "é"},
		{Type: input.DispatchKeyEventTypeKeyUp, Key: "é"},
	} {
		if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, k); err != nil {
			t.Fatalf("key: %v", err)
		}
	}
	// A zero deltaX would be left out of the call, which the protocol
	// refuses; a thousandth of a pixel is no scroll.
	if _, err := chromedp.Call(ctx, input.DispatchMouseEvent, input.DispatchMouseEventParams{
		Type: input.DispatchMouseEventTypeMouseWheel, X: r.X + r.W/2, Y: r.Y + r.H/2, DeltaY: 100,
		DeltaX: 0.001}); err != nil {
		t.Fatalf("wheel: %v", err)
	}
	got, err := d.WaitInputs(ctx, 4)
	if err != nil {
		t.Fatalf("%v: %q", err, got)
	}
	want := []string{"scrcpy key down 31 meta=0x3041", "scrcpy key up 31 meta=0x3041", "scrcpy text é"}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("input %d: %q, want %q", i, got[i], w)
		}
	}
	if !strings.HasPrefix(got[3], "scrcpy scroll ") || !strings.HasSuffix(got[3], " h=0 v=-1") {
		t.Errorf("wheel: %q, want a scroll of v=-1", got[3])
	}

	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.querySelector('#screenshot').click(), true)`)); err != nil {
		t.Fatal(err)
	}
	var shot []byte
	for deadline := time.Now().Add(20 * time.Second); shot == nil; {
		if ms, _ := filepath.Glob(filepath.Join(dl, "*.png")); len(ms) == 1 {
			shot, _ = os.ReadFile(ms[0])
		}
		if time.Now().After(deadline) {
			t.Fatal("no screenshot downloaded")
		}
		time.Sleep(200 * time.Millisecond)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil || img.Bounds().Dx() != 1280 || img.Bounds().Dy() != 720 {
		t.Fatalf("screenshot: %v %v", img.Bounds(), err)
	}
}
