//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mediasvc/e2e/client"
)

// telemetryDir is where the shipped dashboard and alert rules live.
func telemetryDir(t *testing.T) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "adapters", "telemetry")
}

// Prometheus is a real Prometheus server scraping one target every second.
type Prometheus struct {
	Base string
}

// startPrometheus runs Debian's prometheus on a free loopback port with a
// temporary TSDB, scraping target (host:port, path /metrics) every second
// and loading the shipped alert rules. It is stopped when the test ends.
func startPrometheus(t *testing.T, target string) *Prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus not installed (go tool task deps installs it): %v", err)
	}
	dir := t.TempDir()
	rules := filepath.Join(dir, "mediasvc-alerts.yml")
	b, err := os.ReadFile(filepath.Join(telemetryDir(t), "prometheus", "mediasvc-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rules, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: mediasvc
    static_configs:
      - targets: [%q]
`, rules, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	logPath := filepath.Join(dir, "prometheus.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start prometheus: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", tail(logPath, 40))
		}
	})
	p := &Prometheus{Base: "http://" + addr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("prometheus exited; log:\n%s", tail(logPath, 40))
		default:
		}
		if code, _ := httpStatus(context.Background(), p.Base+"/-/ready"); code == http.StatusOK {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 30s; log:\n%s", tail(logPath, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// promSample is one element of an instant vector.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSample) float() float64 {
	str, _ := s.Value[1].(string)
	f, _ := strconv.ParseFloat(str, 64)
	return f
}

// get calls the HTTP API at path and decodes data into out; it returns the
// API error, if any.
func (p *Prometheus) get(path string, params url.Values, out any) error {
	resp, err := http.Get(p.Base + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("decode %s: %w: %.200s", path, err, b)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s", path, r.Error)
	}
	if out != nil {
		return json.Unmarshal(r.Data, out)
	}
	return nil
}

// query runs an instant PromQL query.
func (p *Prometheus) query(q string) ([]promSample, error) {
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.get("/api/v1/query", url.Values{"query": {q}}, &d); err != nil {
		return nil, err
	}
	if d.ResultType != "vector" {
		return nil, nil // scalars and matrices: the query parsed and ran
	}
	var v []promSample
	err := json.Unmarshal(d.Result, &v)
	return v, err
}

// waitValue polls q until it returns one sample satisfying ok.
func (p *Prometheus) waitValue(t *testing.T, q string, within time.Duration, ok func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(within)
	var last []promSample
	var lastErr error
	for time.Now().Before(deadline) {
		last, lastErr = p.query(q)
		if lastErr == nil && len(last) == 1 && ok(last[0].float()) {
			return last[0].float()
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: never satisfied within %s; last %v %v", q, within, last, lastErr)
	return 0
}

func TestPrometheusScrapesMediasvc(t *testing.T) {
	const viewers = 3
	cfg := defaultConfig()
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg.set("metrics", "addr", metricsAddr).set("metrics", "quality_interval", "1s")
	in := startInstance(t, cfg)
	prom := startPrometheus(t, metricsAddr)

	// On its own listener, /metrics is not served on http.addr.
	if code, _ := httpStatus(context.Background(), in.Base+"/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics on http.addr with metrics.addr set: %d", code)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var vs []*client.Viewer
	for i := range viewers {
		v, err := client.Dial(ctx, client.Config{BaseURL: in.Base})
		if err != nil {
			t.Fatalf("viewer %d: %v", i, err)
		}
		vs = append(vs, v)
		t.Cleanup(func() { _ = v.Close() })
	}
	for i, v := range vs {
		if err := v.WaitFrames(ctx, 30, false); err != nil {
			t.Fatalf("viewer %d: %v", i, err)
		}
	}

	eq := func(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
	pos := func(v float64) bool { return v > 0 }
	prom.waitValue(t, `sum(media_active_sessions{job="mediasvc"})`, 20*time.Second, eq(viewers))
	prom.waitValue(t, `sum(media_ice_connection_state{state="connected"})`, 20*time.Second, eq(viewers))
	prom.waitValue(t, `sum(media_video_frames_sent_total)`, 20*time.Second, pos)
	prom.waitValue(t, `sum(media_sent_bytes_total{kind="video"})`, 20*time.Second, pos)
	prom.waitValue(t, `sum(rate(media_video_frames_sent_total[5s]))`, 20*time.Second, func(v float64) bool { return v > 10*viewers })
	prom.waitValue(t, `sum(media_time_to_first_frame_seconds_count)`, 20*time.Second, eq(viewers))
	prom.waitValue(t, `sum(media_time_to_connected_seconds_count)`, 20*time.Second, eq(viewers))
	ttff := prom.waitValue(t, `histogram_quantile(0.5, sum by (le) (media_time_to_first_frame_seconds_bucket))`, 20*time.Second, pos)
	prom.waitValue(t, `sum(media_video_frame_rate_count)`, 20*time.Second, pos)
	prom.waitValue(t, `sum(media_sessions_created_total{outcome="ok"})`, 20*time.Second, eq(viewers))
	prom.waitValue(t, `sum(media_websocket_connections)`, 20*time.Second, eq(viewers))
	prom.waitValue(t, `sum(media_http_requests_total{route="/api/v1/sessions",method="POST",status_class="2xx"})`, 20*time.Second, eq(viewers))
	prom.waitValue(t, `max(media_goroutine_count)`, 20*time.Second, pos)
	prom.waitValue(t, `max(go_memory_used_bytes)`, 20*time.Second, pos)
	t.Logf("time to first frame p50 ≈ %.3fs", ttff)

	// No series carries a session label, and no label value is a session id.
	var labels []string
	if err := prom.get("/api/v1/labels", url.Values{"match[]": {`{job="mediasvc"}`}}, &labels); err != nil {
		t.Fatal(err)
	}
	for _, l := range labels {
		if strings.Contains(l, "session") || l == "token" || l == "path" {
			t.Errorf("a series carries label %q", l)
		}
	}
	ids := map[string]bool{}
	for _, v := range vs {
		ids[v.Session().SessionID] = true
	}
	all, err := prom.query(`{job="mediasvc"}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		for k, v := range s.Metric {
			if ids[v] {
				t.Errorf("series %s carries session id %s in label %s", s.Metric["__name__"], v, k)
			}
		}
	}
	t.Logf("%d series, labels %v", len(all), labels)

	// Every dashboard query parses and runs against the real series.
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	b, err := os.ReadFile(filepath.Join(telemetryDir(t), "grafana", "mediasvc-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("$job", ".*", "$instance", ".*", "$__rate_interval", "30s")
	empty := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			res, err := prom.query(vars.Replace(tg.Expr))
			if err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
			}
			if len(res) == 0 {
				empty++
			}
		}
	}
	t.Logf("dashboard: %d panels; %d queries empty with no failures, restarts or errors yet", len(dash.Panels), empty)

	// Prometheus loaded every alert rule.
	var rules struct {
		Groups []struct {
			Rules []struct {
				Name   string `json:"name"`
				Health string `json:"health"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := prom.get("/api/v1/rules", nil, &rules); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rules.Groups {
		n += len(g.Rules)
	}
	if n != 8 {
		t.Errorf("prometheus loaded %d alert rules, want 8", n)
	}

	for _, v := range vs {
		_ = v.Close()
	}
	prom.waitValue(t, `sum(media_active_sessions)`, 20*time.Second, eq(0))
	prom.waitValue(t, `sum(media_ice_connection_state)`, 20*time.Second, eq(0))
	prom.waitValue(t, `sum(media_session_duration_seconds_count)`, 20*time.Second, eq(viewers))
}

func TestAlertRulesPromtool(t *testing.T) {
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not installed (go tool task deps installs prometheus): %v", err)
	}
	dir := filepath.Join(telemetryDir(t), "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "mediasvc-alerts.yml"},
		{"test", "rules", "mediasvc-alerts.test.yml"},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		} else {
			t.Logf("promtool %s:\n%s", strings.Join(args, " "), strings.TrimSpace(string(out)))
		}
	}
}

// TestMetricsEndpointAuthAndSwitch: with API keys, /metrics on http.addr
// needs one like the REST API; metrics.enabled false serves no /metrics.
func TestMetricsEndpointAuthAndSwitch(t *testing.T) {
	const key = "prometheus-scraper-key"
	in := startInstance(t, defaultConfig().set("auth", "api_keys", map[string]string{"prom": key}))
	resp, _ := do(t, http.MethodGet, in.Base+"/metrics", "", nil, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without a key: %d, want 401", resp.StatusCode)
	}
	resp, body := do(t, http.MethodGet, in.Base+"/metrics", "", nil, http.Header{"Authorization": {"Bearer " + key}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "media_goroutine_count") {
		t.Errorf("/metrics with a key: %d %.200s", resp.StatusCode, body)
	}

	off := startInstance(t, defaultConfig().set("metrics", "enabled", false))
	if code, _ := httpStatus(context.Background(), off.Base+"/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics with metrics.enabled false: %d, want 404", code)
	}
}
