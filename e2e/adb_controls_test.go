//go:build e2e

package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"mediasvc/adapters/adb"
	"mediasvc/domain"
	"mediasvc/e2e/adbdevice"
	"mediasvc/e2e/client"
)

// TestADBScrcpyControls sends what the viewer page sends for a pinch (two
// fingers), a mouse right-click, a wheel step, Ctrl+Shift+key, any text
// and a clipboard copy, over the WebSocket, and checks what the emulated
// scrcpy-server 3.3.4 makes of them.
func TestADBScrcpyControls(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
	d.EnableScrcpy("")
	in := startInstance(t, scrcpyConfig(t, srv, map[string]any{"stay_awake": true, "max_fps": 30,
		"video_codec_options": "i-frame-interval=2"}))
	waitDevices(t, in, 5*time.Second, "device online", func(ds map[string]adbDevice) bool { return ds[d.Serial()].Width == 1280 })
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	ctl := dialDevice(ctx, t, in, d.Serial(), "controller")
	if err := ctl.WaitFrames(ctx, 10, false); err != nil {
		t.Fatal(err)
	}
	starts := strings.Join(d.ScrcpyStarts()[0], " ")
	for _, want := range []string{"stay_awake=true", "max_fps=30", "video_codec_options=i-frame-interval=2", "power_off_on_close=false", "log_level=warn"} {
		if !strings.Contains(starts, want) {
			t.Errorf("server started with %q, lacking %s", starts, want)
		}
	}
	ptr := func(phase string, id, x, y int) map[string]any {
		return map[string]any{"type": "input", "action": "pointer", "phase": phase, "pointer_id": id, "pointer_type": "touch", "x": x, "y": y}
	}
	d.ResetInputs()
	steps := []map[string]any{
		ptr("down", 0, 600, 360), ptr("down", 1, 680, 360),
		ptr("move", 0, 500, 360), ptr("move", 1, 780, 360),
		ptr("up", 0, 500, 360), ptr("up", 1, 780, 360),
		{"type": "input", "action": "pointer", "phase": "down", "pointer_type": "mouse", "buttons": 2, "x": 10, "y": 10},
		{"type": "input", "action": "pointer", "phase": "up", "pointer_type": "mouse", "buttons": 0, "x": 10, "y": 10},
		{"type": "input", "action": "scroll", "x": 640, "y": 360, "scroll_y": 1},
		{"type": "input", "action": "key", "key": "c", "phase": "down", "ctrl": true, "shift": true},
		{"type": "input", "action": "key", "key": "c", "phase": "up", "ctrl": true, "shift": true},
		{"type": "input", "action": "text", "text": "héllo"},
		{"type": "input", "action": "text", "text": "世界 🙂"},
		{"type": "input", "action": "clipboard", "text": "from the page"},
	}
	for _, m := range steps {
		if err := ctl.SendJSON(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	got, err := d.WaitInputs(ctx, len(steps))
	if err != nil {
		t.Fatalf("%v: %q (ignored %q, errors %+v)", err, got, d.Ignored(), errorsOf(ctl))
	}
	want := []string{
		"scrcpy touch down 600 360 id=0", "scrcpy touch pointer_down 1 680 360 id=1",
		"scrcpy touch move 500 360 id=0", "scrcpy touch move 780 360 id=1",
		"scrcpy touch pointer_up 0 500 360 id=0", "scrcpy touch up 780 360 id=1",
		"scrcpy touch down 10 10 buttons=2", "scrcpy touch up 10 10",
		"scrcpy scroll 640 360 h=0 v=-1",
		"scrcpy key down 31 meta=0x3041", "scrcpy key up 31 meta=0x3041",
		"scrcpy text héllo",
		"scrcpy set_clipboard 世界 🙂 (paste)",
		"scrcpy set_clipboard from the page",
	}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("input %d: %q, want %q", i, got[i], w)
		}
	}
	if d.Clipboard() != "from the page" {
		t.Errorf("device clipboard %q", d.Clipboard())
	}
	// Pointer ids past the server's ten are refused before they leave.
	if err := ctl.SendJSON(ctx, ptr("down", 10, 5, 5)); err != nil {
		t.Fatal(err)
	}
	if m, err := ctl.WaitMessage(ctx, func(m client.Message) bool { return m.Type == "error" }); err != nil || m.Code != "invalid_input" {
		t.Errorf("pointer 10: %+v %v", m, err)
	}
}

func errorsOf(v *client.Viewer) []client.Message {
	var out []client.Message
	for _, m := range v.Messages() {
		if m.Type == "error" {
			out = append(out, m)
		}
	}
	return out
}

