//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mediasvc/e2e/client"
)

// readmeFamilies returns the metric families README's instrument table
// documents (every backticked media_* name in it): the one list of what
// /metrics must show.
func readmeFamilies(t *testing.T) []string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	name := regexp.MustCompile("`(media_[a-z_]+)`")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "| instrument (Prometheus name)") {
			in = true
			continue
		}
		if in && !strings.HasPrefix(l, "|") {
			break
		}
		if in {
			cell := strings.SplitN(strings.TrimPrefix(l, "|"), "|", 2)[0]
			for _, m := range name.FindAllStringSubmatch(cell, -1) {
				out = append(out, m[1])
			}
		}
	}
	if len(out) < 30 {
		t.Fatalf("README's instrument table lists %d families; the table was not found or not parsed", len(out))
	}
	return out
}

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape reads /metrics at url: the families by # TYPE and the samples.
type scrapeResult struct {
	types   map[string]string
	samples []sample
}

var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

func scrapeMetrics(t *testing.T, url string) scrapeResult {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	r := scrapeResult{types: map[string]string{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		l := sc.Text()
		if f, ok := strings.CutPrefix(l, "# TYPE "); ok {
			parts := strings.Fields(f)
			if len(parts) == 2 {
				r.types[parts[0]] = parts[1]
			}
			continue
		}
		if l == "" || l[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[sp+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", l)
		}
		s := sample{labels: map[string]string{}, value: v}
		head := l[:sp]
		if i := strings.IndexByte(head, '{'); i >= 0 {
			s.name = head[:i]
			for _, m := range labelRE.FindAllStringSubmatch(head[i:], -1) {
				s.labels[m[1]] = m[2]
			}
		} else {
			s.name = head
		}
		r.samples = append(r.samples, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return r
}

// sum adds the samples named name whose labels include every pair of match
// (name=value, …); it returns the sum and how many samples matched.
func (r scrapeResult) sum(name string, match ...string) (float64, int) {
	var total float64
	n := 0
next:
	for _, s := range r.samples {
		if s.name != name {
			continue
		}
		for _, m := range match {
			k, v, _ := strings.Cut(m, "=")
			if s.labels[k] != v {
				continue next
			}
		}
		total += s.value
		n++
	}
	return total, n
}

// TestEveryMetricFamilyFromStart: every family README's instrument table
// lists is on /metrics right after start — counters and histograms at 0,
// the known label values of each counter already there — and the table
// lists every media_* family served. Then WS and WHEP sessions come and go
// (one of each plays, one of each is refused for an unknown device) and
// each family shows what they did.
func TestEveryMetricFamilyFromStart(t *testing.T) {
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := defaultConfig().set("metrics", "addr", metricsAddr).set("metrics", "quality_interval", "1s").set("stream", "grace", "1s")
	in := startInstance(t, cfg)
	url := "http://" + metricsAddr + "/metrics"
	families := readmeFamilies(t)

	start := scrapeMetrics(t, url)
	for _, f := range families {
		if _, ok := start.types[f]; !ok {
			t.Errorf("%s (README) is not on /metrics at start", f)
		}
	}
	for f := range start.types {
		if strings.HasPrefix(f, "media_") && !slices.Contains(families, f) {
			t.Errorf("%s is served but README's instrument table does not list it", f)
		}
	}
	// The shipped alert rules and dashboard ask only for families that are
	// there from the start.
	ref := regexp.MustCompile(`\b(?:media|go)_[a-z_]+`)
	for _, f := range []string{"prometheus/mediasvc-alerts.yml", "grafana/mediasvc-dashboard.json"} {
		b, err := os.ReadFile(filepath.Join(telemetryDir(t), f))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range ref.FindAllString(string(b), -1) {
			fam := name
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if _, ok := start.types[fam]; !ok {
					fam = strings.TrimSuffix(fam, suffix)
				}
			}
			if _, ok := start.types[fam]; !ok {
				t.Errorf("%s asks for %s, which /metrics does not serve", f, name)
			}
		}
	}
	zeroAtStart := map[string][]string{
		"media_sessions_created_total":            {"kind=whep,outcome=ok", "kind=whep,outcome=not_found", "kind=ws,outcome=ok", "kind=ws,outcome=rate_limited"},
		"media_active_sessions":                   {"kind=whep,role=viewer", "kind=ws,role=controller"},
		"media_ice_state_transitions_total":       {"state=connected", "state=failed", "state=closed"},
		"media_rate_limited_total":                {"limit=owner", "limit=global", "limit=input"},
		"media_keyframe_requests_total":           {"from=viewer,result=forwarded"},
		"media_time_to_first_frame_seconds_count": {""},
		"media_session_duration_seconds_count":    {""},
		"media_capture_failures_total":            {""},
		"media_websocket_send_queue_drops_total":  {""},
	}
	for name, sets := range zeroAtStart {
		for _, set := range sets {
			var match []string
			if set != "" {
				match = strings.Split(set, ",")
			}
			if v, n := start.sum(name, match...); n == 0 || v != 0 {
				t.Errorf("at start %s{%s} = %v over %d series, want 0 over at least one", name, set, v, n)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var vs []*client.Viewer
	for _, mode := range []client.Mode{client.ModeWS, client.ModeWHEP} {
		v, err := client.Dial(ctx, client.Config{BaseURL: in.Base, Mode: mode})
		if err != nil {
			t.Fatalf("%s viewer: %v", mode, err)
		}
		t.Cleanup(func() { _ = v.Close() })
		vs = append(vs, v)
	}
	for _, v := range vs {
		if err := v.WaitFrames(ctx, 60, false); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1500 * time.Millisecond) // a quality sample with both connected
	if _, err := client.Dial(ctx, client.Config{BaseURL: in.Base, Mode: client.ModeWS, Device: "no-such-device"}); err == nil {
		t.Fatal("a WS session for an unknown device was created")
	}
	if _, err := client.WHEPOffer(ctx, http.DefaultClient, in.Base, "", "no-such-device", testOffer(t)); err == nil {
		t.Fatal("a WHEP session for an unknown device was created")
	}
	playing := scrapeMetrics(t, url)
	if v, _ := playing.sum("media_active_sessions", "kind=whep"); v != 1 {
		t.Errorf("media_active_sessions{kind=whep} while playing = %v, want 1", v)
	}
	for _, v := range vs {
		_ = v.Close()
	}
	within(t, 10*time.Second, "both sessions gone", func() bool {
		v, _ := scrapeMetrics(t, url).sum("media_active_sessions")
		return v == 0
	})
	time.Sleep(2 * time.Second) // the capture's grace
	after := scrapeMetrics(t, url)

	ge := func(min float64) func(float64) bool { return func(v float64) bool { return v >= min } }
	eq := func(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
	for _, c := range []struct {
		name  string
		match []string
		ok    func(float64) bool
		want  string
	}{
		{"media_sessions_created_total", []string{"kind=ws", "outcome=ok"}, eq(1), "1"},
		{"media_sessions_created_total", []string{"kind=whep", "outcome=ok"}, eq(1), "1"},
		{"media_sessions_created_total", []string{"kind=ws", "outcome=not_found"}, eq(1), "1"},
		{"media_sessions_created_total", []string{"kind=whep", "outcome=not_found"}, eq(1), "1"},
		{"media_active_sessions", nil, eq(0), "0"},
		{"media_session_duration_seconds_count", nil, eq(2), "2"},
		{"media_ice_connection_state", nil, eq(0), "0"},
		{"media_ice_state_transitions_total", []string{"state=connected"}, eq(2), "2"},
		{"media_ice_state_transitions_total", []string{"state=closed"}, eq(2), "2"},
		{"media_time_to_connected_seconds_count", nil, eq(2), "2"},
		{"media_time_to_first_frame_seconds_count", nil, eq(2), "2"},
		{"media_video_frame_rate_count", nil, ge(1), "≥ 1"},
		{"media_video_bitrate_bps_count", nil, ge(1), "≥ 1"},
		{"media_packet_loss_ratio_count", nil, ge(1), "≥ 1"},
		{"media_jitter_milliseconds_count", nil, ge(1), "≥ 1"},
		{"media_video_frames_sent_total", nil, ge(120), "≥ 120"},
		{"media_packets_sent_total", []string{"kind=video"}, ge(120), "≥ 120"},
		{"media_packets_sent_total", []string{"kind=audio"}, ge(1), "≥ 1"},
		{"media_sent_bytes_total", []string{"kind=video"}, ge(10000), "≥ 10000"},
		{"media_captures_active", []string{"device_id=demo"}, eq(0), "0 (after the grace)"},
		{"media_capture_bitrate_target_bps", []string{"device_id=demo"}, ge(0), "present"},
		{"media_device_viewers", []string{"device_id=demo"}, eq(0), "0"},
		{"media_device_breaker_state", []string{"device_id=demo", "state=closed"}, eq(1), "1"},
		{"media_http_requests_total", []string{"route=/api/v1/sessions", "method=POST", "status_class=2xx"}, eq(1), "1"},
		{"media_http_requests_total", []string{"route=/whep/{device_id}", "method=POST", "status_class=2xx"}, eq(1), "1"},
		{"media_http_requests_total", []string{"route=/whep/{device_id}", "method=POST", "status_class=4xx"}, eq(1), "1"},
		{"media_http_duration_seconds_count", []string{"route=/whep/{device_id}"}, ge(2), "≥ 2"},
		{"media_websocket_connections", nil, eq(0), "0"},
		{"media_websocket_messages_total", []string{"direction=in", "type=offer"}, eq(1), "1"},
		{"media_websocket_messages_total", []string{"direction=out", "type=answer"}, eq(1), "1"},
		{"media_session_quota_used", []string{"scope=total"}, eq(0), "0"},
		{"media_panics_total", nil, eq(0), "0"},
		{"media_goroutine_count", nil, ge(1), "> 0"},
		{"media_memory_usage_bytes", nil, ge(1), "> 0"},
		{"media_udp_send_calls_total", nil, ge(1), "> 0"},
		{"media_config_reloads_total", nil, eq(0), "0"},
	} {
		v, n := after.sum(c.name, c.match...)
		if n == 0 || !c.ok(v) {
			t.Errorf("after the sessions, %s%v = %v over %d series, want %s", c.name, c.match, v, n, c.want)
		}
	}
	t.Logf("%d families at start, all %d of README's table; %d samples after", len(start.types), len(families), len(after.samples))
}
