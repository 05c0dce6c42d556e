//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"mediasvc/e2e/adbdevice"
	"mediasvc/e2e/client"
)

// These tests run mediasvc against Debian's real adb server (a private one:
// its own port, HOME and TMPDIR) with emulated devices from e2e/adbdevice
// connected to it over TCP.

// adbDevice is one device as GET /api/v1/devices shows it.
type adbDevice struct {
	ID              string `json:"id"`
	Name            string `json:"name"`
	Model           string `json:"model"`
	State           string `json:"state"`
	Width           int    `json:"width"`
	Height          int    `json:"height"`
	Backend         string `json:"backend"`
	Breaker         string `json:"breaker"`
	Viewers         int    `json:"viewers"`
	CaptureRestarts int    `json:"capture_restarts"`
}

func listDevices(t *testing.T, in *Instance) map[string]adbDevice {
	t.Helper()
	code, body := httpStatus(context.Background(), in.Base+"/api/v1/devices")
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/devices: %d %s", code, body)
	}
	var resp struct {
		Devices []adbDevice `json:"devices"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("devices: %v: %s", err, body)
	}
	out := make(map[string]adbDevice, len(resp.Devices))
	for _, d := range resp.Devices {
		out[d.ID] = d
	}
	return out
}

// waitDevices polls the device list until cond holds, and returns how long
// it took.
func waitDevices(t *testing.T, in *Instance, within time.Duration, what string, cond func(map[string]adbDevice) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ds := listDevices(t, in)
		if cond(ds) {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s; devices %+v", what, within, ds)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// adbConfig is the default test config with ADB pointed at srv.
func adbConfig(srv *adbdevice.Server) Config {
	return defaultConfig().
		set("adb", "addr", srv.Addr()).
		set("adb", "retry_min", "100ms").
		set("adb", "retry_max", "1s").
		set("stream", "grace", "1s")
}

func dialDevice(ctx context.Context, t *testing.T, in *Instance, serial, role string) *client.Viewer {
	t.Helper()
	v, err := client.Dial(ctx, client.Config{BaseURL: in.Base, Device: serial, Role: role, Mode: client.ModeWS, Analyze: true})
	if err != nil {
		t.Fatalf("dial %s: %v", serial, err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

func waitState(ctx context.Context, v *client.Viewer, state string) (time.Time, error) {
	m, err := v.WaitMessage(ctx, func(m client.Message) bool { return m.Type == "state" && m.State == state })
	return m.Received, err
}

func TestADBDevicesPlayUnplugReplug(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d1 := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
	d2 := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Galaxy_S24", Width: 1080, Height: 2340})
	in := startInstance(t, adbConfig(srv))

	took := waitDevices(t, in, 5*time.Second, "both devices listed online", func(ds map[string]adbDevice) bool {
		a, b := ds[d1.Serial()], ds[d2.Serial()]
		return a.State == "online" && b.State == "online" && a.Width > 0 && b.Width > 0
	})
	ds := listDevices(t, in)
	t.Logf("both devices listed online with their size %s after the instance was ready: %+v %+v", took.Round(time.Millisecond), ds[d1.Serial()], ds[d2.Serial()])
	if ds["demo"].ID == "" {
		t.Errorf("the demo device is not listed alongside: %+v", ds)
	}
	if got := ds[d2.Serial()]; got.Model != "Galaxy S24" || got.Width != 1080 || got.Height != 2340 || got.Backend != "screenrecord" || got.Breaker != "closed" {
		t.Errorf("device 2: %+v", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for _, d := range []*adbdevice.Device{d1, d2} {
		v := dialDevice(ctx, t, in, d.Serial(), "viewer")
		if err := v.WaitFrames(ctx, 45, false); err != nil {
			t.Fatalf("%s: %v", d.Serial(), err)
		}
		st := v.Stats()
		checkPlayed(t, d.Serial(), st)
		t.Logf("%s: session POST → first keyframe %s (capture start included)", d.Serial(), st.FirstKeyframe.Sub(st.Start).Round(time.Millisecond))
		if d == d2 {
			_ = v.Close()
			continue
		}
		// Unplug: the viewer hears device_unavailable and keeps its session.
		sess := v.Session().SessionID
		unplugged := time.Now()
		d.Unplug()
		at, err := waitState(ctx, v, "device_unavailable")
		if err != nil {
			t.Fatalf("no device_unavailable after unplug: %v (messages %v)", err, msgTypes(v.Messages()))
		}
		t.Logf("unplug → device_unavailable %s", at.Sub(unplugged).Round(time.Millisecond))
		before := v.Stats().Frames
		replugged := time.Now()
		if _, err := d.Start(ctx); err != nil {
			t.Fatalf("replug: %v", err)
		}
		if _, err := waitState(ctx, v, "device_available"); err != nil {
			t.Fatalf("no device_available after replug: %v", err)
		}
		if err := v.WaitFrames(ctx, before+30, false); err != nil {
			t.Fatalf("frames did not resume after replug: %v", err)
		}
		t.Logf("replug → 30 more frames %s, same session %s", time.Since(replugged).Round(time.Millisecond), sess)
		if code, body := httpStatus(ctx, in.Base+"/api/v1/sessions/"+sess); code != http.StatusOK {
			t.Errorf("session gone after replug: %d %s", code, body)
		}
	}
}

func TestADBScreenrecordRestartsSeamlessly(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7", RecordStartDelay: 300 * time.Millisecond})
	in := startInstance(t, adbConfig(srv).
		set("adb", "screenrecord", map[string]any{"time_limit": "3s", "restart_lead": "1s"}))
	waitDevices(t, in, 5*time.Second, "device online", func(ds map[string]adbDevice) bool { return ds[d.Serial()].Width > 0 })

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	v := dialDevice(ctx, t, in, d.Serial(), "viewer")
	if err := v.WaitFrames(ctx, 30*10, false); err != nil { // ~10 s: three restarts
		t.Fatal(err)
	}
	st := v.Stats()
	checkPlayed(t, "restarting viewer", st)
	restarts := listDevices(t, in)[d.Serial()].CaptureRestarts
	if restarts < 2 {
		t.Errorf("capture_restarts %d after ~10 s with a 3 s time limit, want ≥ 2", restarts)
	}
	var maxGap time.Duration
	for i := 1; i < len(st.FrameArrivals); i++ {
		maxGap = max(maxGap, st.FrameArrivals[i].Sub(st.FrameArrivals[i-1]))
	}
	t.Logf("screenrecord runs %d, capture_restarts %d, largest gap between frames at the client %s over %d frames",
		len(d.Recordings()), restarts, maxGap.Round(time.Millisecond), len(st.FrameArrivals))
	if maxGap > time.Second {
		t.Errorf("a gap of %s between frames, want ≤ 1 s", maxGap)
	}
	if st.BadFrames > 0 && st.LostPackets == 0 {
		t.Errorf("%d bad frames across restarts: %q", st.BadFrames, st.Problems)
	}
	if msgs := v.Messages(); slices.ContainsFunc(msgs, func(m client.Message) bool { return m.State == "device_unavailable" }) {
		t.Errorf("viewer was told device_unavailable across a planned restart")
	}
	for _, r := range d.Recordings() {
		if r.TimeLimit != 3*time.Second || r.BitRate <= 0 {
			t.Errorf("recording %+v", r)
		}
	}

	// A late joiner on a device whose GOP is 1 s starts at the cached
	// keyframe (screenrecord cannot make one on demand).
	late := dialDevice(ctx, t, in, d.Serial(), "viewer")
	if err := late.WaitFrames(ctx, 10, false); err != nil {
		t.Fatal(err)
	}
	lst := late.Stats()
	checkPlayed(t, "late joiner", lst)
	t.Logf("late joiner: POST → first keyframe %s, connected → first keyframe %s",
		lst.FirstKeyframe.Sub(lst.Start).Round(time.Millisecond), lst.FirstKeyframe.Sub(lst.Connected).Round(time.Millisecond))
}

func TestADBControllerInput(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7", Width: 1080, Height: 1920})
	in := startInstance(t, adbConfig(srv))
	waitDevices(t, in, 5*time.Second, "device online", func(ds map[string]adbDevice) bool { return ds[d.Serial()].Width == 1080 })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ctl := dialDevice(ctx, t, in, d.Serial(), "controller")
	if err := ctl.WaitFrames(ctx, 5, false); err != nil {
		t.Fatal(err)
	}
	// The clip is 1280x720 and the display 1080x1920 (portrait): the
	// display sits letterboxed in the video, as screenrecord draws a
	// rotated screen, as a 405x720 picture from x=437.5 (scale 0.375), so
	// video (x,y) is the display's ((x-437.5)/0.375, y/0.375).
	var lat []time.Duration
	for i := range 10 {
		d.ResetInputs()
		x, y := 440+40*i, 72*i
		sent := time.Now()
		if err := ctl.SendJSON(ctx, map[string]any{"type": "input", "action": "tap", "x": x, "y": y}); err != nil {
			t.Fatal(err)
		}
		got, err := d.WaitInputs(ctx, 1)
		if err != nil {
			t.Fatalf("tap %d not received: %v", i, err)
		}
		lat = append(lat, time.Since(sent))
		if want := fmt.Sprintf("tap %d %d", int((float64(x)-437.5)/0.375), int(float64(y)/0.375)); got[0] != want {
			t.Errorf("device got %q, want %q", got[0], want)
		}
	}
	slices.Sort(lat)
	t.Logf("input latency (WebSocket send → device recorded), n=%d: p50 %s max %s", len(lat), pct(lat, 50), lat[len(lat)-1])

	// A tap on the letterbox bar, outside the display's picture, is
	// refused and reaches nothing.
	d.ResetInputs()
	if err := ctl.SendJSON(ctx, map[string]any{"type": "input", "action": "tap", "x": 100, "y": 360}); err != nil {
		t.Fatal(err)
	}
	if m, err := ctl.WaitMessage(ctx, func(m client.Message) bool { return m.Type == "error" }); err != nil || m.Code != "invalid_input" {
		t.Errorf("tap on the bar: %+v %v, want error invalid_input", m, err)
	}

	d.ResetInputs()
	for _, m := range []map[string]any{
		{"type": "input", "action": "key", "key": "Enter"},
		{"type": "input", "action": "text", "text": "it's a test; rm -rf /"},
		{"type": "input", "action": "back"},
	} {
		if err := ctl.SendJSON(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	got, err := d.WaitInputs(ctx, 3)
	if err != nil {
		t.Fatalf("inputs: %v (got %q)", err, d.Inputs())
	}
	t.Logf("device recorded %q", got)
	if !strings.Contains(got[0], "66") || !strings.Contains(got[1], "it's%sa%stest;%srm%s-rf%s/") || !strings.Contains(got[2], "4") {
		t.Errorf("device recorded %q", got)
	}

	// A viewer may not send input.
	viewer := dialDevice(ctx, t, in, d.Serial(), "viewer")
	if err := viewer.SendJSON(ctx, map[string]any{"type": "input", "action": "tap", "x": 1, "y": 1}); err != nil {
		t.Fatal(err)
	}
	m, err := viewer.WaitMessage(ctx, func(m client.Message) bool { return m.Type == "error" })
	if err != nil || m.Code != "forbidden" {
		t.Errorf("viewer input: %+v %v", m, err)
	}
}

func TestADBBreakerOpensAndRecovers(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
	in := startInstance(t, adbConfig(srv).
		set("adb", "breaker", map[string]any{"failures": 2, "open_for": "3s"}).
		set("adb", "keyframe_timeout", "2s"))
	waitDevices(t, in, 5*time.Second, "device online", func(ds map[string]adbDevice) bool { return ds[d.Serial()].Width > 0 })

	d.SetFault(adbdevice.FaultRefuseOpen, true)
	whep := func() (int, time.Duration) {
		start := time.Now()
		resp, body := do(t, http.MethodPost, in.Base+"/whep/"+d.Serial(), "application/sdp", []byte(testOffer(t)), nil)
		if resp.StatusCode == http.StatusCreated {
			if loc := resp.Header.Get("Location"); loc != "" {
				do(t, http.MethodDelete, in.Base+loc, "", nil, nil)
			}
		} else {
			t.Logf("WHEP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		return resp.StatusCode, time.Since(start)
	}
	for i := range 2 {
		if code, _ := whep(); code != http.StatusServiceUnavailable {
			t.Fatalf("attempt %d on a refusing device: %d, want 503", i, code)
		}
	}
	if b := listDevices(t, in)[d.Serial()].Breaker; b != "open" {
		t.Fatalf("breaker %q after 2 failures, want open", b)
	}
	runs := len(d.Recordings())
	code, took := whep()
	if code != http.StatusServiceUnavailable {
		t.Fatalf("with the breaker open: %d, want 503", code)
	}
	t.Logf("breaker open: WHEP refused in %s", took.Round(time.Millisecond))
	if len(d.Recordings()) != runs {
		t.Errorf("screenrecord started while the breaker was open")
	}

	d.SetFault(adbdevice.FaultRefuseOpen, false)
	time.Sleep(3500 * time.Millisecond)
	if b := listDevices(t, in)[d.Serial()].Breaker; b != "half-open" {
		t.Errorf("breaker %q after open_for, want half-open", b)
	}
	if code, _ := whep(); code != http.StatusCreated {
		t.Fatalf("healthy device after open_for: %d, want 201", code)
	}
	if b := listDevices(t, in)[d.Serial()].Breaker; b != "closed" {
		t.Errorf("breaker %q after a good probe, want closed", b)
	}
}

// testOffer returns a recvonly H.264 offer from a pion peer.
func testOffer(t *testing.T) string {
	t.Helper()
	api, err := client.NewAPI(true)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}

// TestADBLateJoinerLongGOP: screenrecord cannot make a keyframe on demand
// and real devices send one every ~10 s, so a late joiner starts from the
// group of pictures the fanout's ring keeps.
func TestADBLateJoinerLongGOP(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7", Clip: adbdevice.ClipGOP10()})
	in := startInstance(t, adbConfig(srv))
	waitDevices(t, in, 5*time.Second, "device online", func(ds map[string]adbDevice) bool { return ds[d.Serial()].Width > 0 })

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	first := dialDevice(ctx, t, in, d.Serial(), "viewer")
	if err := first.WaitFrames(ctx, 10, false); err != nil {
		t.Fatal(err)
	}
	start := first.Stats().FirstKeyframe
	for i, after := range []time.Duration{4 * time.Second, 7 * time.Second} {
		time.Sleep(time.Until(start.Add(after)))
		v := dialDevice(ctx, t, in, d.Serial(), "viewer")
		if err := v.WaitFrames(ctx, 10, false); err != nil {
			t.Fatalf("joiner %d: %v", i, err)
		}
		st := v.Stats()
		_ = v.Close()
		checkPlayed(t, fmt.Sprintf("joiner %d s into a 10 s GOP", after/time.Second), st)
		t.Logf("joiner %s into a 10 s GOP: POST → first keyframe %s, connected → first keyframe %s, offer → first keyframe %s",
			after, st.FirstKeyframe.Sub(st.Start).Round(time.Millisecond), st.FirstKeyframe.Sub(st.Connected).Round(time.Millisecond),
			st.FirstKeyframe.Sub(st.OfferSent).Round(time.Millisecond))
	}
}

// TestADBScreenrecordNoLimitOnAndroid14: a device whose screenrecord --help
// offers "Set to 0" records with --time-limit 0 (no restarts needed); an
// older one with the 180 s maximum.
func TestADBScreenrecordNoLimitOnAndroid14(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d14 := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_8", SDK: 34})
	d11 := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_5", SDK: 30})
	in := startInstance(t, adbConfig(srv))
	waitDevices(t, in, 5*time.Second, "devices online", func(ds map[string]adbDevice) bool {
		return ds[d14.Serial()].Width > 0 && ds[d11.Serial()].Width > 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for d, want := range map[*adbdevice.Device]time.Duration{d14: 0, d11: 180 * time.Second} {
		v := dialDevice(ctx, t, in, d.Serial(), "viewer")
		if err := v.WaitFrames(ctx, 10, false); err != nil {
			t.Fatal(err)
		}
		_ = v.Close()
		recs := d.Recordings()
		if len(recs) == 0 || recs[0].TimeLimit != want {
			t.Errorf("%s: recordings %+v, want time limit %s", d.Serial(), recs, want)
		}
	}
}

// TestADBInputRateLimit: a controller past its input rate gets rate_limited
// errors and the device sees no more than the bucket lets through.
func TestADBInputRateLimit(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
	in := startInstance(t, adbConfig(srv).set("limits", "input_rate", 2).set("limits", "input_burst", 3))
	waitDevices(t, in, 5*time.Second, "device online", func(ds map[string]adbDevice) bool { return ds[d.Serial()].Width > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctl := dialDevice(ctx, t, in, d.Serial(), "controller")
	if err := ctl.WaitFrames(ctx, 5, false); err != nil {
		t.Fatal(err)
	}
	d.ResetInputs()
	start := time.Now()
	for i := range 10 {
		if err := ctl.SendJSON(ctx, map[string]any{"type": "input", "action": "tap", "x": i, "y": i}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ctl.WaitMessage(ctx, func(m client.Message) bool { return m.Type == "error" && m.Code == "rate_limited" }); err != nil {
		t.Fatalf("no rate_limited error: %v (messages %v)", err, msgTypes(ctl.Messages()))
	}
	time.Sleep(500 * time.Millisecond)
	got := d.Inputs()
	// A burst of 3 plus at most 2/s refill while the 10 messages went out.
	allowed := 3 + int(2*time.Since(start).Seconds()) + 1
	t.Logf("10 taps sent at once: the device got %d (%q)", len(got), got)
	if len(got) < 3 || len(got) > allowed {
		t.Errorf("device got %d taps, want 3..%d", len(got), allowed)
	}
}

// scrcpyConfig is adbConfig on srv with the scrcpy backend at the pinned
// version, opts (scrcpy options) over it, and a stand-in server jar: the
// emulated device checks only that it was pushed.
func scrcpyConfig(t *testing.T, srv *adbdevice.Server, opts map[string]any) Config {
	t.Helper()
	jar := filepath.Join(t.TempDir(), "scrcpy-server-v"+adbdevice.ScrcpyVersion)
	if err := os.WriteFile(jar, []byte("not really a jar: the emulated device only checks it was pushed"), 0o644); err != nil {
		t.Fatal(err)
	}
	sc := map[string]any{"server": jar, "version": adbdevice.ScrcpyVersion}
	maps.Copy(sc, opts)
	return adbConfig(srv).set("adb", "backend", "scrcpy").set("adb", "scrcpy", sc)
}
