//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// TestChromiumRecordButton: on the demo's page a controller clicks
// Record, then Stop recording; the recording shows in the page's list,
// and clicking it downloads an MP4 the real ffprobe reads as H.264
// 1280x720 with Opus.
func TestChromiumRecordButton(t *testing.T) {
	in := startInstance(t, recordingsConfig(t.TempDir()))
	bctx := startChromium(t)
	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	dl := t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dl}); err != nil {
		t.Fatalf("downloads: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(in.Base+"/?device=demo")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	click := func(sel string) {
		t.Helper()
		// A click as the page's own: chromedp.Click waits on this
		// headless build for an input ack that never comes.
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.querySelector('`+sel+`').click(), true)`)); err != nil {
			t.Fatalf("click %s: %v", sel, err)
		}
	}
	until := func(what, js string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; {
			if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js)); err == nil && ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	until("the page to play", `(() => { const v = document.querySelector('#video'); return v.videoWidth > 0 && v.currentTime > 0.3; })()`)
	until("the Record button", `(() => { const b = document.querySelector('#rec'); return !b.hidden && b.textContent === 'Record'; })()`)
	click("#rec")
	until("recording", `document.querySelector('#rec').textContent === 'Stop recording'`)
	time.Sleep(2 * time.Second)
	click("#rec")
	until("the recording listed", `!document.querySelector('#recs').hidden && !!document.querySelector('#rec-list a[data-file]')`)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.querySelector('#recs').open = true, true)`)); err != nil {
		t.Fatal(err)
	}
	click("#rec-list a[data-file]")
	var path string
	for deadline := time.Now().Add(20 * time.Second); path == ""; {
		ms, _ := filepath.Glob(filepath.Join(dl, "*.mp4"))
		if len(ms) == 1 {
			path = ms[0]
		}
		if time.Now().After(deadline) {
			es, _ := os.ReadDir(dl)
			t.Fatalf("no MP4 downloaded: %v", es)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.HasPrefix(filepath.Base(path), "demo-") {
		t.Errorf("downloaded as %s", filepath.Base(path))
	}
	p := probeFile(t, path)
	if p.video != "h264" || p.width != 1280 || p.height != 720 || p.audio != "opus" || p.duration < 1 {
		t.Fatalf("ffprobe: %+v", p)
	}
}
