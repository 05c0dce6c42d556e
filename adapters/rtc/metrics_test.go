package rtc

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"mediasvc/ports"
)

// metricValue sums the int64 points of name whose attributes include want.
func metricValue(t *testing.T, rd *sdkmetric.ManualReader, name string, want ...attribute.KeyValue) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			d, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != name || !ok {
				continue
			}
		points:
			for _, p := range d.DataPoints {
				for _, kv := range want {
					if v, ok := p.Attributes.Value(kv.Key); !ok || v != kv.Value {
						continue points
					}
				}
				sum += p.Value
			}
		}
	}
	return sum
}

func TestMetricsCountSentMediaAndFeedback(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	tp, f := newTestTransport(t, Config{Meter: mp.Meter("mediasvc/rtc"), KeyframeInterval: time.Hour})
	pu := startPump(t, f, 1000, false)
	c := newTestClient(t)
	var firsts atomic.Int64
	p := connect(t, tp, f, c, ports.PeerOptions{Session: "s1", OnFirstFrame: func() { firsts.Add(1) }})
	_, first := firstAU(t, c)
	countAUs(t, c, 10)
	ssrc := c.ssrc.Load()
	_ = c.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
	_ = c.pc.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: ssrc, Nacks: []rtcp.NackPair{{PacketID: first.SequenceNumber + 1}}}})
	kv := attribute.String
	deadline := time.Now().Add(5 * time.Second)
	for metricValue(t, rd, "media_retransmits") < 1 || metricValue(t, rd, "media_plis_received") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("feedback never counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := metricValue(t, rd, "media_nacks_received"); n != 1 {
		t.Errorf("nacks = %d", n)
	}
	if n := metricValue(t, rd, "media_keyframe_requests", kv("from", "viewer")); n != 1 {
		t.Errorf("keyframe requests from viewers = %d", n)
	}
	pu.halt()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// Everything the peer sent is folded in when it closes.
	s := p.Stats()
	if got := metricValue(t, rd, "media_video_frames_sent"); got != int64(s.FramesSent) || got < 10 {
		t.Errorf("frames sent = %d, peer says %d", got, s.FramesSent)
	}
	video := metricValue(t, rd, "media_packets_sent", kv("kind", "video"))
	audio := metricValue(t, rd, "media_packets_sent", kv("kind", "audio"))
	if video+audio != int64(s.PacketsSent) || audio != int64(s.AudioPackets) {
		t.Errorf("packets video=%d audio=%d, peer says %d/%d", video, audio, s.PacketsSent, s.AudioPackets)
	}
	if got := metricValue(t, rd, "media_sent"); got != int64(s.BytesSent) {
		t.Errorf("bytes = %d, peer says %d", got, s.BytesSent)
	}
	if n := firsts.Load(); n != 1 {
		t.Errorf("OnFirstFrame called %d times", n)
	}
	// Each video frame the peer's lane drained is timed once, audio never;
	// per packet it is the frame's time over its packets (≥ 1 each).
	n, sum := histogram(t, rd, "media_video_frame_egress")
	np, sump := histogram(t, rd, "media_video_frame_egress_per_packet")
	if n < 5 || n > uint64(pu.frames.Load()) || np != n {
		t.Errorf("egress timed %d frames (per packet %d), %d video frames written", n, np, pu.frames.Load())
	}
	if sum <= 0 || sump <= 0 || sump > sum {
		t.Errorf("egress sum %v s, per packet %v s", sum, sump)
	}
}

// histogram returns the count and sum of the float64 histogram name.
func histogram(t *testing.T, rd *sdkmetric.ManualReader, name string) (uint64, float64) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n uint64
	var sum float64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if d, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == name {
				for _, p := range d.DataPoints {
					n += p.Count
					sum += p.Sum
				}
			}
		}
	}
	return n, sum
}
