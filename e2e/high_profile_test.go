//go:build e2e

package e2e

import (
	"context"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"mediasvc/e2e/adbdevice"
)

// TestHighProfileDevice: an emulated phone whose encoder sends H.264 High
// 4.0 (640028). Headless Chromium plays the device's own stream, and the
// answer it got declares a High profile on the payload type it receives —
// never the Constrained Baseline 42e01f the service once answered for
// every stream. Firefox without OpenH264 viewing the same device gets
// the VP8 rendition. Both pages' media lines say so from their first text.
func TestHighProfileDevice(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7", Clip: adbdevice.ClipHigh()})
	in := startInstance(t, adbConfig(srv))
	waitDevices(t, in, 5*time.Second, "device online", func(ds map[string]adbDevice) bool { return ds[d.Serial()].Width > 0 })
	page := in.Base + "/?device=" + url.QueryEscape(d.Serial())

	t.Run("chromium", func(t *testing.T) {
		bctx := startChromium(t)
		ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
			t.Fatalf("navigate: %v", err)
		}
		var st browserStats
		for deadline := time.Now().Add(60 * time.Second); ; {
			var err error
			st, err = chromedp.Run(ctx, chromedp.Evaluate[browserStats](browserStatsJS, chromedp.EvalAwaitPromise))
			if err == nil && st.FramesDecoded > 30 && st.Media != nil {
				break
			}
			if time.Now().After(deadline) {
				saveScreenshot(ctx, t)
				t.Fatalf("within 60 s the page reached only %+v (%v); want framesDecoded > 30 and its media line", st, err)
			}
			time.Sleep(300 * time.Millisecond)
		}
		t.Logf("chromium on a High device: %d frames, %s, fmtp %q", st.FramesDecoded, st.Codec, st.Fmtp)
		if !strings.EqualFold(st.Codec, "video/H264") || st.VideoWidth != 1280 || st.VideoHeight != 720 {
			t.Fatalf("codec %q, picture %dx%d; want the device's own H.264 at 1280x720", st.Codec, st.VideoWidth, st.VideoHeight)
		}
		plid := answeredH264Profile(t, st.Answer)
		t.Logf("answer: H.264 profile-level-id %s", plid)
		// Chromium 156 offers no 64xxxx entry: its f4001f (High 4:4:4
		// Predictive) is the one that decodes High, and the answer keeps
		// the offered profile on it (libwebrtc matches answered H.264 to its
		// offer by profile; adapters/rtc TestNegotiateRealOffers). A
		// Chromium that offers 64xxxx is answered with the stream's 640028.
		if plid == "42e01f" || !(plid == "640028" || strings.HasPrefix(plid, "f4")) {
			t.Errorf("the answer declares %s for a High 4.0 stream; want 640028, or the offered High 4:4:4 (f4xx1f) that decodes it", plid)
		}
		checkMediaLine(t, st, "H264 "+plid+" · original stream · udp · 1280×720")
	})

	t.Run("firefox", func(t *testing.T) {
		ff := startFirefox(t) // logs the page console if the test fails
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := ff.navigate(ctx, page); err != nil {
			t.Fatalf("navigate: %v", err)
		}
		var st browserStats
		for deadline := time.Now().Add(90 * time.Second); ; {
			err := ff.eval(ctx, browserStatsJS, &st)
			if err == nil && st.FramesDecoded > 30 && st.Media != nil {
				break
			}
			if time.Now().After(deadline) {
				ff.screenshot(ctx, t, "firefox-high")
				t.Fatalf("within 90 s the page reached only %+v (%v); want framesDecoded > 30 and its media line", st, err)
			}
			time.Sleep(300 * time.Millisecond)
		}
		if !strings.EqualFold(st.Codec, "video/VP8") || st.VideoWidth != 1280 || st.VideoHeight != 720 {
			t.Errorf("codec %q, picture %dx%d; want the VP8 rendition at 1280x720", st.Codec, st.VideoWidth, st.VideoHeight)
		}
		checkMediaLine(t, st, "VP8 · rendition vp8 · udp · 1280×720")
	})
}

var h264PT = regexp.MustCompile(`(?m)^a=rtpmap:(\d+) H264/90000`)

// answeredH264Profile returns the profile-level-id of the answer's H.264
// payload type (the service answers exactly one), lower-case.
func answeredH264Profile(t *testing.T, answer string) string {
	t.Helper()
	pts := h264PT.FindAllStringSubmatch(answer, -1)
	if len(pts) != 1 {
		t.Fatalf("the answer has %d H.264 payload types, want 1:\n%s", len(pts), answer)
	}
	m := regexp.MustCompile(`(?m)^a=fmtp:` + pts[0][1] + ` .*profile-level-id=([0-9a-fA-F]{6})`).FindStringSubmatch(answer)
	if m == nil {
		t.Fatalf("the answer's H.264 payload type %s has no profile-level-id:\n%s", pts[0][1], answer)
	}
	return strings.ToLower(m[1])
}
