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

// testRing holds about packets small (100-byte) packets: no time limit,
// a byte cap that lets the oldest go past that count.
func testRing(packets int) *ring {
	return newRing(ringLimits{maxBytes: packets * (100 + slotCharge)})
}

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
	r := testRing(64)
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
	r := testRing(256)
	p := h264Packetizer{mtu: 1200}
	key, delta := testAU(true, 30000, 0x10), testAU(false, 8000, 0x20)
	allocs := testing.AllocsPerRun(100, func() {
		r.mu.Lock()
		p.pushAU(r, key, 1, true)
		r.commit()
		p.pushAU(r, delta, 2, false)
		r.commit()
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
		r.commit()
	}
}

func TestCursorLateJoinerStartsAtKeyframe(t *testing.T) {
	r := testRing(64)
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
	r := testRing(64)
	p := h264Packetizer{mtu: 1200}
	var c cursor
	r.start(&c)
	pushFrames(r, &p, false, 4)
	r.mu.Lock()
	s := r.claim(domain.KindAudio, 9, false) // audio passes the video gate
	s.data = append(s.data, 0xfc)
	r.commit()
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
	r := testRing(16)
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
	r := testRing(16)
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
	budget := newViewerBudget(ViewerBudget{RetransmitRate: 1000, RetransmitBytes: 1 << 20, RTCPRate: 1, KeyframeInterval: time.Second})
	now := time.Now()
	if tr.retransmit(r, seqs[2], budget, now) != rtxSent || w.last.SequenceNumber != seqs[2] {
		t.Fatalf("retransmit of %d failed (last %+v)", seqs[2], w.last)
	}
	if tr.retransmit(r, seqs[len(seqs)-1]+5, budget, now) != rtxMissing {
		t.Fatal("retransmitted a packet never sent")
	}
	pushFrames(r, &p, false, 40) // overwrite the ring
	if tr.retransmit(r, seqs[2], budget, now) != rtxMissing {
		t.Fatal("retransmitted a packet the ring no longer holds")
	}
}

// TestPeerDrainCountsSkips runs the viewer send loop without a network: a
// viewer that falls behind skips to a keyframe and the skip is counted by
// the peer and the transport.
func TestPeerDrainCountsSkips(t *testing.T) {
	tp, err := New(Config{RingMaxBytes: 32 * (100 + slotCharge)}, quietLogger())
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
	tp, err := New(Config{}, quietLogger())
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

// pushAt writes one access unit of n bytes stamped with wall clock at.
func pushAt(r *ring, p *h264Packetizer, at time.Time, key bool, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.setNow(at)
	p.pushAU(r, testAU(key, n, 0x50), uint32(at.UnixMilli()*90), key)
	r.commit()
}

// A 2 Mbit/s, 30 fps stream with a 10 s GOP: the ring keeps the current
// GOP and the history, lets the rest go, and its memory follows the bytes
// held (about 2.5 MB before a keyframe), not a slot count.
func TestRingKeepsGOPAndHistory(t *testing.T) {
	r := newRing(ringLimits{history: 2 * time.Second, maxBytes: DefaultRingMaxBytes})
	p := h264Packetizer{mtu: 1200}
	t0 := time.Unix(1000, 0)
	const fps, frameBytes = 30, 2_000_000 / 8 / 30
	frame := time.Second / fps
	var keyAt time.Time
	peak := 0
	for i := 0; i < 25*fps; i++ { // 25 s: keyframes at 0, 10 and 20 s
		at := t0.Add(time.Duration(i) * frame)
		key := i%(10*fps) == 0
		if key {
			keyAt = at
		}
		pushAt(r, &p, at, key, frameBytes)
		r.mu.RLock()
		peak = max(peak, r.memory())
		oldest := time.Unix(0, r.slots[r.tail&r.mask].at)
		keyValid := r.keyValidLocked()
		r.mu.RUnlock()
		if !keyValid {
			t.Fatalf("frame %d: the current GOP's keyframe is gone", i)
		}
		// The oldest packet held is the GOP's start, or the first within
		// the history when that reaches further back.
		want := keyAt
		if h := at.Add(-2 * time.Second); h.Before(keyAt) {
			want = h
			if h.Before(t0) {
				want = t0
			}
		}
		if d := oldest.Sub(want); d < -frame || d > frame {
			t.Fatalf("frame %d at %s: oldest packet %s, want about %s", i, at.Sub(t0), oldest.Sub(t0), want.Sub(t0))
		}
	}
	t.Logf("peak ring memory %d KiB for a 10 s GOP at 2 Mbit/s", peak>>10)
	if gop := 10 * 2_000_000 / 8; peak > gop*5/4+(maxSpare+1)*chunkSize+64<<10 {
		t.Errorf("peak memory %d bytes for a %d-byte GOP", peak, gop)
	}
}

// Past the byte cap the oldest packets go even from the current GOP; a
// joiner then waits for a keyframe. Memory goes back when the stream
// shrinks.
func TestRingByteCapAndGivingBack(t *testing.T) {
	r := newRing(ringLimits{history: time.Second, maxBytes: 512 << 10})
	p := h264Packetizer{mtu: 1200}
	t0 := time.Unix(1000, 0)
	for i := range 100 {
		pushAt(r, &p, t0.Add(time.Duration(i)*time.Millisecond), i == 0, 20_000)
	}
	r.mu.RLock()
	mem, bytesHeld := r.memory(), r.bytes
	r.mu.RUnlock()
	if bytesHeld > 512<<10 || mem > 512<<10+(maxSpare+1)*chunkSize+64<<10 {
		t.Fatalf("held %d bytes in %d of memory past a 512 KiB cap", bytesHeld, mem)
	}
	var c cursor
	r.start(&c)
	if !c.needKey {
		t.Fatal("a joiner found a keyframe the cap had let go")
	}
	// A small stream afterwards: the big frames leave with the history.
	for i := range 200 {
		pushAt(r, &p, t0.Add(2*time.Second+time.Duration(i)*10*time.Millisecond), i == 0, 200)
	}
	r.mu.RLock()
	after := r.memory()
	r.mu.RUnlock()
	if after >= mem/2 {
		t.Errorf("memory %d after the stream shrank, was %d", after, mem)
	}
}
