package rtc

import (
	"context"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// sentTotals are what every peer of a Transport has sent, folded in by each
// peer once a second and when it closes (never per packet), read at scrape
// time by observable counters.
type sentTotals struct {
	videoFrames, videoPackets, videoBytes, audioPackets, audioBytes atomic.Uint64
}

// sentMark is what a peer has already folded into the Transport's totals.
type sentMark struct {
	videoFrames, videoPackets, videoBytes, audioPackets, audioBytes uint64
}

// instruments are the transport's synchronous instruments, recorded at
// RTCP rate (per feedback packet), never per media packet.
type instruments struct {
	nacks, plis, retransmits, keyframeReqs metric.Int64Counter
	// Viewer budgets (budget.go): RTCP dropped by reason, NACKed packets
	// not retransmitted.
	rtcpDropped, retransmitsDropped metric.Int64Counter
	// A video frame's egress (sendpool.go), recorded once per frame: its
	// time from ingest to its last lane's end, and that time over the
	// packets it sent to all viewers.
	egress, egressPerSend metric.Float64Histogram
}

// frameEgress records one video frame's egress: d from ingest to the end
// of its last lane, sends packets in all (packets × viewers).
func (in *instruments) frameEgress(d time.Duration, sends int) {
	ctx := context.Background()
	in.egress.Record(ctx, d.Seconds())
	in.egressPerSend.Record(ctx, d.Seconds()/float64(sends))
}

// Precomputed attributes of the budget counters.
var (
	rtcpDropRate        = metric.WithAttributes(attribute.String("reason", "rate"))
	rtcpDropMalformed   = metric.WithAttributes(attribute.String("reason", "malformed"))
	rtcpDropUnknownSSRC = metric.WithAttributes(attribute.String("reason", "unknown_ssrc"))
	keyframeThrottled   = metric.WithAttributes(attribute.String("from", "viewer"), attribute.String("result", "throttled"))
)

// Keyframe request origins and outcomes, precomputed so recording does not
// allocate.
const (
	fromViewer = iota // PLI or FIR from a viewer
	fromClient        // a client's explicit request (signaling)
	fromJoiner        // a late joiner or a skipping viewer without a keyframe
)

var keyframeAttrs = func() (out [3][2]metric.AddOption) {
	for i, from := range []string{"viewer", "client", "joiner"} {
		for j, res := range []string{"coalesced", "forwarded"} {
			out[i][j] = metric.WithAttributes(attribute.String("from", from), attribute.String("result", res))
		}
	}
	return out
}()

// newInstruments creates the transport's instruments on m and registers
// the observable counters over totals and skips. A nil m records nothing.
func newInstruments(m metric.Meter, totals *sentTotals, skips *atomic.Uint64, udp *udpTotals) (instruments, error) {
	if m == nil {
		m = noop.NewMeterProvider().Meter("mediasvc/rtc")
	}
	var in instruments
	var err error
	if in.nacks, err = m.Int64Counter("media_nacks_received", metric.WithDescription("RTCP NACK packets received from viewers.")); err != nil {
		return in, err
	}
	if in.plis, err = m.Int64Counter("media_plis_received", metric.WithDescription("RTCP PLI and FIR packets received from viewers.")); err != nil {
		return in, err
	}
	if in.retransmits, err = m.Int64Counter("media_retransmits", metric.WithDescription("RTP packets retransmitted from the shared ring in answer to NACKs.")); err != nil {
		return in, err
	}
	if in.keyframeReqs, err = m.Int64Counter("media_keyframe_requests",
		metric.WithDescription("Keyframe requests by origin (viewer PLI/FIR, client, joiner) and result (forwarded to the source, or coalesced).")); err != nil {
		return in, err
	}
	// Every origin × result, and the feedback counters, are exported
	// from the start at 0.
	for _, byResult := range keyframeAttrs {
		for _, a := range byResult {
			in.keyframeReqs.Add(context.Background(), 0, a)
		}
	}
	in.nacks.Add(context.Background(), 0)
	in.plis.Add(context.Background(), 0)
	in.retransmits.Add(context.Background(), 0)
	if in.rtcpDropped, err = m.Int64Counter("media_rtcp_dropped",
		metric.WithDescription("RTCP packets from viewers dropped unread: over the viewer's RTCP rate (reason rate), not parseable (malformed), or addressed to an SSRC the viewer's peer does not send (unknown_ssrc).")); err != nil {
		return in, err
	}
	if in.retransmitsDropped, err = m.Int64Counter("media_retransmits_dropped",
		metric.WithDescription("Packets viewers NACKed that were not retransmitted: over the viewer's retransmission budget.")); err != nil {
		return in, err
	}
	// Exported at 0 from the start, so a rate() over them works at once.
	in.rtcpDropped.Add(context.Background(), 0, rtcpDropRate)
	in.rtcpDropped.Add(context.Background(), 0, rtcpDropMalformed)
	in.rtcpDropped.Add(context.Background(), 0, rtcpDropUnknownSSRC)
	in.retransmitsDropped.Add(context.Background(), 0)
	in.keyframeReqs.Add(context.Background(), 0, keyframeThrottled)
	if in.egress, err = m.Float64Histogram("media_video_frame_egress", metric.WithUnit("s"),
		metric.WithDescription("Time from a video frame's ingest to its last packet for the last viewer leaving for the kernel, per frame (the fan-out's share of glass-to-glass latency, packetizing included)."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1)); err != nil {
		return in, err
	}
	if in.egressPerSend, err = m.Float64Histogram("media_video_frame_egress_per_packet", metric.WithUnit("s"),
		metric.WithDescription("A video frame's egress time over the packets it sent to all its viewers (packets × viewers), per frame: times the cores, comparable to the CPU cost of one sent packet."),
		metric.WithExplicitBucketBoundaries(0.5e-6, 1e-6, 1.5e-6, 2e-6, 2.5e-6, 3e-6, 3.5e-6, 4e-6, 5e-6, 6e-6, 7e-6, 8e-6, 10e-6, 12e-6, 15e-6, 20e-6, 30e-6, 50e-6, 100e-6, 1e-3)); err != nil {
		return in, err
	}
	frames, err := m.Int64ObservableCounter("media_video_frames_sent", metric.WithDescription("Video frames sent, summed over viewers."))
	if err != nil {
		return in, err
	}
	packets, err := m.Int64ObservableCounter("media_packets_sent", metric.WithDescription("RTP packets sent, summed over viewers, by kind (video, audio)."))
	if err != nil {
		return in, err
	}
	bytes, err := m.Int64ObservableCounter("media_sent", metric.WithUnit("By"), metric.WithDescription("RTP payload bytes sent, summed over viewers, by kind (video, audio)."))
	if err != nil {
		return in, err
	}
	skipC, err := m.Int64ObservableCounter("media_viewer_keyframe_skips", metric.WithDescription("Times a viewer fell behind its stream's ring and skipped to the newest keyframe."))
	if err != nil {
		return in, err
	}
	udpCalls, err := m.Int64ObservableCounter("media_udp_send_calls", metric.WithDescription("System calls (sendmmsg) the shared UDP sockets made to send."))
	if err != nil {
		return in, err
	}
	udpDatagrams, err := m.Int64ObservableCounter("media_udp_datagrams_sent", metric.WithDescription("Datagrams the shared UDP sockets sent (all peers, media and control); over media_udp_send_calls: the batch size."))
	if err != nil {
		return in, err
	}
	ringMem, err := m.Int64ObservableGauge("media_ring_memory", metric.WithUnit("By"), metric.WithDescription("Payload memory of the streams' rings (outside the Go heap on Linux): held by rings, or free and kept resident for the next ring that grows."))
	if err != nil {
		return in, err
	}
	video := metric.WithAttributes(attribute.String("kind", "video"))
	audio := metric.WithAttributes(attribute.String("kind", "audio"))
	held := metric.WithAttributes(attribute.String("state", "held"))
	warm := metric.WithAttributes(attribute.String("state", "free"))
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(ringMem, int64(chunks.inRings()), held)
		o.ObserveInt64(ringMem, int64(chunks.resident()), warm)
		o.ObserveInt64(frames, int64(totals.videoFrames.Load()))
		o.ObserveInt64(packets, int64(totals.videoPackets.Load()), video)
		o.ObserveInt64(packets, int64(totals.audioPackets.Load()), audio)
		o.ObserveInt64(bytes, int64(totals.videoBytes.Load()), video)
		o.ObserveInt64(bytes, int64(totals.audioBytes.Load()), audio)
		o.ObserveInt64(skipC, int64(skips.Load()))
		o.ObserveInt64(udpCalls, int64(udp.calls.Load()))
		o.ObserveInt64(udpDatagrams, int64(udp.packets.Load()))
		return nil
	}, frames, packets, bytes, skipC, udpCalls, udpDatagrams, ringMem)
	return in, err
}

// foldSent adds what the peer sent since the last fold to the Transport's
// totals. It is called from the Fanout's ticker (Peer.tick) and from
// Close, both under tickMu.
func (p *Peer) foldSent() {
	v := p.video
	cur := sentMark{videoFrames: v.frames.Load(), videoPackets: v.packets.Load(), videoBytes: v.octets.Load()}
	if p.audio != nil {
		cur.audioPackets, cur.audioBytes = p.audio.packets.Load(), p.audio.octets.Load()
	}
	t, last := &p.t.sent, p.folded
	t.videoFrames.Add(cur.videoFrames - last.videoFrames)
	t.videoPackets.Add(cur.videoPackets - last.videoPackets)
	t.videoBytes.Add(cur.videoBytes - last.videoBytes)
	t.audioPackets.Add(cur.audioPackets - last.audioPackets)
	t.audioBytes.Add(cur.audioBytes - last.audioBytes)
	p.folded = cur
}
