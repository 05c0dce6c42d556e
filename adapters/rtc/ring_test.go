package rtc

import (
	"bytes"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"mediasvc/domain"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testAU builds a synthetic Annex-B access unit: SPS+PPS+IDR for a
// keyframe, one non-IDR slice otherwise, with a body of n non-zero bytes.
func testAU(key bool, n int, fill byte) []byte {
	var b []byte
	if key {
		b = append(b, 0, 0, 0, 1, 0x09, 0xf0) // AUD, dropped by the packetizer
		b = append(b, 0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0x8d, 0x68, 0x05, 0x00, 0x5b, 0xa1)
		b = append(b, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80)
		b = append(b, 0, 0, 1, 0x65)
	} else {
		b = append(b, 0, 0, 0, 1, 0x41)
	}
	for i := 0; i < n; i++ {
		b = append(b, fill|1)
	}
	return b
}

func nalTypes(annexB []byte) []byte {
	var out []byte
	for rest := annexB; ; {
		var nal []byte
		nal, rest = domain.NextNAL(rest)
		if nal == nil {
			return out
		}
		out = append(out, nal[0]&0x1f)
	}
}

// depacketize reassembles ring packets [from, to) with pion's depacketizer.
func depacketize(t *testing.T, r *ring, from, to uint64) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, slotCap)
	for i := from; i < to; i++ {
		m, ok := r.readAt(i, buf)
		if !ok {
			t.Fatalf("packet %d gone", i)
		}
		var d codecs.H264Packet
		b, err := d.Unmarshal(buf[:m.n])
		if err != nil {
			t.Fatalf("depacketize %d: %v", i, err)
		}
		out = append(out, b...)
	}
	return out
}

func TestPacketizeKeyframe(t *testing.T) {
	r := newRing(64)
	p := h264Packetizer{mtu: 1200}
	au := testAU(true, 5000, 0x10)
	n := p.pushAU(r, au, 1234, true)
	if n != 6 { // STAP-A(SPS,PPS) + 5 FU-A
		t.Fatalf("packets = %d, want 6", n)
	}
	buf := make([]byte, slotCap)
	for i := uint64(0); i < uint64(n); i++ {
		m, _ := r.readAt(i, buf)
		if m.keyStart != (i == 0) || m.marker != (i == uint64(n-1)) || m.ts != 1234 || m.n > 1200 {
			t.Errorf("packet %d: %+v", i, m)
		}
		if i == 0 && buf[0]&0x1f != nalSTAPA {
			t.Errorf("first packet type %d, want STAP-A", buf[0]&0x1f)
		}
	}
	if got := nalTypes(depacketize(t, r, 0, uint64(n))); !bytes.Equal(got, []byte{7, 8, 5}) {
		t.Fatalf("nal types = %v, want [7 8 5]", got)
	}
	if !r.hasKey || r.lastKey != 0 {
		t.Fatalf("lastKey = %d/%v", r.lastKey, r.hasKey)
	}
	// A small delta frame is one single-NAL packet.
	if n := p.pushAU(r, testAU(false, 300, 0x20), 5000, false); n != 1 {
		t.Fatalf("delta packets = %d", n)
	}
	if got := nalTypes(depacketize(t, r, 6, 7)); !bytes.Equal(got, []byte{1}) {
		t.Fatalf("delta nal types = %v", got)
	}
}

func TestPacketizeNoAlloc(t *testing.T) {
	r := newRing(256)
	p := h264Packetizer{mtu: 1200}
	key, delta := testAU(true, 30000, 0x10), testAU(false, 8000, 0x20)
	allocs := testing.AllocsPerRun(100, func() {
		r.mu.Lock()
		p.pushAU(r, key, 1, true)
		p.pushAU(r, delta, 2, false)
		r.mu.Unlock()
	})
	if allocs != 0 {
		t.Fatalf("allocs per AU pair = %v, want 0", allocs)
	}
}

// pushGOP writes a keyframe followed by deltas; every AU is one packet when
// size is small.
func pushFrames(r *ring, p *h264Packetizer, key bool, count int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := 0; i < count; i++ {
		p.pushAU(r, testAU(key && i == 0, 100, 0x30), uint32(i*3000), key && i == 0)
	}
}

