package telemetry

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestExpositionNames pins how instrument names and units become Prometheus
// names, which the dashboard and the alert rules depend on.
func TestExpositionNames(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Shutdown(context.Background()) }()
	m := p.Meter("test")
	ctx := context.Background()
	c, _ := m.Int64Counter("media_sessions_created")
	c.Add(ctx, 1)
	ud, _ := m.Int64UpDownCounter("media_active_sessions")
	ud.Add(ctx, 2)
	for name, unit := range map[string]string{
		"media_time_to_first_frame": "s", "media_video_frame_rate": "{fps}", "media_video_bitrate_bps": "{bps}",
		"media_packet_loss_ratio": "{ratio}", "media_rtt_milliseconds": "{ms}",
	} {
		h, _ := m.Float64Histogram(name, metric.WithUnit(unit))
		h.Record(ctx, 1)
	}
	oc, _ := m.Int64ObservableCounter("media_sent", metric.WithUnit("By"))
	_, _ = m.RegisterCallback(func(_ context.Context, o metric.Observer) error { o.ObserveInt64(oc, 5); return nil }, oc)

	rec := httptest.NewRecorder()
	p.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	for _, want := range []string{
		"media_sessions_created_total 1",
		"media_active_sessions 2",
		"media_time_to_first_frame_seconds_count 1",
		"media_video_frame_rate_count 1",
		"media_video_bitrate_bps_count 1",
		"media_packet_loss_ratio_count 1",
		"media_rtt_milliseconds_count 1",
		"media_sent_bytes_total 5",
		"media_memory_usage_bytes ",
		"media_goroutine_count ",
		"go_goroutine_count ",
		"go_memory_used_bytes",
	} {
		if !strings.Contains(text, "\n"+want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	if strings.Contains(text, "otel_scope") || strings.Contains(text, "target_info") {
		t.Error("scope or target info exported")
	}
	if t.Failed() {
		t.Log(text)
	}
}

// TestDashboardAndRules checks that the shipped dashboard is a Grafana JSON
// model with panels and that both files only query media_ and go_ series.
func TestDashboardAndRules(t *testing.T) {
	var d struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(Dashboard, &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	if d.Title == "" || len(d.Panels) < 10 {
		t.Fatalf("dashboard %q has %d panels", d.Title, len(d.Panels))
	}
	names := regexp.MustCompile(`\b(media|go)_[a-z_]+`)
	exprs := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				continue
			}
			exprs++
			if !names.MatchString(tg.Expr) {
				t.Errorf("panel %q queries no mediasvc series: %s", p.Title, tg.Expr)
			}
			if strings.Contains(tg.Expr, "session_id") {
				t.Errorf("panel %q uses a session label", p.Title)
			}
		}
	}
	if exprs < 10 {
		t.Errorf("only %d queries", exprs)
	}
	for _, alert := range []string{"MediaICEFailureRatioHigh", "MediaTimeToFirstFrameSlow", "MediaPacketLossHigh",
		"MediaCaptureRestartStorm", "MediaBreakerOpen", "MediaMemoryGrowth", "MediaHTTP5xxRatioHigh", "MediaPanic"} {
		if !strings.Contains(string(AlertRules), "alert: "+alert+"\n") {
			t.Errorf("alert rules lack %s", alert)
		}
	}
}

// BenchmarkScrape measures one /metrics exposition of about as many series
// as a running instance has (runtime metrics plus ~30 instruments with
// small label sets and histograms).
func BenchmarkScrape(b *testing.B) {
	p, err := New()
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = p.Shutdown(context.Background()) }()
	m := p.Meter("bench")
	ctx := context.Background()
	for i := range 20 {
		c, _ := m.Int64Counter("media_bench_counter_" + string(rune('a'+i)))
		for _, st := range []string{"a", "b", "c"} {
			c.Add(ctx, 1, metric.WithAttributes(attribute.String("state", st)))
		}
	}
	for i := range 8 {
		h, _ := m.Float64Histogram("media_bench_hist_"+string(rune('a'+i)), metric.WithExplicitBucketBoundaries(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000))
		h.Record(ctx, float64(i))
	}
	req := httptest.NewRequest("GET", "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		p.Handler().ServeHTTP(rec, req)
	}
}

// BenchmarkRecordQualitySample is what the quality sampler does per viewer
// per metrics.quality_interval: five histogram records.
func BenchmarkRecordQualitySample(b *testing.B) {
	p, err := New()
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = p.Shutdown(context.Background()) }()
	m := p.Meter("bench")
	ctx := context.Background()
	var hs []metric.Float64Histogram
	for _, n := range []string{"fr", "br", "loss", "jitter", "rtt"} {
		h, _ := m.Float64Histogram("media_bench_"+n, metric.WithExplicitBucketBoundaries(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000))
		hs = append(hs, h)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, h := range hs {
			h.Record(ctx, 42)
		}
	}
}

// TestUnusedInstrumentsExportedAtZero: a synchronous instrument nobody has
// measured yet is on /metrics at 0 (a histogram with every bucket 0, its
// own boundaries), and its first measurement replaces the placeholder
// with the real series — once, with no duplicate.
func TestUnusedInstrumentsExportedAtZero(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Shutdown(context.Background()) }()
	m := p.Meter("test")
	c, _ := m.Int64Counter("media_things", metric.WithDescription("things"))
	ud, _ := m.Int64UpDownCounter("media_open_things")
	g, _ := m.Int64Gauge("media_thing_target_bps", metric.WithUnit("{bps}"))
	h, _ := m.Float64Histogram("media_thing_time", metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(0.5, 1))
	labelled, _ := m.Int64Counter("media_labelled_things")
	labelled.Add(context.Background(), 0, metric.WithAttributes(attribute.String("kind", "a")))
	scrape := func() string {
		rec := httptest.NewRecorder()
		p.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != 200 {
			t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	text := scrape()
	for _, want := range []string{
		"# HELP media_things_total things\n",
		"media_things_total 0\n",
		"media_open_things 0\n",
		"media_thing_target_bps 0\n",
		`media_thing_time_seconds_bucket{le="0.5"} 0` + "\n",
		`media_thing_time_seconds_bucket{le="+Inf"} 0` + "\n",
		"media_thing_time_seconds_count 0\n",
		`media_labelled_things_total{kind="a"} 0` + "\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("at start, missing %q", want)
		}
	}
	if strings.Contains(text, "media_labelled_things_total 0") {
		t.Error("a counter with its label sets added at 0 also has a placeholder")
	}

	ctx := context.Background()
	c.Add(ctx, 3, metric.WithAttributes(attribute.String("kind", "x")))
	ud.Add(ctx, 1)
	g.Record(ctx, 7)
	h.Record(ctx, 0.7)
	text = scrape()
	for _, want := range []string{
		`media_things_total{kind="x"} 3` + "\n",
		"media_open_things 1\n",
		"media_thing_target_bps 7\n",
		`media_thing_time_seconds_bucket{le="1"} 1` + "\n",
		"media_thing_time_seconds_count 1\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("after use, missing %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "media_things_total 0") || strings.Count(text, "media_thing_time_seconds_count") != 1 {
		t.Errorf("a placeholder outlived the first measurement:\n%s", text)
	}
}
