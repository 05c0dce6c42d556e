package rtc

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"mediasvc/domain"
	"mediasvc/ports"
)

func newMeteredTransport(t *testing.T, cfg Config) (*Transport, *Fanout, *sdkmetric.ManualReader) {
	t.Helper()
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	cfg.Meter = mp.Meter("mediasvc/rtc")
	tp, f := newTestTransport(t, cfg)
	return tp, f, rd
}

// latestSeq drains what the client received so far and returns the
// highest video sequence number seen (last if none arrived).
func latestSeq(c *testClient, last uint16) uint16 {
	for {
		select {
		case pk := <-c.video:
			if int16(pk.SequenceNumber-last) > 0 {
				last = pk.SequenceNumber
			}
		default:
			return last
		}
	}
}

// waitStats polls p's stats until ok or 10 s, and returns the last.
func waitStats(t *testing.T, p *Peer, ok func(domain.QualityStats) bool) domain.QualityStats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := p.Stats()
		if ok(s) || time.Now().After(deadline) {
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A NACK flood — 100 NACKs a second, each naming the last 1,000 packets —
// gets no more retransmissions than the viewer's budget (the default,
// DefaultRetransmitRate a second with a burst of as many); the rest is
// dropped and counted, in the viewer's stats and in the metrics.
func TestNACKFloodIsBudgeted(t *testing.T) {
	tp, f, rd := newMeteredTransport(t, Config{ViewerBudget: ViewerBudget{RTCPRate: 100_000}})
	startPump(t, f, 1000, false)
	c := newTestClient(t)
	p := connect(t, tp, f, c, ports.PeerOptions{Session: "s1"})
	_, first := firstAU(t, c)
	countAUs(t, c, 50) // half a second of packets in the ring
	if v := metricValue(t, rd, "media_retransmits_dropped"); v != 0 {
		t.Fatalf("media_retransmits_dropped before the flood = %d", v)
	}
	seq := first.SequenceNumber
	const perNACK, rate = 1000, DefaultRetransmitRate
	start := time.Now()
	nacks := 0
	for time.Since(start) < 1500*time.Millisecond {
		seq = latestSeq(c, seq)
		seqs := make([]uint16, perNACK)
		for i := range seqs {
			seqs[i] = seq - perNACK + 1 + uint16(i)
		}
		if err := c.pc.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: c.ssrc.Load(), Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)}}); err != nil {
			t.Fatal(err)
		}
		nacks++
		time.Sleep(10 * time.Millisecond)
	}
	s := waitStats(t, p, func(s domain.QualityStats) bool { return s.NACKs == uint64(nacks) })
	elapsed := time.Since(start)
	if s.NACKs != uint64(nacks) {
		t.Fatalf("%d of %d NACKs read", s.NACKs, nacks)
	}
	// Tokens accrue with time: never more than the burst plus the rate
	// over the whole time the flood could have been served.
	if limit := float64(rate) + float64(rate)*elapsed.Seconds(); float64(s.Retransmits) > limit {
		t.Fatalf("%d retransmissions in %s, budget allows at most %.0f", s.Retransmits, elapsed, limit)
	}
	if s.Retransmits == 0 || s.RetransmitsDropped == 0 {
		t.Fatalf("retransmits %d dropped %d: want both", s.Retransmits, s.RetransmitsDropped)
	}
	if got := metricValue(t, rd, "media_retransmits_dropped"); got != int64(s.RetransmitsDropped) {
		t.Fatalf("media_retransmits_dropped = %d, stats %d", got, s.RetransmitsDropped)
	}
	if got := metricValue(t, rd, "media_retransmits"); got != int64(s.Retransmits) {
		t.Fatalf("media_retransmits = %d, stats %d", got, s.Retransmits)
	}
	t.Logf("NACK flood: %d NACKs in %s (%.0f/s, %d packets named each): %d retransmitted (%.0f/s, budget %d/s + burst %d), %d dropped",
		nacks, elapsed.Round(time.Millisecond), float64(nacks)/elapsed.Seconds(), perNACK, s.Retransmits,
		float64(s.Retransmits)/elapsed.Seconds(), rate, rate, s.RetransmitsDropped)
}