func TestCursorLateJoinerStartsAtKeyframe(t *testing.T) {
	r := newRing(64)
	p := h264Packetizer{mtu: 1200}
	pushFrames(r, &p, false, 3) // deltas before any keyframe
	var early cursor
	r.start(&early)
	if !early.needKey || !early.gated {
		t.Fatalf("no keyframe in ring: cursor %+v, want needKey and gated", early)
	}
	pushFrames(r, &p, true, 5) // keyframe (one STAP-A) + 4 deltas
	var late cursor
	r.start(&late)
	if late.needKey || late.next != 3 {
		t.Fatalf("late joiner cursor %+v, want next=3 without needKey", late)
	}
	buf := make([]byte, slotCap)
	m, st := r.read(&late, buf)
	if st != readOK || !m.keyStart {
		t.Fatalf("first read %+v %v, want keyframe start", m, st)
	}
	// The early cursor (gated at index 3) also opens at the keyframe.
	m, st = r.read(&early, buf)
	if st != readOK || !m.keyStart || m.idx != 3 {
		t.Fatalf("early viewer first packet %+v %v", m, st)
	}
}

func TestCursorGateDropsUntilKeyframe(t *testing.T) {
	r := newRing(64)
	p := h264Packetizer{mtu: 1200}
	var c cursor
	r.start(&c)
	pushFrames(r, &p, false, 4)
	r.mu.Lock()
	s := r.claim(domain.KindAudio, 9, false) // audio passes the video gate
	s.data = append(s.data, 0xfc)
	r.mu.Unlock()
	buf := make([]byte, slotCap)
	m, st := r.read(&c, buf)
	if st != readOK || m.kind != domain.KindAudio {
		t.Fatalf("read %+v %v, want the audio packet", m, st)
	}
	if _, st := r.read(&c, buf); st != readEmpty {
		t.Fatalf("read %v, want empty (deltas gated)", st)
	}
	pushFrames(r, &p, true, 2)
	if m, st := r.read(&c, buf); st != readOK || !m.keyStart {
		t.Fatalf("read %+v %v, want keyframe start", m, st)
	}
}

func TestCursorSlowViewerSkipsToKeyframe(t *testing.T) {
	r := newRing(16)
	p := h264Packetizer{mtu: 1200}
	pushFrames(r, &p, true, 4) // indices 0..3 (a small keyframe is one STAP-A)
	var slow cursor
	r.start(&slow)
	buf := make([]byte, slotCap)
	if _, st := r.read(&slow, buf); st != readOK { // reads the keyframe start
		t.Fatal(st)
	}
	pushFrames(r, &p, false, 10)
	pushFrames(r, &p, true, 10) // keyframe at 14; head 24 laps index 1..7
	m, st := r.read(&slow, buf)
	if st != readOK || !m.keyStart || m.idx != 14 {
		t.Fatalf("after lap: %+v %v, want keyframe start at 14", m, st)
	}
	if slow.skips != 1 {
		t.Fatalf("skips = %d, want 1", slow.skips)
	}

	// Lapped with no keyframe left in the ring: jump to head, gated, ask for one.
	pushFrames(r, &p, false, 40)
	if _, st := r.read(&slow, buf); st != readEmpty {
		t.Fatalf("read %v, want empty", st)
	}
	if slow.skips != 2 || !slow.needKey || !slow.gated || slow.next != r.head {
		t.Fatalf("cursor %+v head %d", slow, r.head)
	}
}

// discardWriter is a no-network TrackLocalWriter.
type discardWriter struct {
	n    int
	last rtp.Header
}

func (d *discardWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	d.n++
	d.last = *h
	return len(payload), nil
}

func TestSendTrackRewriteAndRetransmit(t *testing.T) {
	r := newRing(16)
	p := h264Packetizer{mtu: 1200}
	pushFrames(r, &p, true, 4)
	w := &discardWriter{}
	tr := newSendTrack(webrtc.RTPCodecTypeVideo, webrtc.MimeTypeH264, videoClock, "s")
	tr.bound.Store(&binding{ssrc: 42, pt: 102, w: w})
	var c cursor
	r.start(&c)
	buf := make([]byte, slotCap)
	var seqs []uint16
	var first uint32
	for i := 0; ; i++ {
		m, st := r.read(&c, buf)
		if st != readOK {
			break
		}
		if err := tr.send(&m, buf[:m.n]); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = w.last.Timestamp
		}
		if w.last.SSRC != 42 || w.last.PayloadType != 102 {
			t.Fatalf("header %+v", w.last)
		}
		if got, want := w.last.Timestamp-first, m.ts; got != want {
			t.Fatalf("timestamp delta %d, want %d", got, want)
		}
		seqs = append(seqs, w.last.SequenceNumber)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("sequence not contiguous: %v", seqs)
		}
	}
	if !tr.retransmit(r, seqs[2]) || w.last.SequenceNumber != seqs[2] {
		t.Fatalf("retransmit of %d failed (last %+v)", seqs[2], w.last)
	}
	if tr.retransmit(r, seqs[len(seqs)-1]+5) {
		t.Fatal("retransmitted a packet never sent")
	}
	pushFrames(r, &p, false, 40) // overwrite the ring
	if tr.retransmit(r, seqs[2]) {
		t.Fatal("retransmitted a packet the ring no longer holds")
	}
}

