//go:build e2e

package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// selectedPairJS reads the viewer page's selected ICE candidate pair: the
// protocol of both candidates and the frames decoded so far.
const selectedPairJS = `(async () => {
  const m = window.mediasvc;
  if (!m || !m.pc) return {ready: false};
  const r = await m.pc.getStats();
  const byId = {};
  r.forEach(s => { byId[s.id] = s; });
  const out = {ready: true, framesDecoded: 0, local: '', remote: '', remoteType: ''};
  r.forEach(s => {
    if (s.type === 'inbound-rtp' && (s.kind || s.mediaType) === 'video') out.framesDecoded = s.framesDecoded || 0;
    if (s.type === 'transport' && s.selectedCandidatePairId) {
      const p = byId[s.selectedCandidatePairId];
      if (p) {
        out.local = (byId[p.localCandidateId] || {}).protocol || '';
        out.remote = (byId[p.remoteCandidateId] || {}).protocol || '';
        out.remoteType = (byId[p.remoteCandidateId] || {}).tcpType || '';
      }
    }
  });
  return out;
})()`

type pairStats struct {
	Ready         bool   `json:"ready"`
	FramesDecoded int    `json:"framesDecoded"`
	Local         string `json:"local"`
	Remote        string `json:"remote"`
	RemoteType    string `json:"remoteType"`
}

// TestChromiumPlaysOverTCP: with webrtc.udp false the server gathers no UDP
// candidate, only passive ICE-TCP ones on webrtc.tcp_port, and headless
// Chromium plays the demo over TCP: the selected pair says tcp.
func TestChromiumPlaysOverTCP(t *testing.T) {
	cfg := defaultConfig()
	cfg.set("webrtc", "udp", false)
	cfg.set("webrtc", "tcp_port", freePort(t))
	in := startInstance(t, cfg)
	bctx := startChromium(t)
	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(in.Base+"/?device=demo")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	deadline := time.Now().Add(40 * time.Second)
	var last pairStats
	for {
		st, err := chromedp.Run(ctx, chromedp.Evaluate[pairStats](selectedPairJS, chromedp.EvalAwaitPromise))
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Logf("getStats: %v", err)
		}
		if err == nil {
			last = st
			if st.FramesDecoded > 60 && st.Local != "" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("within 40 s the page reached only %+v; want framesDecoded > 60 over a selected pair", last)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("chromium over TCP: %+v", last)
	if last.Local != "tcp" || last.Remote != "tcp" || last.RemoteType != "passive" {
		t.Fatalf("selected pair %s → %s (%s), want tcp → tcp passive", last.Local, last.Remote, last.RemoteType)
	}
}
