//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	"mediasvc/e2e/adbdevice"
)

// TestADBStaticScreenFirstFrame: screenrecord sends one picture and then
// nothing while the screen is static; that picture must still reach the
// viewer (the idle flush), not wait for a next one that never comes.
func TestADBStaticScreenFirstFrame(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
	d.SetFault(adbdevice.FaultStaticScreen, true)
	in := startInstance(t, adbConfig(srv))
	waitDevices(t, in, 5*time.Second, "device online", func(ds map[string]adbDevice) bool { return ds[d.Serial()].Width > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v := dialDevice(ctx, t, in, d.Serial(), "viewer")
	if err := v.WaitFrames(ctx, 1, false); err != nil {
		t.Fatalf("the one picture of a static screen did not arrive: %v", err)
	}
	st := v.Stats()
	if !st.FirstAUKeyframe {
		t.Errorf("first access unit %v is not SPS+PPS+IDR", st.FirstAUTypes)
	}
	t.Logf("static screen: POST → its only frame %s", st.FirstKeyframe.Sub(st.Start).Round(time.Millisecond))
	// The screen changes: frames flow again in the same session.
	d.SetFault(adbdevice.FaultStaticScreen, false)
	if err := v.WaitFrames(ctx, 30, false); err != nil {
		t.Fatalf("frames after the screen changed: %v", err)
	}
}

// TestADBGarbageAndDrop: garbage between pictures does not stop the stream;
// a device that drops its connection mid-stream makes the viewer hear
// device_unavailable, and the stream comes back in the same session.
func TestADBGarbageAndDrop(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
	in := startInstance(t, adbConfig(srv).set("adb", "breaker", map[string]any{"failures": 10}))
	waitDevices(t, in, 5*time.Second, "device online", func(ds map[string]adbDevice) bool { return ds[d.Serial()].Width > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v := dialDevice(ctx, t, in, d.Serial(), "viewer")
	if err := v.WaitFrames(ctx, 10, false); err != nil {
		t.Fatal(err)
	}
	d.SetFault(adbdevice.FaultGarbage, true)
	if err := v.WaitFrames(ctx, v.Stats().Frames+30, false); err != nil {
		t.Fatalf("frames with garbage between pictures: %v", err)
	}
	d.SetFault(adbdevice.FaultGarbage, false)
	t.Logf("with garbage: %d frames, %d failed structural checks", v.Stats().Frames, v.Stats().BadFrames)

	dropped := time.Now()
	d.Drop()
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	at, err := waitState(wctx, v, "device_unavailable")
	wcancel()
	if err != nil {
		// adb reconnects a dropped TCP device within ~0.5 s; the capture may
		// be back before the viewer is told anything.
		t.Logf("no device_unavailable after a drop: %v", err)
	} else {
		t.Logf("drop → device_unavailable %s", at.Sub(dropped).Round(time.Millisecond))
	}
	if err := v.WaitFrames(ctx, v.Stats().Frames+30, false); err != nil {
		t.Fatalf("frames after the drop: %v", err)
	}
	t.Logf("drop → 30 more frames %s", time.Since(dropped).Round(time.Millisecond))
}

// TestADBUnauthorizedDevice: a device that never accepts the adb key is
// listed unauthorized and cannot stream (503), without tripping anything.
func TestADBUnauthorizedDevice(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7", Auth: adbdevice.AuthReject})
	in := startInstance(t, adbConfig(srv))
	waitDevices(t, in, 5*time.Second, "device listed unauthorized", func(ds map[string]adbDevice) bool {
		return ds[d.Serial()].State == "unauthorized"
	})
	resp, body := do(t, "POST", in.Base+"/whep/"+d.Serial(), "application/sdp", []byte(testOffer(t)), nil)
	if resp.StatusCode != 503 || errorCode(body) != "device_unavailable" {
		t.Errorf("WHEP on an unauthorized device: %d %s", resp.StatusCode, body)
	}
	if b := listDevices(t, in)[d.Serial()].Breaker; b != "closed" {
		t.Errorf("breaker %q: an unauthorized device in the list is not a failure", b)
	}
}
