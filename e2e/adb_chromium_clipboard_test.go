//go:build e2e

package e2e

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"mediasvc/e2e/adbdevice"
)

// TestChromiumDeviceClipboard: text copied on the emulated device (its
// scrcpy server's clipboard autosync) reaches the controller's page, which
// offers it and copies it to the browser's clipboard on a click; a
// viewer's page of the same device never gets it.
func TestChromiumDeviceClipboard(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
	d.EnableScrcpy("")
	in := startInstance(t, scrcpyConfig(t, srv, map[string]any{"audio": false}))
	waitDevices(t, in, 5*time.Second, "device online", func(ds map[string]adbDevice) bool { return ds[d.Serial()].Width > 0 })

	bctx := startChromium(t)
	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.Call(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name}, Setting: browser.PermissionSettingGranted, Origin: in.Base}); err != nil {
			t.Fatalf("grant %s: %v", name, err)
		}
	}
	vctx, vcancel := chromedp.NewContext(ctx) // a second tab: the viewer
	defer vcancel()
	playing := func(ctx context.Context, who string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; {
			if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const v = document.querySelector('#video'); return v.videoWidth > 0 && v.currentTime > 0.3; })()`)); err == nil && ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the %s's page never played", who)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	page := in.Base + "/?device=" + url.QueryEscape(d.Serial())
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	if err := chromedp.Do(vctx, chromedp.Navigate(page+"&role=viewer")); err != nil {
		t.Fatalf("navigate viewer: %v", err)
	}
	playing(ctx, "controller")
	playing(vctx, "viewer")

	const copied = "copied on the phone ✓"
	d.SetClipboard(copied)
	var got string
	for deadline := time.Now().Add(10 * time.Second); got != copied; {
		got, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`window.mediasvc.deviceClipboard || ''`))
		if time.Now().After(deadline) {
			t.Fatalf("the controller's page has %q, want %q", got, copied)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Delivered to every controller in one pass: the viewer had its turn.
	if v, err := chromedp.Run(vctx, chromedp.Evaluate[string](`(window.mediasvc.deviceClipboard || '') + (document.querySelector('#device-clip').hidden ? '' : 'shown')`)); err != nil || v != "" {
		t.Fatalf("viewer's page: %q %v", v, err)
	}
	label, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const b = document.querySelector('#device-clip'); return b.hidden ? 'hidden' : b.textContent; })()`))
	if err != nil || label != "Device clipboard: copy (21 chars)" {
		t.Fatalf("button %q %v", label, err)
	}
	if _, err := chromedp.Call(ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}); err != nil {
		t.Fatalf("focus: %v", err)
	}
	// The viewer's tab is in front: a click dispatched as the page's own
	// (the permission granted stands for the user's gesture).
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.querySelector('#device-clip').click(), true)`)); err != nil {
		t.Fatalf("click: %v", err)
	}
	var inClipboard string
	for deadline := time.Now().Add(10 * time.Second); inClipboard != copied; {
		inClipboard, err = chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
		if time.Now().After(deadline) {
			t.Fatalf("browser clipboard %q (%v), want %q", inClipboard, err, copied)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