// A viewer's PLI/FIR reach the source at most once per its keyframe
// interval; the rest are dropped and counted as throttled. Another viewer
// is not limited by the first one's budget.
func TestPLIFloodOneKeyframePerViewerInterval(t *testing.T) {
	tp, f, rd := newMeteredTransport(t, Config{KeyframeInterval: time.Nanosecond, ViewerBudget: ViewerBudget{KeyframeInterval: time.Hour}})
	startPump(t, f, 1000, false)
	c1, c2 := newTestClient(t), newTestClient(t)
	p1 := connect(t, tp, f, c1, ports.PeerOptions{Session: "s1"})
	p2 := connect(t, tp, f, c2, ports.PeerOptions{Session: "s2"})
	firstAU(t, c1)
	firstAU(t, c2)
	viewer := attribute.String("from", "viewer")
	throttled := attribute.String("result", "throttled")
	if v := metricValue(t, rd, "media_keyframe_requests", viewer, throttled); v != 0 {
		t.Fatalf("throttled before the flood = %d", v)
	}
	before := metricValue(t, rd, "media_keyframe_requests", viewer)
	ssrc := c1.ssrc.Load()
	for range 30 {
		if err := c1.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
			t.Fatal(err)
		}
	}
	_ = c1.pc.WriteRTCP([]rtcp.Packet{&rtcp.FullIntraRequest{MediaSSRC: ssrc, FIR: []rtcp.FIREntry{{SSRC: ssrc}}}})
	_ = c2.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: c2.ssrc.Load()}})
	s1 := waitStats(t, p1, func(s domain.QualityStats) bool { return s.PLIs == 31 })
	s2 := waitStats(t, p2, func(s domain.QualityStats) bool { return s.PLIs == 1 })
	if s1.PLIs != 31 || s1.PLIsDropped != 30 || s2.PLIs != 1 || s2.PLIsDropped != 0 {
		t.Fatalf("viewer 1 plis %d dropped %d; viewer 2 plis %d dropped %d; want 31/30 and 1/0", s1.PLIs, s1.PLIsDropped, s2.PLIs, s2.PLIsDropped)
	}
	if v := metricValue(t, rd, "media_keyframe_requests", viewer, throttled); v != 30 {
		t.Fatalf("throttled = %d, want 30", v)
	}
	// One of viewer 1's, one of viewer 2's went on (forwarded or coalesced).
	if v := metricValue(t, rd, "media_keyframe_requests", viewer) - before - 30; v != 2 {
		t.Fatalf("viewer keyframe requests passed on = %d, want 2", v)
	}
}

// RTCP beyond the viewer's packets-per-second budget is dropped unread
// and counted; once the flood stops the viewer's feedback works again.
func TestRTCPFloodIsBudgeted(t *testing.T) {
	const rate = 50
	tp, f, rd := newMeteredTransport(t, Config{ViewerBudget: ViewerBudget{RTCPRate: rate, KeyframeInterval: time.Hour}})
	startPump(t, f, 1000, false)
	c := newTestClient(t)
	p := connect(t, tp, f, c, ports.PeerOptions{Session: "s1"})
	_, first := firstAU(t, c)
	countAUs(t, c, 5)
	rateAttr := attribute.String("reason", "rate")
	if v := metricValue(t, rd, "media_rtcp_dropped", rateAttr); v != 0 {
		t.Fatalf("dropped before the flood = %d", v)
	}
	const sent = 400
	ssrc := c.ssrc.Load()
	start := time.Now()
	for range sent {
		if err := c.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Microsecond)
	}
	s := waitStats(t, p, func(s domain.QualityStats) bool { return s.PLIs+s.RTCPDropped >= sent })
	elapsed := time.Since(start)
	if s.PLIs+s.RTCPDropped != sent {
		t.Fatalf("read %d + dropped %d of %d RTCP packets", s.PLIs, s.RTCPDropped, sent)
	}
	if limit := rate + rate*elapsed.Seconds(); float64(s.PLIs) > limit {
		t.Fatalf("%d RTCP packets read in %s, budget allows %.0f", s.PLIs, elapsed, limit)
	}
	if got := metricValue(t, rd, "media_rtcp_dropped", rateAttr); got != int64(s.RTCPDropped) {
		t.Fatalf("media_rtcp_dropped{reason=rate} = %d, stats %d", got, s.RTCPDropped)
	}
	t.Logf("RTCP flood: %d packets in %s (%.0f/s): %d read (budget %d/s + burst %d), %d dropped",
		sent, elapsed.Round(time.Millisecond), sent/elapsed.Seconds(), s.PLIs, rate, rate, s.RTCPDropped)
	// The bucket refills: a NACK 100 ms later is answered.
	time.Sleep(100 * time.Millisecond)
	want := first.SequenceNumber + 1
	if err := c.pc.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: ssrc, Nacks: []rtcp.NackPair{{PacketID: want}}}}); err != nil {
		t.Fatal(err)
	}
	if s := waitStats(t, p, func(s domain.QualityStats) bool { return s.Retransmits == 1 }); s.Retransmits != 1 {
		t.Fatalf("after the flood: retransmits %d, want 1", s.Retransmits)
	}
}

