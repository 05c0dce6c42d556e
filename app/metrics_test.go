package app_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"mediasvc/app"
	"mediasvc/domain"
	"mediasvc/ports"
)

// reading reads every instrument through an OTel manual reader.
type reading struct {
	t  *testing.T
	rd *sdkmetric.ManualReader
}

func newReading(t *testing.T) (*reading, *sdkmetric.MeterProvider) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return &reading{t: t, rd: rd}, mp
}

// value sums the data points of instrument name whose attributes include
// every one of want (for histograms: the sample count).
func (r *reading) value(name string, want ...attribute.KeyValue) float64 {
	r.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.rd.Collect(context.Background(), &rm); err != nil {
		r.t.Fatal(err)
	}
	match := func(set attribute.Set) bool {
		for _, kv := range want {
			if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
				return false
			}
		}
		return true
	}
	var sum float64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						sum += float64(p.Value)
					}
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						sum += float64(p.Value)
					}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						sum += float64(p.Count)
					}
				}
			}
		}
	}
	return sum
}

// hasSessionLabel reports whether any data point carries a session label.
func (r *reading) hasSessionLabel() bool {
	var rm metricdata.ResourceMetrics
	_ = r.rd.Collect(context.Background(), &rm)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			var sets []attribute.Set
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					sets = append(sets, p.Attributes)
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					sets = append(sets, p.Attributes)
				}
			}
			for _, s := range sets {
				if _, ok := s.Value("session_id"); ok {
					return true
				}
			}
		}
	}
	return false
}

func TestMetricsFollowASession(t *testing.T) {
	rd, mp := newReading(t)
	r := newRigWithMeter(t, app.Config{QualityInterval: 10 * time.Millisecond}, mp.Meter("mediasvc/app"))
	ctx := context.Background()
	kv := attribute.String

	if _, _, err := r.svc.CreateSession(ctx, "nope", domain.RoleViewer, "ip:1"); err == nil {
		t.Fatal("unknown device accepted")
	}
	sess, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleController, "ip:1")
	if err != nil {
		t.Fatal(err)
	}
	if got := rd.value("media_sessions_created", kv("outcome", "ok")); got != 1 {
		t.Fatalf("created ok = %v", got)
	}
	if got := rd.value("media_sessions_created", kv("outcome", "not_found")); got != 1 {
		t.Fatalf("created not_found = %v", got)
	}
	if got := rd.value("media_active_sessions", kv("role", "controller"), kv("kind", "ws")); got != 1 {
		t.Fatalf("active = %v", got)
	}
	if _, err := r.svc.Offer(ctx, sess.ID, "offer"); err != nil {
		t.Fatal(err)
	}
	if got := rd.value("media_captures_active", kv("device_id", "dev")); got != 1 {
		t.Fatalf("captures active = %v", got)
	}
	if got := rd.value("media_ice_connection_state", kv("state", "new")); got != 1 {
		t.Fatalf("ice new = %v", got)
	}
	_ = r.svc.AddCandidate(ctx, sess.ID, domain.Candidate{Candidate: "garbage"})
	if err := r.svc.AddCandidate(ctx, sess.ID, domain.Candidate{Candidate: "candidate:1 1 udp 1 192.0.2.1 9 typ host"}); err != nil {
		t.Fatal(err)
	}
	if got := rd.value("media_ice_candidates_added"); got != 1 {
		t.Fatalf("candidates added = %v", got)
	}
	if got := rd.value("media_ice_candidates_rejected", kv("reason", "invalid")); got != 1 {
		t.Fatalf("candidates rejected = %v", got)
	}

	r.mu.Lock()
	opts, peer := r.opts[0], r.peers[0]
	r.mu.Unlock()
	peer.StatsFunc = func() domain.QualityStats {
		return domain.QualityStats{FrameRate: 30, BitrateBps: 2e6, LossFraction: 0.02, JitterMs: 3, RTTMs: 40}
	}
	opts.OnState(ports.PeerConnecting)
	opts.OnState(ports.PeerConnected)
	opts.OnFirstFrame()
	opts.OnFirstFrame() // recorded once
	// Pion's callbacks only post to the session's owner: the gauges
	// follow soon after.
	for _, c := range []struct {
		what string
		got  func() float64
		want float64
	}{
		{"ice connected", func() float64 { return rd.value("media_ice_connection_state", kv("state", "connected")) }, 1},
		{"ice new+connecting", func() float64 {
			return rd.value("media_ice_connection_state", kv("state", "new")) + rd.value("media_ice_connection_state", kv("state", "connecting"))
		}, 0},
		{"transitions to connected", func() float64 { return rd.value("media_ice_state_transitions", kv("state", "connected")) }, 1},
		{"time to connected samples", func() float64 { return rd.value("media_time_to_connected") }, 1},
		{"time to first frame samples", func() float64 { return rd.value("media_time_to_first_frame") }, 1},
	} {
		eventually(t, c.what, func() bool { return c.got() == c.want })
	}
	eventually(t, "quality samples", func() bool {
		return rd.value("media_packet_loss_ratio") > 0 && rd.value("media_rtt_milliseconds") > 0 &&
			rd.value("media_video_frame_rate") > 0 && rd.value("media_video_bitrate_bps") > 0 && rd.value("media_jitter_milliseconds") > 0
	})

	// A keyframe request reaches the capture and is counted per device.
	r.mu.Lock()
	fan := r.fanouts[0]
	r.mu.Unlock()
	fan.Requests <- struct{}{}
	eventually(t, "source keyframe request", func() bool {
		return rd.value("media_source_keyframe_requests", kv("device_id", "dev")) == 1
	})
	// A capture that ends is reopened and counted.
	c := <-r.captures
	close(c.Frames)
	eventually(t, "capture restart", func() bool {
		return rd.value("media_capture_restarts", kv("device_id", "dev")) == 1
	})

	if err := r.svc.Input(ctx, sess.ID, domain.InputEvent{Type: domain.InputTap, X: 1, Y: 1}); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.CloseSession(ctx, sess.ID, "bye"); err != nil {
		t.Fatal(err)
	}
	if got := rd.value("media_active_sessions"); got != 0 {
		t.Fatalf("active after close = %v", got)
	}
	if got := rd.value("media_ice_connection_state"); got != 0 {
		t.Fatalf("ice states after close = %v", got)
	}
	if got := rd.value("media_session_duration", kv("role", "controller"), kv("reason", "bye")); got != 1 {
		t.Fatalf("duration samples = %v", got)
	}
	if got := rd.value("media_device_breaker_state", kv("device_id", "dev"), kv("state", "closed")); got != 1 {
		t.Fatalf("breaker closed = %v", got)
	}
	if rd.hasSessionLabel() {
		t.Fatal("a data point carries a session_id label")
	}
}