// TestADBShellControls: the screenrecord backend's shell does the nearest
// it can (one pointer as motionevent, keycombination for meta keys, input
// scroll on Android 13+) and says what it cannot do.
func TestADBShellControls(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7", SDK: 33})
	in := startInstance(t, adbConfig(srv))
	waitDevices(t, in, 5*time.Second, "device online", func(ds map[string]adbDevice) bool { return ds[d.Serial()].Width == 1280 })
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	ctl := dialDevice(ctx, t, in, d.Serial(), "controller")
	if err := ctl.WaitFrames(ctx, 5, false); err != nil {
		t.Fatal(err)
	}
	d.ResetInputs()
	for _, m := range []map[string]any{
		{"type": "input", "action": "pointer", "phase": "down", "x": 100, "y": 100},
		{"type": "input", "action": "pointer", "phase": "move", "x": 200, "y": 150},
		{"type": "input", "action": "pointer", "phase": "up", "x": 200, "y": 150},
		{"type": "input", "action": "key", "key": "a", "ctrl": true},
		{"type": "input", "action": "scroll", "x": 640, "y": 360, "scroll_y": 2},
	} {
		if err := ctl.SendJSON(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	got, err := d.WaitInputs(ctx, 5)
	if err != nil {
		t.Fatalf("%v: %q %+v", err, got, errorsOf(ctl))
	}
	want := []string{"touchscreen motionevent DOWN 100 100", "touchscreen motionevent MOVE 200 150", "touchscreen motionevent UP 200 150",
		"keycombination 113 29", "mouse scroll 640 360 --axis VSCROLL,-2"}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("input %d: %q, want %q", i, got[i], w)
		}
	}
	for _, m := range []map[string]any{
		{"type": "input", "action": "pointer", "phase": "down", "pointer_id": 1, "x": 1, "y": 1},
		{"type": "input", "action": "text", "text": "世界"},
		{"type": "input", "action": "clipboard", "text": "x"},
	} {
		before := len(errorsOf(ctl))
		if err := ctl.SendJSON(ctx, m); err != nil {
			t.Fatal(err)
		}
		var errs []client.Message
		for deadline := time.Now().Add(5 * time.Second); len(errs) <= before && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
			errs = errorsOf(ctl)
		}
		if len(errs) <= before || errs[before].Code != "invalid_input" {
			t.Errorf("%v: errors %+v, want invalid_input", m, errs)
			continue
		}
		t.Logf("%v → %s", m["action"], errs[before].Message)
	}
}