// RTCP that does not parse — a NACK without its FCI, a transport-wide CC
// report with garbage, either inside a compound with good packets — is
// dropped and counted, the good packets of the compound are served, and
// the viewer's feedback keeps working (a malformed packet once ended the
// sender's RTCP reader). A compound whose framing is broken is dropped
// whole by pion's SRTCP layer and changes nothing.
func TestMalformedRTCPIsDroppedAndFeedbackGoesOn(t *testing.T) {
	tp, f, rd := newMeteredTransport(t, Config{})
	startPump(t, f, 1000, false)
	c := newTestClient(t)
	p := connect(t, tp, f, c, ports.PeerOptions{Session: "s1"})
	_, first := firstAU(t, c)
	countAUs(t, c, 5)
	ssrc := c.ssrc.Load()
	be := func(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
	emptyNACK := rtcp.RawPacket(append(append([]byte{0x81, 205, 0, 2}, be(1)...), be(ssrc)...))
	badTWCC := rtcp.RawPacket(append(append(append([]byte{0x8f, 205, 0, 4}, be(1)...), be(ssrc)...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
	badLength := rtcp.RawPacket(append(append([]byte{0x81, 206, 0, 9}, be(1)...), be(ssrc)...)) // says 40 bytes, has 12
	for _, pkts := range [][]rtcp.Packet{
		{&emptyNACK},
		{&badTWCC},
		{&rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: ssrc, TotalLost: 3}}}, &emptyNACK, &rtcp.PictureLossIndication{MediaSSRC: ssrc}},
		{&rtcp.PictureLossIndication{MediaSSRC: ssrc}, &badLength},
	} {
		if err := c.pc.WriteRTCP(pkts); err != nil {
			t.Fatal(err)
		}
	}
	want := first.SequenceNumber + 1
	if err := c.pc.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: ssrc, Nacks: []rtcp.NackPair{{PacketID: want}}}}); err != nil {
		t.Fatal(err)
	}
	s := waitStats(t, p, func(s domain.QualityStats) bool { return s.Retransmits == 1 && s.RTCPDropped == 3 })
	if s.Retransmits != 1 || s.NACKs != 1 || s.RTCPDropped != 3 || s.PLIs != 1 || s.PacketsLost != 3 {
		t.Fatalf("stats retransmits %d nacks %d rtcp_dropped %d plis %d lost %d; want 1 1 3 1 3",
			s.Retransmits, s.NACKs, s.RTCPDropped, s.PLIs, s.PacketsLost)
	}
	if got := metricValue(t, rd, "media_rtcp_dropped", attribute.String("reason", "malformed")); got != 3 {
		t.Fatalf("media_rtcp_dropped{reason=malformed} = %d, want 3", got)
	}
}

// RTCP addressed to SSRCs the viewer's peer does not send is discarded
// and counted without a buffer per SSRC; a viewer that names
// maxUnknownSSRCs of them has its connection failed.
func TestRTCPForUnknownSSRCs(t *testing.T) {
	tp, f, rd := newMeteredTransport(t, Config{})
	startPump(t, f, 1000, false)
	c := newTestClient(t)
	var failed atomic.Bool
	p := connect(t, tp, f, c, ports.PeerOptions{Session: "s1", OnState: func(s ports.PeerState) {
		if s == ports.PeerFailed {
			failed.Store(true)
		}
	}})
	_, first := firstAU(t, c)
	countAUs(t, c, 5)
	ssrc := c.ssrc.Load()
	stranger := ssrc ^ 0x5a5a5a5a
	_ = c.pc.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: stranger, Nacks: []rtcp.NackPair{{PacketID: first.SequenceNumber + 1}}}})
	_ = c.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: stranger}})
	// A browser's own source description is routine: not counted.
	_ = c.pc.WriteRTCP([]rtcp.Packet{&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{
		Source: stranger, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "viewer"}}}}}})
	_ = c.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}) // ours, after them
	s := waitStats(t, p, func(s domain.QualityStats) bool { return s.PLIs == 1 && s.RTCPDropped == 2 })
	if s.PLIs != 1 || s.NACKs != 0 || s.Retransmits != 0 || s.RTCPDropped != 2 {
		t.Fatalf("stats plis %d nacks %d retransmits %d rtcp_dropped %d; want 1 0 0 2", s.PLIs, s.NACKs, s.Retransmits, s.RTCPDropped)
	}
	unknown := attribute.String("reason", "unknown_ssrc")
	if got := metricValue(t, rd, "media_rtcp_dropped", unknown); got != 2 {
		t.Fatalf("media_rtcp_dropped{reason=unknown_ssrc} = %d, want 2", got)
	}
	if failed.Load() {
		t.Fatal("failed after one unknown SSRC")
	}
	// Fresh SSRCs up to the limit: the connection is failed.
	for i := 1; i < maxUnknownSSRCs; i++ {
		_ = c.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: stranger + uint32(i)}})
		time.Sleep(time.Millisecond)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !failed.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !failed.Load() {
		t.Fatalf("not failed after %d unknown SSRCs (%d seen)", maxUnknownSSRCs, p.unknownSSRCs.Load())
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}
