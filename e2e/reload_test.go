//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mediasvc/e2e/adbdevice"
	"mediasvc/e2e/client"
)

// reloads returns media_config_reloads_total by result from the metrics
// listener at base.
func reloads(t *testing.T, base string) map[string]int {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "media_config_reloads_total{") {
			continue
		}
		i, j := strings.Index(l, `result="`), strings.LastIndexByte(l, ' ')
		if i < 0 || j < 0 {
			continue
		}
		r := l[i+len(`result="`):]
		r = r[:strings.IndexByte(r, '"')]
		n, _ := strconv.ParseFloat(l[j+1:], 64)
		out[r] = int(n)
	}
	return out
}

// within polls ok every 50 ms until it holds or d has passed, and returns
// how long it took.
func within(t *testing.T, d time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// TestHotReload rewrites a running instance's config file — a new API
// key, a lower creation limit, log level debug — and sends SIGHUP: each
// takes effect within 2 s, the PID is the same and a viewer keeps playing.
// A change of a restart-only key is reported and not applied. Then a
// broken file: refused whole, one error naming each bad field, the
// running configuration still in force. Then a plain file change, without
// a signal, is picked up by the file watch.
func TestHotReload(t *testing.T) {
	const alice, bob = "alice-key-0123456789", "bob-key-0123456789ab"
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := func(keys map[string]any, burst int, level string) Config {
		c := defaultConfig()
		c.set("auth", "api_keys", keys)
		c.set("limits", "create_rate", 0.001)
		c.set("limits", "create_burst", burst)
		c.set("log", "level", level)
		c.set("metrics", "addr", metricsAddr)
		return c
	}
	in := startInstance(t, cfg(map[string]any{"alice": alice}, 20, "info"))
	metrics := "http://" + metricsAddr
	pid := in.PID()
	if r := reloads(t, metrics); len(r) != 3 || r["ok"] != 0 || r["invalid"] != 0 || r["restart_required"] != 0 {
		t.Fatalf("media_config_reloads_total at start = %v, want ok, invalid and restart_required at 0", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	v, err := client.Dial(ctx, client.Config{BaseURL: in.Base, Mode: client.ModeWS, APIKey: alice})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	if err := v.WaitFrames(ctx, 30, false); err != nil {
		t.Fatal(err)
	}
	create := func(key string) (int, []byte) {
		hdr := http.Header{"Authorization": {"Bearer " + key}}
		resp, body := do(t, "POST", in.Base+"/api/v1/sessions", "application/json", []byte(`{"device_id":"demo"}`), hdr)
		return resp.StatusCode, body
	}
	if code, body := create(bob); code != http.StatusUnauthorized {
		t.Fatalf("bob before the reload = %d %s, want 401", code, body)
	}
	if strings.Contains(readLog(t, in), `msg="http request"`) {
		t.Fatal("debug lines at level info")
	}

	next := cfg(map[string]any{"alice": alice, "bob": bob}, 2, "debug")
	next.set("limits", "sessions_total", 40)
	next.set("stream", "grace", "9s") // restart-only
	in.Rewrite(next)
	hupped := time.Now()
	if err := in.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	took := within(t, 2*time.Second, "bob's new key works", func() bool { code, _ := create(bob); return code == http.StatusCreated })
	t.Logf("new API key accepted %s after SIGHUP", took.Round(10*time.Millisecond))
	within(t, 2*time.Second-time.Since(hupped), "log level debug", func() bool {
		_, _ = httpStatus(ctx, in.Base+"/healthz")
		return strings.Contains(readLog(t, in), `msg="http request"`)
	})
	within(t, 2*time.Second-time.Since(hupped), "media_session_quota_limit{scope=total} 40", func() bool {
		v, n := scrapeMetrics(t, metrics+"/metrics").sum("media_session_quota_limit", "scope=total")
		return n == 1 && v == 40
	})
	// alice's bucket now holds 2: two creations, then 429.
	for i := range 2 {
		if code, body := create(alice); code != http.StatusCreated {
			t.Fatalf("alice's creation %d after lowering the burst to 2 = %d %s", i+1, code, body)
		}
	}
	if code, body := create(alice); code != http.StatusTooManyRequests || errorCode(body) != "rate_limited" {
		t.Fatalf("alice's third creation = %d %s, want 429 rate_limited", code, body)
	}
	if time.Since(hupped) > 2*time.Second {
		t.Logf("note: the checks themselves ran past 2 s (%s)", time.Since(hupped))
	}
	log := readLog(t, in)
	if !strings.Contains(log, "trigger=sighup") || !strings.Contains(log, "restart_required=stream.grace") {
		t.Fatalf("the reload did not say which key needs a restart:\n%s", tail(in.LogPath, 20))
	}
	if in.PID() != pid {
		t.Fatal("PID changed")
	}
	select {
	case <-in.Done():
		t.Fatal("the process exited on SIGHUP")
	default:
	}
	before := v.Stats().Frames
	time.Sleep(time.Second)
	if after := v.Stats().Frames; after < before+15 {
		t.Fatalf("the viewer stalled across the reload: %d → %d frames in 1s", before, after)
	}
	r := reloads(t, metrics)
	if r["restart_required"] < 1 || r["invalid"] != 0 {
		t.Fatalf("media_config_reloads_total after the reload = %v", r)
	}

	// A broken file: refused whole.
	broken := cfg(map[string]any{"alice": alice}, -1, "loud")
	in.Rewrite(broken)
	if err := in.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	within(t, 2*time.Second, "the broken file refused", func() bool { return reloads(t, metrics)["invalid"] >= 1 })
	var refused []string
	for _, l := range strings.Split(readLog(t, in), "\n") {
		if strings.Contains(l, "configuration reload refused") {
			refused = append(refused, l)
		}
	}
	if len(refused) == 0 || !strings.Contains(refused[0], "level=ERROR") ||
		!strings.Contains(refused[0], "log.level") || !strings.Contains(refused[0], "limits.create_burst") {
		t.Fatalf("refusal log = %q, want one error naming log.level and limits.create_burst", refused)
	}
	if code, body := create(bob); code != http.StatusCreated && code != http.StatusTooManyRequests {
		t.Fatalf("bob after the broken file = %d %s: the running configuration should stay", code, body)
	}
	if in.PID() != pid {
		t.Fatal("PID changed")
	}

	// A plain file change, no signal: the watch picks it up.
	in.Rewrite(cfg(map[string]any{"alice": alice}, 2, "debug"))
	took = within(t, 3*time.Second, "bob's key removed by a file change", func() bool { code, _ := create(bob); return code == http.StatusUnauthorized })
	t.Logf("file change applied %s after the write, without a signal", took.Round(10*time.Millisecond))
	if after := v.Stats().Frames; after <= before {
		t.Fatal("the viewer stopped")
	}
}

func readLog(t *testing.T, in *Instance) string {
	t.Helper()
	b, err := os.ReadFile(in.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHotReloadADBAllowList: adb.serials reloads live against Debian's
// real adb server: a SIGHUP with a new allow-list shows the device now
// allowed and hides the one no longer allowed within 2 s, with the same
// PID; the demo device, outside the allow-list's reach, stays.
func TestHotReloadADBAllowList(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d1 := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
	d2 := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Galaxy_S24"})
	cfg := func(serials ...string) Config { return adbConfig(srv).set("adb", "serials", serials) }
	in := startInstance(t, cfg(d1.Serial()))
	pid := in.PID()
	waitDevices(t, in, 5*time.Second, "d1 listed online", func(ds map[string]adbDevice) bool { return ds[d1.Serial()].State == "online" })
	if _, ok := listDevices(t, in)[d2.Serial()]; ok {
		t.Fatal("d2 listed outside the allow-list")
	}

	in.Rewrite(cfg(d2.Serial()))
	if err := in.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	took := waitDevices(t, in, 2*time.Second, "d2 shown and d1 hidden after SIGHUP", func(ds map[string]adbDevice) bool {
		_, has1 := ds[d1.Serial()]
		return ds[d2.Serial()].State == "online" && !has1 && ds["demo"].ID != ""
	})
	t.Logf("new allow-list applied %s after SIGHUP", took.Round(time.Millisecond))
	if !strings.Contains(readLog(t, in), "applied=adb.serials") {
		t.Fatalf("the reload did not log adb.serials as applied:\n%s", tail(in.LogPath, 20))
	}

	// Empty: every device.
	in.Rewrite(cfg())
	waitDevices(t, in, 3*time.Second, "both listed after the file change", func(ds map[string]adbDevice) bool {
		return ds[d1.Serial()].State == "online" && ds[d2.Serial()].State == "online"
	})
	if in.PID() != pid {
		t.Fatal("PID changed")
	}
}