func TestMetricsCountRateLimits(t *testing.T) {
	rd, mp := newReading(t)
	r := newRigWithMeter(t, app.Config{InputRate: 1, InputBurst: 1}, mp.Meter("mediasvc/app"))
	ctx := context.Background()
	sess, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleController, "ip:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Offer(ctx, sess.ID, "offer"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_ = r.svc.Input(ctx, sess.ID, domain.InputEvent{Type: domain.InputTap, X: 1, Y: 1})
	}
	if got := rd.value("media_rate_limited", attribute.String("limit", "input")); got < 1 {
		t.Fatalf("rate limited input = %v", got)
	}
}

func TestMetricsCountCaptureFailures(t *testing.T) {
	rd, mp := newReading(t)
	r := newRigWithMeter(t, app.Config{}, mp.Meter("mediasvc/app"))
	ctx := context.Background()
	failure := domain.ErrDeviceUnavailable
	r.openErr.Store(&failure)
	sess, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "ip:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Offer(ctx, sess.ID, "offer"); err == nil {
		t.Fatal("offer succeeded with the capture failing")
	}
	if got := rd.value("media_capture_failures", attribute.String("device_id", "dev")); got != 1 {
		t.Fatalf("capture failures = %v", got)
	}
	if got := rd.value("media_captures_active"); got != 0 {
		t.Fatalf("captures active = %v", got)
	}
}

// Every panic site is exported at 0 from the start, so the first panic is
// an increase an alert sees.
func TestPanicSitesExportedAtZero(t *testing.T) {
	rd, mp := newReading(t)
	newRigWithMeter(t, app.Config{}, mp.Meter("mediasvc/app"))
	var rm metricdata.ResourceMetrics
	if err := rd.rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	sites := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if d, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "media_panics" {
				for _, p := range d.DataPoints {
					w, _ := p.Attributes.Value("where")
					sites[w.AsString()] = p.Value
				}
			}
		}
	}
	want := map[string]int64{"session_work": 0, "session_notify": 0, "forwarded_call": 0, "hub_pump": 0, "hub_control": 0, "session_close": 0}
	if !maps.Equal(sites, want) {
		t.Fatalf("media_panics at start = %v, want %v", sites, want)
	}
}
