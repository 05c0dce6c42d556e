package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestReloader drives reloads of a real file: a live change is applied, a
// restart-only change is logged and kept at its running value, and a file
// that does not validate is refused whole with one log line naming every
// bad field; each is counted by result, and every result is there from
// the start.
func TestReloader(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mediasvc.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("log:\n  level: info\nstream:\n  grace: 5s\n")
	src := &configSource{args: []string{"-config", path}}
	cfg, k, err := src.load()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	reader := metric.NewManualReader()
	mp := metric.NewMeterProvider(metric.WithReader(reader))
	var applied []Config
	rl := newReloader(src, cfg, k, mp.Meter("t"), func() *slog.Logger { return log }, func(_, c Config) { applied = append(applied, c) })
	counts := func() map[string]int64 {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name != "media_config_reloads" {
					continue
				}
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					r, _ := dp.Attributes.Value("result")
					out[r.AsString()] = dp.Value
				}
			}
		}
		return out
	}
	if c := counts(); len(c) != 3 || c["ok"] != 0 || c["invalid"] != 0 || c["restart_required"] != 0 {
		t.Fatalf("counts at start = %v, want all three results at 0", c)
	}
	ctx := context.Background()

	write("log:\n  level: debug\nstream:\n  grace: 9s\n")
	if r, err := rl.reload(ctx, "test"); r != reloadRestart || err != nil {
		t.Fatalf("reload = %s, %v; want restart_required", r, err)
	}
	if len(applied) != 1 || applied[0].Log.Level != "debug" || applied[0].Stream.Grace != cfg.Stream.Grace {
		t.Fatalf("applied %+v: want log.level debug and stream.grace kept at %s", applied, cfg.Stream.Grace)
	}
	if !strings.Contains(logs.String(), "restart_required=stream.grace") || !strings.Contains(logs.String(), "applied=log.level") {
		t.Fatalf("log = %s", logs.String())
	}
	// The same file again: stream.grace is still pending, nothing to apply.
	if r, _ := rl.reload(ctx, "test"); r != reloadRestart || len(applied) != 1 {
		t.Fatalf("second reload = %s, applied %d times", r, len(applied))
	}

	logs.Reset()
	write("log:\n  level: loud\nlimits:\n  create_burst: 0\nnonsense: 1\n")
	if r, err := rl.reload(ctx, "test"); r != reloadInvalid || err == nil {
		t.Fatalf("reload of a bad file = %s, %v; want invalid", r, err)
	}
	if len(applied) != 1 {
		t.Fatal("a bad file was applied")
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "level=ERROR") {
		t.Fatalf("a refused reload logged %d lines, want one error:\n%s", len(lines), logs.String())
	}
	for _, f := range []string{"log.level", "limits.create_burst", "nonsense"} {
		if !strings.Contains(lines[0], f) {
			t.Errorf("the error does not name %s: %s", f, lines[0])
		}
	}

	write("log:\n  level: warn\nstream:\n  grace: 5s\n")
	if r, err := rl.reload(ctx, "test"); r != reloadOK || err != nil || len(applied) != 2 || applied[1].Log.Level != "warn" {
		t.Fatalf("reload back = %s, %v, applied %d", r, err, len(applied))
	}
	if c := counts(); c["ok"] != 1 || c["invalid"] != 1 || c["restart_required"] != 2 {
		t.Fatalf("counts = %v", c)
	}
}

// TestLiveKeys: every key issue 15 lists as reloadable is live, and keys
// whose change needs a new listener, store or capture are not.
func TestLiveKeys(t *testing.T) {
	for _, k := range []string{
		"log.level", "log.format",
		"auth.api_keys.alice", "auth.keys", "auth.jwt.keys", "auth.allow_open",
		"http.allowed_hosts", "http.allowed_origins",
		"limits.sessions_total", "limits.create_rate", "limits.input_rate", "limits.max_candidates",
		"webrtc.ice_servers",
		"stream.min_bitrate_bps", "stream.max_bitrate_bps",
		"metrics.quality_interval",
		"adb.serials",
	} {
		if !isLive(k) {
			t.Errorf("%s should reload live", k)
		}
	}
	for _, k := range []string{
		"http.addr", "http.allowed_hosts_extra", "store.backend", "redis.url", "stream.grace",
		"adb.addr", "adb.serials_file", "adb.backend", "webrtc.udp_port", "metrics.addr", "metrics.enabled",
		"tracing.otlp_endpoint", "tracing.sample_ratio",
	} {
		if isLive(k) {
			t.Errorf("%s should need a restart", k)
		}
	}
}
