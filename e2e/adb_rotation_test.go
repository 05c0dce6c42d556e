//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"mediasvc/e2e/adbdevice"
	"mediasvc/e2e/client"
)

// TestADBRotationKeepsInput turns the emulated device mid-stream and
// checks taps after it land where they should on the device, on both
// backends: scrcpy's video turns with the screen (a new config packet and
// size, no new codec header) and its server drops touches made for the old
// size, so the capture must follow every config packet's SPS; screenrecord
// keeps its size and letterboxes the turned screen, so input must map to
// the picture inside the bars.
func TestADBRotationKeepsInput(t *testing.T) {
	t.Run("scrcpy", func(t *testing.T) {
		srv := adbdevice.StartTestServer(t)
		d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
		d.EnableScrcpy("")
		in := startInstance(t, scrcpyConfig(t, srv, nil))
		rotateAndTap(t, in, d, []tapCase{
			{640, 360, "scrcpy touch down 640 360"},
		}, []tapCase{
			// The video is 720x1280 now: the lower half exists only turned.
			{360, 640, "scrcpy touch down 360 640"},
			{600, 1200, "scrcpy touch down 600 1200"},
		}, 720, 1280)
		for _, ig := range d.Ignored() {
			if strings.HasPrefix(ig, "scrcpy position") {
				t.Errorf("the server dropped a touch made for a stale size: %q", ig)
			}
		}
	})
	t.Run("screenrecord", func(t *testing.T) {
		srv := adbdevice.StartTestServer(t)
		d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
		// Two controllers: rotateAndTap's session still holds control
		// (its socket's grace) when the bar tap below opens another.
		in := startInstance(t, adbConfig(srv).
			set("adb", "orientation_poll", "200ms").
			set("control", "max_controllers", 2))
		// The running screenrecord keeps 1280x720 and letterboxes the
		// 720x1280 screen into it: a 405x720 picture from x=437.5, scale
		// 0.5625, so video (x,y) is the screen's ((x-437.5)/0.5625, y/0.5625).
		rotateAndTap(t, in, d, []tapCase{
			{640, 360, "tap 640 360"},
		}, []tapCase{
			{640, 360, "tap 360 640"},
			{800, 700, "tap 644 1244"}, // ((800-437.5)/0.5625, 700/0.5625)
		}, 1280, 720)
		// The bar left of the picture is no part of the screen.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ctl := dialDevice(ctx, t, in, d.Serial(), "controller")
		if err := ctl.WaitFrames(ctx, 3, false); err != nil {
			t.Fatal(err)
		}
		if err := ctl.SendJSON(ctx, map[string]any{"type": "input", "action": "tap", "x": 100, "y": 360}); err != nil {
			t.Fatal(err)
		}
		if m, err := ctl.WaitMessage(ctx, func(m client.Message) bool { return m.Type == "error" }); err != nil || m.Code != "invalid_input" {
			t.Errorf("tap on the bar: %+v %v", m, err)
		}
	})
}

type tapCase struct {
	x, y int
	want string // the device's first recorded input
}

// rotateAndTap plays d as a controller, checks the taps before, turns the
// device, waits until the service reports the turned screen and checks the
// taps after (retried while the service still maps to the old picture: it
// learns the turn from the stream or a poll). vw×vh is the video the
// viewer sees after the turn.
func rotateAndTap(t *testing.T, in *Instance, d *adbdevice.Device, before, after []tapCase, vw, vh int) {
	t.Helper()
	waitDevices(t, in, 5*time.Second, "device online", func(ds map[string]adbDevice) bool { return ds[d.Serial()].Width == 1280 })
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	ctl := dialDevice(ctx, t, in, d.Serial(), "controller")
	if err := ctl.WaitFrames(ctx, 10, false); err != nil {
		t.Fatal(err)
	}
	tap := func(c tapCase) (string, error) {
		d.ResetInputs()
		if err := ctl.SendJSON(ctx, map[string]any{"type": "input", "action": "tap", "x": c.x, "y": c.y}); err != nil {
			return "", err
		}
		wctx, wcancel := context.WithTimeout(ctx, time.Second)
		defer wcancel()
		got, err := d.WaitInputs(wctx, 1)
		if err != nil {
			return "", err
		}
		return got[0], nil
	}
	for _, c := range before {
		if got, err := tap(c); err != nil || got != c.want {
			t.Fatalf("before the turn, tap (%d,%d): %q %v, want %q", c.x, c.y, got, err, c.want)
		}
	}
	turned := time.Now()
	d.SetFault(adbdevice.FaultRotated, true)
	waitDevices(t, in, 10*time.Second, "the turned screen", func(ds map[string]adbDevice) bool {
		return ds[d.Serial()].Width == 720 && ds[d.Serial()].Height == 1280
	})
	t.Logf("service reports the turned screen %s after the turn", time.Since(turned).Round(time.Millisecond))
	for i, c := range after {
		var got string
		var err error
		for deadline := time.Now().Add(5 * time.Second); ; {
			if got, err = tap(c); err == nil && got == c.want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the turn, tap (%d,%d) in %dx%d: %q %v, want %q (device ignored %q)", c.x, c.y, vw, vh, got, err, c.want, d.Ignored())
			}
			time.Sleep(100 * time.Millisecond)
		}
		if i == 0 {
			t.Logf("first tap landing right %s after the turn", time.Since(turned).Round(time.Millisecond))
		}
	}
}
