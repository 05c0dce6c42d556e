//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"mediasvc/e2e/adbdevice"
)

// TestADBScrcpyBackend: with adb.backend scrcpy the service pushes the jar,
// starts scrcpy-server (emulated, scrcpy 3.3.4 protocol) through the real
// adb server, plays it with its sound, asks it for keyframes (RESET_VIDEO) so a late
// joiner on a 10 s GOP starts at once, and injects input through its
// control socket.
func TestADBScrcpyBackend(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7", Clip: adbdevice.ClipGOP10(), Width: 1080, Height: 1920})
	d.EnableScrcpy("")
	in := startInstance(t, scrcpyConfig(t, srv, nil))
	waitDevices(t, in, 5*time.Second, "device online", func(ds map[string]adbDevice) bool {
		return ds[d.Serial()].Width > 0 && ds[d.Serial()].Backend == "scrcpy"
	})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ctl := dialDevice(ctx, t, in, d.Serial(), "controller")
	if err := ctl.WaitFrames(ctx, 30, true); err != nil {
		t.Fatal(err)
	}
	st := ctl.Stats()
	if st.AudioPackets == 0 {
		t.Errorf("no Opus packets from the device's audio socket")
	}
	if code, body := httpStatus(ctx, in.Base+"/api/v1/devices/"+d.Serial()); code != 200 || !strings.Contains(body, `"audio":true`) {
		t.Errorf("device after a capture with sound: %d %s", code, body)
	}
	checkPlayed(t, "scrcpy controller", st)
	t.Logf("scrcpy: session POST → first keyframe %s (push, start, connect included)", st.FirstKeyframe.Sub(st.Start).Round(time.Millisecond))
	if _, ok := d.Files()["/data/local/tmp/mediasvc-scrcpy-server.jar"]; !ok {
		t.Errorf("jar not pushed: %v", d.Files())
	}
	if starts := d.ScrcpyStarts(); len(starts) == 0 || starts[0][0] != adbdevice.ScrcpyVersion {
		t.Errorf("scrcpy starts %q", starts)
	}

	// Late joiner 3 s into the 10 s GOP: a keyframe on demand.
	time.Sleep(time.Until(st.FirstKeyframe.Add(3 * time.Second)))
	d.ResetInputs()
	late := dialDevice(ctx, t, in, d.Serial(), "viewer")
	if err := late.WaitFrames(ctx, 10, false); err != nil {
		t.Fatal(err)
	}
	lst := late.Stats()
	checkPlayed(t, "scrcpy late joiner", lst)
	t.Logf("scrcpy late joiner 3 s into a 10 s GOP: POST → first keyframe %s, connected → first keyframe %s",
		lst.FirstKeyframe.Sub(lst.Start).Round(time.Millisecond), lst.FirstKeyframe.Sub(lst.Connected).Round(time.Millisecond))
	if !strings.Contains(strings.Join(d.Inputs(), ","), "scrcpy reset_video") {
		t.Logf("the ring's cached GOP served the joiner (no RESET_VIDEO): inputs %q", d.Inputs())
	}
	// An explicit keyframe request becomes RESET_VIDEO: a fresh config
	// packet and IDR.
	d.ResetInputs()
	keysBefore := late.Stats().Keyframes
	asked := time.Now()
	if err := late.SendJSON(ctx, map[string]any{"type": "keyframe"}); err != nil {
		t.Fatal(err)
	}
	if got, err := d.WaitInputs(ctx, 1); err != nil || got[0] != "scrcpy reset_video" {
		t.Fatalf("keyframe request: %q %v", got, err)
	}
	for late.Stats().Keyframes == keysBefore {
		if time.Since(asked) > 5*time.Second {
			t.Fatal("no keyframe within 5 s of a keyframe request")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("scrcpy keyframe request → keyframe at the client %s", time.Since(asked).Round(time.Millisecond))

	// A tap through the control socket: video (640,360) of 1280x720.
	d.ResetInputs()
	sent := time.Now()
	if err := ctl.SendJSON(ctx, map[string]any{"type": "input", "action": "tap", "x": 640, "y": 360}); err != nil {
		t.Fatal(err)
	}
	got, err := d.WaitInputs(ctx, 2)
	if err != nil {
		t.Fatalf("tap: %v (inputs %q)", err, d.Inputs())
	}
	t.Logf("scrcpy input latency (WebSocket send → device recorded touch up): %s; %q", time.Since(sent).Round(time.Microsecond), got)
	// The 1280x720 video of a 1080x1920 display: the server scales the
	// video's centre to the display's.
	if want := fmt.Sprintf("scrcpy touch down %d %d", 540, 960); got[0] != want {
		t.Errorf("device recorded %q, want %q", got[0], want)
	}
	d.ResetInputs()
	for _, m := range []map[string]any{{"type": "input", "action": "text", "text": "hi there"}, {"type": "input", "action": "back"}} {
		if err := ctl.SendJSON(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	got, err = d.WaitInputs(ctx, 3)
	if err != nil {
		t.Fatalf("text/back: %v (inputs %q)", err, d.Inputs())
	}
	if got[0] != "scrcpy text hi there" || got[1] != "scrcpy key down 4" || got[2] != "scrcpy key up 4" {
		t.Errorf("device recorded %q", got)
	}
}
