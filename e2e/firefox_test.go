//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"mediasvc/e2e/adbdevice"
)

// browserStatsJS reads what the viewer page's peer connection and video
// element have: decoded frames and the codec of the inbound video, audio
// packets, the picture's size and clock.
const browserStatsJS = `(async () => {
  const m = window.mediasvc;
  const v = document.querySelector('#video');
  const out = {ready: false, framesDecoded: 0, audioPackets: 0, codec: '', videoWidth: v ? v.videoWidth : 0,
    videoHeight: v ? v.videoHeight : 0, currentTime: v ? v.currentTime : 0, paused: v ? v.paused : true,
    now: performance.now(), page: (document.querySelector('#client-stats') || {}).innerText || '',
    msg: (document.querySelector('#player-msg') || {}).innerText || '',
    media: (window.mediasvc && window.mediasvc.media) || null, line: (document.querySelector('#media-line') || {}).innerText || '',
    lines: (window.mediasvc && window.mediasvc.mediaLines) || [],
    answer: (m && m.pc && m.pc.remoteDescription) ? m.pc.remoteDescription.sdp : '', fmtp: '',
    timing: (window.mediasvc && window.mediasvc.timing) || {}};
  if (!m || !m.pc) return out;
  out.ready = true;
  out.state = m.pc.connectionState;
  const r = await m.pc.getStats();
  r.forEach(s => {
    if (s.type !== 'inbound-rtp') return;
    const kind = s.kind || s.mediaType;
    if (kind === 'video') {
      out.framesDecoded = s.framesDecoded || 0;
      const c = s.codecId && r.get(s.codecId);
      out.codec = c ? c.mimeType : '';
      out.fmtp = c ? (c.sdpFmtpLine || '') : '';
    } else if (kind === 'audio') {
      out.audioPackets = s.packetsReceived || 0;
    }
  });
  return out;
})()`

type browserStats struct {
	Ready         bool    `json:"ready"`
	State         string  `json:"state"`
	FramesDecoded int     `json:"framesDecoded"`
	AudioPackets  int     `json:"audioPackets"`
	Codec         string  `json:"codec"`
	VideoWidth    int     `json:"videoWidth"`
	VideoHeight   int     `json:"videoHeight"`
	CurrentTime   float64 `json:"currentTime"`
	Paused        bool    `json:"paused"`
	Now           float64 `json:"now"` // ms since the page's navigation started
	Page          string  `json:"page"`
	Msg           string  `json:"msg"`
	Media         *struct {
		Codec      string `json:"codec"`
		Rendition  string `json:"rendition"`
		Transport  string `json:"transport"`
		Resolution string `json:"resolution"`
	} `json:"media"`
	Line string `json:"line"`
	// Lines is every text the media line has shown, in order.
	Lines []string `json:"lines"`
	// Answer is the answer SDP the page applied; Fmtp the fmtp line of the
	// inbound video's codec.
	Answer string `json:"answer"`
	Fmtp   string `json:"fmtp"`
	Timing struct {
		Offer      float64 `json:"offer"`
		FirstFrame float64 `json:"firstFrame"`
	} `json:"timing"`
}

