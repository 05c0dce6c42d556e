//go:build e2e

package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const chromiumPath = "/usr/bin/chromium"

// pcStats reads the viewer page's RTCPeerConnection stats.
const pcStatsJS = `(async () => {
  const m = window.mediasvc;
  if (!m || !m.pc) return {ready: false};
  const r = await m.pc.getStats();
  const out = {ready: true, state: m.pc.connectionState, framesDecoded: 0, videoPackets: 0, audioPackets: 0, width: 0, height: 0};
  r.forEach(s => {
    if (s.type !== 'inbound-rtp') return;
    const kind = s.kind || s.mediaType;
    if (kind === 'video') {
      out.framesDecoded = s.framesDecoded || 0;
      out.videoPackets = s.packetsReceived || 0;
      out.width = s.frameWidth || 0;
      out.height = s.frameHeight || 0;
    } else if (kind === 'audio') {
      out.audioPackets = s.packetsReceived || 0;
    }
  });
  return out;
})()`

type pageStats struct {
	Ready         bool   `json:"ready"`
	State         string `json:"state"`
	FramesDecoded int    `json:"framesDecoded"`
	VideoPackets  int    `json:"videoPackets"`
	AudioPackets  int    `json:"audioPackets"`
	Width         int    `json:"width"`
	Height        int    `json:"height"`
}

func TestChromiumPlaysDemo(t *testing.T) {
	in := startInstance(t, nil)

	bctx := startChromium(t)

	// Collect the page's console for the failure report.
	var (
		mu      sync.Mutex
		console []string
	)
	cctx, ccancel := context.WithCancel(bctx)
	defer ccancel()
	msgs := chromedp.Console(cctx)
	var cwg sync.WaitGroup
	cwg.Add(1)
	go func() {
		defer cwg.Done()
		for m, err := range msgs {
			if err != nil {
				return
			}
			mu.Lock()
			if len(console) < 200 {
				console = append(console, m.String())
			}
			mu.Unlock()
		}
	}()
	defer func() {
		ccancel()
		cwg.Wait()
		if t.Failed() {
			mu.Lock()
			t.Logf("page console:\n%q", console)
			mu.Unlock()
		}
	}()

	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(in.Base+"/?device=demo")); err != nil {
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
			if st.FramesDecoded > 60 && st.AudioPackets > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			saveScreenshot(ctx, t)
			t.Fatalf("within 30 s the page reached only %+v; want framesDecoded > 60 and audio packetsReceived > 0", last)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("chromium: %+v", last)
	if last.Width != 1280 || last.Height != 720 {
		t.Errorf("decoded %dx%d, want 1280x720", last.Width, last.Height)
	}
	// The line under the picture: the device's own H.264, over UDP.
	var bs browserStats
	for deadline := time.Now().Add(30 * time.Second); bs.Media == nil; {
		if time.Now().After(deadline) {
			t.Fatalf("the page never showed what it gets: %+v %q", bs.Media, bs.Line)
		}
		time.Sleep(500 * time.Millisecond)
		bs, _ = chromedp.Run(ctx, chromedp.Evaluate[browserStats](browserStatsJS, chromedp.EvalAwaitPromise))
	}
	// Chromium answers the demo's 42e01f on its own 42e01f entry.
	checkMediaLine(t, bs, "H264 42e01f · original stream · udp · 1280×720")
	t.Logf("first-frame chromium h264: first frame shown %.0f ms after navigation, %.0f ms after the offer", bs.Timing.FirstFrame, bs.Timing.FirstFrame-bs.Timing.Offer)
	// The page shows the server's stats pushed over the WebSocket: with a
	// real browser's RTCP they carry its REMB bandwidth estimate (and an
	// RTT, which on loopback may round to 0 ms on the page, so it is only
	// logged).
	var server string
	for deadline := time.Now().Add(15 * time.Second); ; {
		server, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#server-stats').innerText`))
		if remb := statLine(server, "estimate (REMB)"); remb != "" && remb != "—" {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the page's server stats never showed a REMB estimate:\n%s", server)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("server stats on the page: %q", server)
	saveScreenshot(ctx, t)
}

// saveScreenshot writes the page to artifacts/chromium-demo.png.
func saveScreenshot(ctx context.Context, t *testing.T) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	if err := os.MkdirAll("artifacts", 0o755); err != nil {
		t.Errorf("artifacts dir: %v", err)
		return
	}
	p := filepath.Join("artifacts", "chromium-demo.png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Errorf("write screenshot: %v", err)
		return
	}
	t.Logf("screenshot saved to e2e/%s (%d bytes)", p, len(png))
}

// statLine returns the value shown after the label line in the page's
// stats list text ("label\nvalue\n…"), or "".
func statLine(text, label string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) == label && i+1 < len(lines) {
			return strings.TrimSpace(lines[i+1])
		}
	}
	return ""
}

// startChromium starts Debian's headless Chromium with a fresh profile and
// the flags WebRTC on loopback needs, and returns its browser context; it is
// stopped when the test ends. extra adds flags.
func startChromium(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing (%v): `go tool task deps` installs it (Debian package chromium)", chromiumPath, err)
	}
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("disable-dev-shm-usage", true),
	}, extra...)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { bcancel(); acancel() })
	// The first Do starts the browser; it must not carry a timeout.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}
