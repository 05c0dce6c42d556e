//go:build e2e

package e2e

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"mediasvc/e2e/adbdevice"
)

// TestRotationThroughTranscoder turns an emulated scrcpy device while
// Firefox (VP8 only) watches it through the VP8 rendition: scrcpy's video
// turns to 720x1280 with a new SPS, the hub restarts ffmpeg for the new
// size, and the same peer connection goes on decoding frames of the
// turned picture, its media line saying so.
func TestRotationThroughTranscoder(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
	d.EnableScrcpy("")
	in := startInstance(t, scrcpyConfig(t, srv, nil))
	waitDevices(t, in, 5*time.Second, "device online", func(ds map[string]adbDevice) bool { return ds[d.Serial()].Width == 1280 })

	ff := startFirefox(t) // logs the page console if the test fails
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := ff.navigate(ctx, in.Base+"/?device="+url.QueryEscape(d.Serial())); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	var st browserStats
	for deadline := time.Now().Add(90 * time.Second); ; {
		if err := ff.eval(ctx, browserStatsJS, &st); err == nil && st.FramesDecoded > 30 && st.VideoWidth == 1280 && st.Media != nil {
			break
		}
		if time.Now().After(deadline) {
			ff.screenshot(ctx, t, "firefox-rotation")
			t.Fatalf("within 90 s the page reached only %+v; want framesDecoded > 30 at 1280x720", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.EqualFold(st.Codec, "video/VP8") {
		t.Fatalf("codec %q, want the VP8 rendition", st.Codec)
	}
	checkMediaLine(t, st, "VP8 · rendition vp8 · udp · 1280×720")
	pc := st.Answer // the same peer connection must carry the turned picture

	turned := time.Now()
	d.SetFault(adbdevice.FaultRotated, true)
	var atTurn int
	for deadline := time.Now().Add(60 * time.Second); ; {
		if err := ff.eval(ctx, browserStatsJS, &st); err == nil && st.VideoWidth == 720 && st.VideoHeight == 1280 {
			if atTurn == 0 {
				atTurn = st.FramesDecoded
				t.Logf("Firefox shows 720x1280 %s after the turn (frame %d)", time.Since(turned).Round(time.Millisecond), atTurn)
			}
			if st.FramesDecoded > atTurn+30 && strings.HasSuffix(st.Line, "720×1280") {
				break
			}
		}
		if time.Now().After(deadline) {
			ff.screenshot(ctx, t, "firefox-rotation")
			t.Fatalf("60 s after the turn the page shows %+v (first turned frame %d); want 30 more frames at 720x1280", st, atTurn)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st.Answer != pc {
		t.Error("the page renegotiated for the turn; the rendition's restart must be invisible to the peer connection")
	}
	if st.Line != "VP8 · rendition vp8 · udp · 720×1280" {
		t.Errorf("media line after the turn %q", st.Line)
	}
	for _, l := range st.Lines {
		if strings.ContainsAny(l, "?—") {
			t.Errorf("the media line showed a placeholder: %q", l)
		}
	}
	t.Logf("media lines: %q", st.Lines)
	if !strings.Contains(in.Log(), "source size changed; restarting the transcoder") {
		t.Error("the service log does not say the transcoder restarted for the new size")
	}
	ff.screenshot(ctx, t, "firefox-rotation")
	for _, l := range ff.consoleLogs() {
		if l.Level == "error" || l.Type == "javascript" {
			t.Errorf("page console: %s", l)
		}
	}
}
