package rtc

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"mediasvc/domain"
	"mediasvc/ports"
)

// wallClient is an in-process pion browser of a wall: it answers the
// server's offers and counts the packets of each mid.
type wallClient struct {
	pc *webrtc.PeerConnection
	mu sync.Mutex
	n  map[string]int // mid → packets
}

func newWallClient(t *testing.T) *wallClient {
	t.Helper()
	m := &webrtc.MediaEngine{}
	for _, c := range append(append([]webrtc.RTPCodecParameters(nil), clientH264...), clientVP8...) {
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			t.Fatal(err)
		}
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	c := &wallClient{pc: pc, n: map[string]int{}}
	pc.OnTrack(func(tr *webrtc.TrackRemote, rx *webrtc.RTPReceiver) {
		var mid string
		for _, x := range pc.GetTransceivers() {
			if x.Receiver() == rx {
				mid = x.Mid()
			}
		}
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			c.mu.Lock()
			c.n[mid]++
			c.mu.Unlock()
		}
	})
	t.Cleanup(func() { _ = pc.Close() })
	return c
}

func (c *wallClient) count(mid string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[mid]
}

// answer answers the wall's next offer with all candidates.
func (c *wallClient) answer(t *testing.T, w ports.WallPeer) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offer, mids, err := w.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		t.Fatal(err)
	}
	ans, err := c.pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	done := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(ans); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := w.Answer(ctx, c.pc.LocalDescription().SDP); err != nil {
		t.Fatal(err)
	}
	return mids
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// One PeerConnection carries two tiles of two streams; a third added
// later arrives after a renegotiation; a paused tile sends nothing until
// resumed, then starts at a keyframe; a removed tile stops.
func TestWallTilesPauseAndRenegotiate(t *testing.T) {
	tp, f1 := newTestTransport(t, Config{})
	f2, err := tp.newFanout("dev2", domain.StreamInfo{Video: domain.CodecH264, ProfileLevelID: "42e01f"})
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	f3, err := tp.newFanout("dev3", domain.StreamInfo{Video: domain.CodecVP8})
	if err != nil {
		t.Fatal(err)
	}
	defer f3.Close()
	startPump(t, f1, 10, true)
	startPump(t, f2, 10, true)
	w, err := tp.NewWall(context.Background(), ports.PeerOptions{Session: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for k, f := range map[string]*Fanout{"dev1": f1, "dev2": f2} {
		if err := w.AddTile(k, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.AddTile("dev1", f1); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("a second dev1 tile: %v", err)
	}
	if err := w.PauseTile("nope", true); !errors.Is(err, domain.ErrInvalidRequest) {
		t.Fatalf("pausing an unknown tile: %v", err)
	}
	if err := w.Answer(context.Background(), "v=0"); !errors.Is(err, domain.ErrInvalidOffer) {
		t.Fatalf("an answer before any offer: %v", err)
	}
	c := newWallClient(t)
	mids := c.answer(t, w)
	if len(mids) != 2 || mids["dev1"] == mids["dev2"] {
		t.Fatalf("mids %v", mids)
	}
	waitFor(t, "both tiles' packets", func() bool { return c.count(mids["dev1"]) > 20 && c.count(mids["dev2"]) > 20 })

	// Paused: nothing more is sent for dev2, dev1 goes on.
	if err := w.PauseTile("dev2", true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	st, _ := w.TileStats("dev2")
	before, other := c.count(mids["dev2"]), c.count(mids["dev1"])
	time.Sleep(500 * time.Millisecond)
	if st2, _ := w.TileStats("dev2"); st2.PacketsSent != st.PacketsSent || c.count(mids["dev2"]) != before {
		t.Fatalf("paused tile sent %d → %d packets", st.PacketsSent, st2.PacketsSent)
	}
	waitFor(t, "dev1 to go on", func() bool { return c.count(mids["dev1"]) > other+10 })
	if err := w.PauseTile("dev2", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dev2 to resume", func() bool { return c.count(mids["dev2"]) > before+10 })

	// A VP8 tile joins through a renegotiation.
	startPump(t, f3, 10, true)
	if err := w.AddTile("dev3", f3); err != nil {
		t.Fatal(err)
	}
	mids = c.answer(t, w)
	if len(mids) != 3 {
		t.Fatalf("mids %v", mids)
	}
	waitFor(t, "the new tile's packets", func() bool { return c.count(mids["dev3"]) > 10 })

	// Removed: dev1's fanout loses its viewer.
	w.RemoveTile("dev1")
	if f1.Viewers() != 0 {
		t.Fatalf("dev1 has %d viewers after its tile went", f1.Viewers())
	}
	_ = c.answer(t, w)
	if _, ok := w.TileStats("dev1"); ok {
		t.Fatal("stats of a removed tile")
	}
}