// TestADBFilesAppsScreenshot drives the adapter's pushes, streamed
// installs and screenshots through Debian's adb server.
func TestADBFilesAppsScreenshot(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
	src, err := adb.New(adb.Options{Addr: srv.Addr()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = src.Run(runCtx) }()
	defer func() { stop(); <-done }()
	id := domain.DeviceID(d.Serial())
	for {
		if dev, err := src.Device(ctx, id); err == nil && dev.State == domain.DeviceOnline {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("device never online")
		case <-time.After(50 * time.Millisecond):
		}
	}

	body := bytes.Repeat([]byte("0123456789abcdef"), 300_000) // 4.8 MB, several sync chunks
	path, err := src.PushFile(ctx, id, "../../system/evil name.bin", bytes.NewReader(body), int64(len(body)))
	if err != nil || path != "/sdcard/Download/evil name.bin" {
		t.Fatalf("push: %q %v", path, err)
	}
	if f := d.Files()[path]; !bytes.Equal(f.Data, body) {
		t.Fatalf("pushed %d bytes of %d", len(f.Data), len(body))
	}
	if _, err := src.PushFile(ctx, id, "short.bin", bytes.NewReader(body[:100]), 200); !errors.Is(err, domain.ErrInvalidRequest) {
		t.Errorf("short body: %v", err)
	}
	if _, ok := d.Files()["/sdcard/Download/short.bin"]; ok {
		t.Error("a truncated push left a file")
	}
	if _, err := src.PushFile(ctx, id, "long.bin", bytes.NewReader(body[:300]), 200); !errors.Is(err, domain.ErrInvalidRequest) {
		t.Errorf("long body: %v", err)
	}

	var apk bytes.Buffer
	zw := zip.NewWriter(&apk)
	w, _ := zw.Create("AndroidManifest.xml")
	_, _ = w.Write(bytes.Repeat([]byte("m"), 100_000))
	_ = zw.Close()
	if err := src.InstallAPK(ctx, id, bytes.NewReader(apk.Bytes()), int64(apk.Len())); err != nil {
		t.Fatalf("install: %v", err)
	}
	err = src.InstallAPK(ctx, id, strings.NewReader("not an apk"), 10)
	if !errors.Is(err, domain.ErrInvalidRequest) || !strings.Contains(err.Error(), "INSTALL_PARSE_FAILED_NOT_APK") {
		t.Errorf("bad apk: %v", err)
	}
	if in := d.Installs(); len(in) != 2 || !in[0].OK || in[0].Size != int64(apk.Len()) || in[1].OK {
		t.Errorf("installs %+v", in)
	}

	shot, err := src.Screenshot(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil || img.Bounds().Dx() != 1280 || img.Bounds().Dy() != 720 {
		t.Fatalf("screenshot: %v %v", img.Bounds(), err)
	}
	d.SetClipboard("copied on the phone")
	if text, _, err := src.Clipboard(id); err != nil || text != "" {
		t.Errorf("clipboard without a scrcpy capture: %q %v", text, err)
	}
}

// TestADBFilesAppsScreenshotREST: POST …/files and …/apps stream a body
// to the emulated device through the real adb server; GET …/screenshot
// returns its PNG; the demo device takes no files.
func TestADBFilesAppsScreenshotREST(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
	in := startInstance(t, adbConfig(srv))
	waitDevices(t, in, 5*time.Second, "device online", func(ds map[string]adbDevice) bool { return ds[d.Serial()].Width == 1280 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := in.Base + "/api/v1/devices/" + d.Serial()
	post := func(url string, body []byte) (int, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	body := bytes.Repeat([]byte("file body "), 200_000) // 2 MB
	if code, resp := post(base+"/files?name="+url.QueryEscape("../report 1.txt"), body); code != 201 || !strings.Contains(resp, `"/sdcard/Download/report 1.txt"`) {
		t.Fatalf("file: %d %s", code, resp)
	}
	if f := d.Files()["/sdcard/Download/report 1.txt"]; !bytes.Equal(f.Data, body) {
		t.Fatalf("device has %d bytes of %d", len(f.Data), len(body))
	}
	var apk bytes.Buffer
	zw := zip.NewWriter(&apk)
	w, _ := zw.Create("AndroidManifest.xml")
	_, _ = w.Write([]byte("manifest"))
	_ = zw.Close()
	if code, resp := post(base+"/apps", apk.Bytes()); code != 200 || !strings.Contains(resp, `"installed":true`) {
		t.Fatalf("apk: %d %s", code, resp)
	}
	if code, resp := post(base+"/apps", []byte("not an apk")); code != 400 || !strings.Contains(resp, "INSTALL_PARSE_FAILED_NOT_APK") {
		t.Fatalf("bad apk: %d %s", code, resp)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/screenshot", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	img, err := png.Decode(res.Body)
	if res.StatusCode != 200 || err != nil || img.Bounds().Dx() != 1280 {
		t.Fatalf("screenshot: %d %v", res.StatusCode, err)
	}
	if code, resp := post(in.Base+"/api/v1/devices/demo/files?name=a.txt", []byte("hi")); code != 403 {
		t.Fatalf("file to the demo: %d %s", code, resp)
	}
}

// TestDemoScreenshot: GET /api/v1/devices/demo/screenshot is the demo's
// latest keyframe decoded by the real ffmpeg — a 1280x720 PNG, before
// anyone watched and while someone does; with no ffmpeg it is a 503 that
// says so.
func TestDemoScreenshot(t *testing.T) {
	in := startInstance(t, defaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	shot := func(in *Instance) (int, []byte) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, in.Base+"/api/v1/devices/demo/screenshot", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode == 200 && res.Header.Get("Content-Type") != "image/png" {
			t.Errorf("content type %q", res.Header.Get("Content-Type"))
		}
		return res.StatusCode, b
	}
	check := func(when string) {
		code, b := shot(in)
		if code != 200 || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			t.Fatalf("%s: %d %.200q", when, code, b)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil || img.Bounds().Dx() != 1280 || img.Bounds().Dy() != 720 {
			t.Fatalf("%s: png %v %v (%d bytes)", when, img.Bounds(), err, len(b))
		}
	}
	check("before anyone watched")
	v := dialDevice(ctx, t, in, "demo", "viewer")
	if err := v.WaitFrames(ctx, 60, false); err != nil {
		t.Fatal(err)
	}
	check("while watched")

	noff := startInstance(t, defaultConfig().set("transcode", "ffmpeg", "/nonexistent/ffmpeg"))
	if code, b := shot(noff); code != 503 || errorCode(b) != "unavailable" || !strings.Contains(string(b), "cannot decode the device's picture (ffmpeg missing") {
		t.Fatalf("without ffmpeg: %d %s", code, b)
	}
}
