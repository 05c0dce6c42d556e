package rtc

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"mediasvc/domain"
	"mediasvc/ports"
)

// testVP8 builds a synthetic VP8 frame of n bytes: a key frame's tag and
// start code, or an inter frame's tag, then filler.
func testVP8(key bool, n int, fill byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = fill + byte(i)
	}
	if key {
		copy(b, []byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02})
	} else {
		b[0] = 0x31
	}
	return b
}

func TestVP8PacketizeRoundTrip(t *testing.T) {
	r := newRing(ringLimits{maxBytes: 1 << 20})
	p := vp8Packetizer{mtu: 1200}
	frames := [][]byte{testVP8(true, 5000, 1), testVP8(false, 700, 7), testVP8(false, 1196, 9)}
	var start uint64
	buf := make([]byte, slotCap)
	for fi, fr := range frames {
		key := vp8Keyframe(fr)
		if key != (fi == 0) {
			t.Fatalf("frame %d: keyframe = %v", fi, key)
		}
		n := p.push(r, fr, uint32(fi*3000), key)
		r.commit()
		var got []byte
		var pid uint16
		for i := start; i < start+uint64(n); i++ {
			m, ok := r.readAt(i, buf)
			if !ok {
				t.Fatalf("packet %d gone", i)
			}
			if m.n > 1200 || m.marker != (i == start+uint64(n)-1) || m.keyStart != (key && i == start) || m.ts != uint32(fi*3000) {
				t.Errorf("frame %d packet %d: %+v", fi, i-start, m)
			}
			var d codecs.VP8Packet
			b, err := d.Unmarshal(buf[:m.n])
			if err != nil {
				t.Fatalf("depacketize: %v", err)
			}
			if (d.S == 1) != (i == start) || d.PID != 0 || d.I != 1 {
				t.Errorf("frame %d packet %d: descriptor S=%d PID=%d I=%d", fi, i-start, d.S, d.PID, d.I)
			}
			if i == start {
				pid = d.PictureID
			} else if d.PictureID != pid {
				t.Errorf("picture id changed within a frame: %d then %d", pid, d.PictureID)
			}
			got = append(got, b...)
		}
		if pid != uint16(fi) {
			t.Errorf("frame %d picture id %d", fi, pid)
		}
		if !bytes.Equal(got, fr) {
			t.Fatalf("frame %d: round trip differs (%d bytes, want %d)", fi, len(got), len(fr))
		}
		start += uint64(n)
	}
	if want := 5 + 1 + 1; start != uint64(want) { // 5000/1196 → 5, 700 → 1, 1196 → 1
		t.Fatalf("packets = %d, want %d", start, want)
	}
}

func TestVP8PictureIDWraps(t *testing.T) {
	r := newRing(ringLimits{maxBytes: 1 << 20})
	p := vp8Packetizer{mtu: 1200, pictureID: 0x7fff}
	buf := make([]byte, slotCap)
	for want := range []uint16{0x7fff, 0} {
		p.push(r, testVP8(false, 10, 1), 0, false)
		r.commit()
		m, _ := r.readAt(r.head-1, buf)
		var d codecs.VP8Packet
		if _, err := d.Unmarshal(buf[:m.n]); err != nil {
			t.Fatal(err)
		}
		if exp := []uint16{0x7fff, 0}[want]; d.PictureID != exp {
			t.Fatalf("picture id %d, want %d", d.PictureID, exp)
		}
	}
}

func TestVP8PacketizeNoAlloc(t *testing.T) {
	r := testRing(256)
	p := vp8Packetizer{mtu: 1200}
	key, delta := testVP8(true, 30000, 1), testVP8(false, 8000, 2)
	allocs := testing.AllocsPerRun(100, func() {
		r.mu.Lock()
		p.push(r, key, 1, true)
		r.commit()
		p.push(r, delta, 2, false)
		r.commit()
		r.mu.Unlock()
	})
	if allocs != 0 {
		t.Fatalf("allocs per frame pair = %v, want 0", allocs)
	}
}

// TestVP8FanoutToVP8Viewer: a VP8 stream reaches a viewer that offers VP8
// only, keyframe first, with audio.
func TestVP8FanoutToVP8Viewer(t *testing.T) {
	tp, err := New(Config{}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.Close() })
	f, err := tp.newFanout("dev1", domain.StreamInfo{Video: domain.CodecVP8, Audio: domain.CodecOpus})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			pts := time.Duration(i) * 10 * time.Millisecond
			_ = f.WriteFrame(domain.Frame{Kind: domain.KindVideo, Data: testVP8(i%50 == 0, 3000, byte(i)), PTS: pts})
			_ = f.WriteFrame(domain.Frame{Kind: domain.KindAudio, Data: []byte{0xfc, 0xff, 0xfe, byte(i)}, PTS: pts})
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	c := newTestClientWith(t, clientVP8)
	p := connect(t, tp, f, c, ports.PeerOptions{Session: "s1"})
	if codec, _ := p.Codec(); codec != domain.CodecVP8 {
		t.Fatalf("peer sends %q", codec)
	}
	first := recv(t, c.video)
	var d codecs.VP8Packet
	b, err := d.Unmarshal(first.Payload)
	if err != nil || d.S != 1 || !vp8Keyframe(b) || first.PayloadType != 96 {
		t.Fatalf("first packet: err %v S=%d key=%v pt=%d", err, d.S, vp8Keyframe(b), first.PayloadType)
	}
	countAUs(t, c, 30)
	recv(t, c.audio)
}

// TestAnswerDeclaresStreamProfile: a High 4.0 stream is answered as High
// 4.0 to an offer of High 3.1 with level asymmetry, and a new SPS of
// another profile changes what the next viewer is answered.
func TestAnswerDeclaresStreamProfile(t *testing.T) {
	tp, err := New(Config{}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.Close() })
	f, err := tp.newFanout("dev1", domain.StreamInfo{Video: domain.CodecH264, ProfileLevelID: "640028"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	highAndCB := []webrtc.RTPCodecParameters{
		{PayloadType: 100, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f"}},
		clientH264[0],
	}
	answer := func() string {
		c := newTestClientWith(t, highAndCB)
		p, err := tp.newPeer(context.Background(), f, ports.PeerOptions{Session: "s", Trickle: true})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		o, err := c.pc.CreateOffer(nil)
		if err != nil {
			t.Fatal(err)
		}
		a, err := p.Answer(context.Background(), o.SDP)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.pc.SetLocalDescription(o); err != nil {
			t.Fatal(err)
		}
		if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a}); err != nil {
			t.Fatalf("the client refuses the answer: %v", err)
		}
		return a
	}
	if a := answer(); !strings.Contains(a, "a=fmtp:100 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640028") || strings.Contains(a, "42e01f") {
		t.Fatalf("answer does not declare High 4.0 on the High entry alone:\n%s", a)
	}
	// The capture restarts with a Constrained Baseline SPS.
	cbKey := testAU(true, 100, 0x10) // SPS 42e01f
	if err := f.WriteFrame(domain.Frame{Kind: domain.KindVideo, Data: cbKey, Keyframe: true}); err != nil {
		t.Fatal(err)
	}
	if got := f.ProfileLevelID(); got != "42e01f" {
		t.Fatalf("profile after new SPS = %q", got)
	}
	if a := answer(); !strings.Contains(a, "profile-level-id=42e01f") || strings.Contains(a, "640028") {
		t.Fatalf("answer after the SPS change:\n%s", a)
	}
}