// TestPeerDrainCountsSkips runs the viewer send loop without a network: a
// viewer that falls behind skips to a keyframe and the skip is counted by
// the peer and the transport.
func TestPeerDrainCountsSkips(t *testing.T) {
	tp, err := New(Config{RingSize: 32}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	f, err := tp.newFanout("dev", domain.StreamInfo{Video: domain.CodecH264})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, w := offlinePeer(tp, f)
	writeGOP := func(n int) {
		for i := 0; i < n; i++ {
			if err := f.WriteFrame(domain.Frame{Kind: domain.KindVideo, Data: testAU(i == 0, 100, 0x40), PTS: time.Duration(i) * 33 * time.Millisecond, Keyframe: i == 0}); err != nil {
				t.Fatal(err)
			}
		}
	}
	writeGOP(10)
	f.ring.start(&p.cur)
	if !p.drain() || w.n != 10 {
		t.Fatalf("sent %d packets, want 10", w.n)
	}
	writeGOP(20)
	writeGOP(20) // laps the viewer
	p.drain()
	if p.skips.Load() != 1 || tp.KeyframeSkips() != 1 || p.Stats().KeyframeSkips != 1 {
		t.Fatalf("skips peer=%d transport=%d", p.skips.Load(), tp.KeyframeSkips())
	}
}

// A late joiner's backlog is paced; live packets after it are not.
func TestPeerPacesCatchUpBacklog(t *testing.T) {
	tp, err := New(Config{RingSize: 256}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	f, err := tp.newFanout("dev", domain.StreamInfo{Video: domain.CodecH264})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, w := offlinePeer(tp, f)
	write := func(first, n int) {
		for i := first; i < first+n; i++ {
			if err := f.WriteFrame(domain.Frame{Kind: domain.KindVideo, Data: testAU(i == 0, 100, 0x40), PTS: time.Duration(i) * 33 * time.Millisecond, Keyframe: i == 0}); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(0, 40) // one small packet per frame: a 40-packet backlog
	f.ring.start(&p.cur)
	if !p.drain() || w.n != 40 {
		t.Fatalf("sent %d packets, want 40", w.n)
	}
	if p.pauses != 40/catchupBurst {
		t.Fatalf("backlog of 40 paused %d times, want %d", p.pauses, 40/catchupBurst)
	}
	write(40, 40) // written after the join: live, never paced
	before := p.pauses
	for range 40 {
		p.drain()
	}
	if w.n != 80 || p.pauses != before {
		t.Fatalf("live packets: sent %d, paused %d more times", w.n, p.pauses-before)
	}
}

// offlinePeer is a Peer with no PeerConnection whose video track writes to a
// discard writer: the per-viewer hot path, testable and benchmarkable.
func offlinePeer(tp *Transport, f *Fanout) (*Peer, *discardWriter) {
	w := &discardWriter{}
	p := &Peer{t: tp, f: f, done: make(chan struct{}), wake: make(chan struct{}, 1), buf: make([]byte, slotCap)}
	p.video = newSendTrack(webrtc.RTPCodecTypeVideo, webrtc.MimeTypeH264, videoClock, "s")
	p.video.bound.Store(&binding{ssrc: 1, pt: 102, w: w})
	return p, w
}

func TestKeyframeRequestsCoalesce(t *testing.T) {
	tp, err := New(Config{KeyframeInterval: time.Hour}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	f, err := tp.newFanout("dev", domain.StreamInfo{Video: domain.CodecH264})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := 0; i < 100; i++ {
		f.requestKeyframe()
	}
	n := 0
	for done := false; !done; {
		select {
		case <-f.KeyframeRequests():
			n++
		default:
			done = true
		}
	}
	if n != 1 {
		t.Fatalf("signals = %d, want 1", n)
	}
}

func TestRTPTime(t *testing.T) {
	if got := rtpTime(time.Second, videoClock); got != 90000 {
		t.Fatal(got)
	}
	if got := rtpTime(20*time.Millisecond, audioClock); got != 960 {
		t.Fatal(got)
	}
	long := 30 * 24 * time.Hour
	if got, want := rtpTime(long, videoClock), uint32(uint64(long/time.Second)*90000); got != want {
		t.Fatalf("got %d want %d", got, want)
	}
}