// Debian's Firefox without OpenH264 (it fetches it from Cisco at run
// time; nothing may here) offers VP8, VP9 and AV1 only: it plays the demo
// through the VP8 rendition, with the device's audio, and the page works
// (its controls, no console error).
func TestFirefoxPlaysDemoVP8(t *testing.T) {
	in := startInstance(t, nil)
	ff := startFirefox(t) // logs the page console if the test fails

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := ff.navigate(ctx, in.Base+"/?device=demo"); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	var last, first browserStats
	deadline := time.Now().Add(90 * time.Second) // ffmpeg and Firefox on a loaded 2-core machine
	for {
		var st browserStats
		err := ff.eval(ctx, browserStatsJS, &st)
		if err != nil {
			t.Logf("stats: %v", err)
		} else {
			last = st
			if first.CurrentTime == 0 && st.CurrentTime > 0 {
				first = st
			}
			if st.FramesDecoded > 60 && st.AudioPackets > 0 && st.VideoWidth > 0 && first.CurrentTime > 0 && st.CurrentTime > first.CurrentTime {
				break
			}
		}
		if time.Now().After(deadline) {
			ff.screenshot(ctx, t, "firefox-demo")
			t.Fatalf("within 90 s the page reached only %+v; want framesDecoded > 60, audio packets, a picture whose clock advances", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("firefox: %+v", last)
	t.Logf("first-frame firefox vp8: first frame shown %.0f ms after navigation, %.0f ms after the offer", last.Timing.FirstFrame, last.Timing.FirstFrame-last.Timing.Offer)
	if !strings.EqualFold(last.Codec, "video/VP8") {
		t.Errorf("inbound video codec %q, want video/VP8 (Firefox has no WebRTC H.264 here)", last.Codec)
	}
	if last.VideoWidth != 1280 || last.VideoHeight != 720 {
		t.Errorf("picture %dx%d, want the demo's 1280x720", last.VideoWidth, last.VideoHeight)
	}
	if last.Paused {
		t.Error("the video element is paused")
	}

	// The controls: Unmute unmutes, Keyframe asks for one (a PLI the
	// server forwards to the transcoder and the source), and frames keep
	// being decoded.
	var ctl struct {
		Muted       bool `json:"muted"`
		UnmuteShown bool `json:"unmuteShown"`
	}
	if err := ff.eval(ctx, `(async () => {
	  document.querySelector('#unmute').click();
	  document.querySelector('#keyframe').click();
	  await new Promise(r => setTimeout(r, 500));
	  return {muted: document.querySelector('#video').muted, unmuteShown: !document.querySelector('#unmute').hidden};
	})()`, &ctl); err != nil {
		t.Fatalf("controls: %v", err)
	}
	if ctl.Muted || ctl.UnmuteShown {
		t.Errorf("after Unmute: muted %v, button shown %v", ctl.Muted, ctl.UnmuteShown)
	}
	before := last.FramesDecoded
	for deadline := time.Now().Add(30 * time.Second); ; {
		var st browserStats
		if err := ff.eval(ctx, browserStatsJS, &st); err == nil {
			last = st
			if st.FramesDecoded > before+30 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("frames stopped after the controls: %+v", last)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The line under the picture says what the browser gets (the
	// rendition arrives with the server's stats, every few seconds).
	for deadline := time.Now().Add(30 * time.Second); last.Media == nil || last.Media.Rendition != "vp8"; {
		if time.Now().After(deadline) {
			t.Fatalf("the page never showed the vp8 rendition: %+v %q", last.Media, last.Line)
		}
		time.Sleep(500 * time.Millisecond)
		_ = ff.eval(ctx, browserStatsJS, &last)
	}
	checkMediaLine(t, last, "VP8 · rendition vp8 · udp · 1280×720")
	if last.Msg != "" {
		t.Errorf("the page shows a message: %q", last.Msg)
	}
	ff.screenshot(ctx, t, "firefox-demo")
	for _, l := range ff.consoleLogs() {
		if l.Level == "error" || l.Type == "javascript" {
			t.Errorf("page console: %s", l)
		}
	}
}

// checkMediaLine fails t unless the page's media line says want and
// every text it showed before was final too: no placeholder ("?", "—")
// ever, the rendition right from the first text on.
func checkMediaLine(t *testing.T, st browserStats, want string) {
	t.Helper()
	t.Logf("media line: %q (shown before: %q)", st.Line, st.Lines)
	if st.Line != want || st.Media == nil {
		t.Errorf("media line %q (%+v), want %q", st.Line, st.Media, want)
	}
	if len(st.Lines) == 0 {
		t.Errorf("the page recorded no media line, yet shows %q", st.Line)
	}
	for _, l := range st.Lines {
		if strings.ContainsAny(l, "?—") {
			t.Errorf("the media line showed a placeholder: %q", l)
		}
	}
	if len(st.Lines) > 0 && st.Lines[0] != want {
		t.Errorf("the media line first said %q, want %q from the start", st.Lines[0], want)
	}
}

func joinLogs(ls []bidiLog) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// TestFirefoxPlaysADBDevice: Firefox (VP8 only) plays an emulated device
// behind the real adb server through the VP8 rendition, and a real click
// on the picture (WebDriver BiDi input actions) arrives as a tap where it
// was clicked.
func TestFirefoxPlaysADBDevice(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
	in := startInstance(t, adbConfig(srv))
	waitDevices(t, in, 5*time.Second, "device online", func(ds map[string]adbDevice) bool { return ds[d.Serial()].Width > 0 })
	ff := startFirefox(t) // logs the page console if the test fails
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := ff.navigate(ctx, in.Base+"/?device="+url.QueryEscape(d.Serial())); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	var last browserStats
	for deadline := time.Now().Add(90 * time.Second); ; {
		if err := ff.eval(ctx, browserStatsJS, &last); err == nil && last.FramesDecoded > 30 && last.VideoWidth > 0 {
			break
		}
		if time.Now().After(deadline) {
			ff.screenshot(ctx, t, "firefox-adb")
			t.Fatalf("within 90 s the page reached only %+v; want framesDecoded > 30", last)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("firefox on %s: %+v", d.Serial(), last)
	if !strings.EqualFold(last.Codec, "video/VP8") || last.VideoWidth != 1280 || last.VideoHeight != 720 {
		t.Errorf("codec %q, picture %dx%d; want video/VP8, 1280x720", last.Codec, last.VideoWidth, last.VideoHeight)
	}

	d.ResetInputs()
	var r struct{ X, Y, W, H float64 }
	if err := ff.eval(ctx, `(() => { const b = document.querySelector('#video').getBoundingClientRect(); return {X: b.x, Y: b.y, W: b.width, H: b.height}; })()`, &r); err != nil {
		t.Fatalf("video rect: %v", err)
	}
	x, y := int(r.X+r.W/2), int(r.Y+r.H/2)
	if _, err := ff.call(ctx, "input.performActions", map[string]any{"context": ff.context, "actions": []any{map[string]any{
		"type": "pointer", "id": "mouse", "parameters": map[string]any{"pointerType": "mouse"},
		"actions": []any{
			map[string]any{"type": "pointerMove", "x": x, "y": y},
			map[string]any{"type": "pointerDown", "button": 0},
			map[string]any{"type": "pointerUp", "button": 0},
		},
	}}}); err != nil {
		t.Fatalf("click: %v", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
	defer wcancel()
	got, err := d.WaitInputs(wctx, 1)
	if err != nil {
		t.Fatalf("no input at the device after a click: %v", err)
	}
	var tx, ty int
	if _, err := fmt.Sscanf(got[0], "tap %d %d", &tx, &ty); err != nil {
		t.Fatalf("device recorded %q, want a tap", got[0])
	}
	if tx < 640-64 || tx > 640+64 || ty < 360-36 || ty > 360+36 {
		t.Errorf("tap at (%d,%d), want near (640,360)", tx, ty)
	}
	ff.screenshot(ctx, t, "firefox-adb")
	for _, l := range ff.consoleLogs() {
		if l.Level == "error" || l.Type == "javascript" {
			t.Errorf("page console: %s", l)
		}
	}
}
