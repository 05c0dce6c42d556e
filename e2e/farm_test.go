//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"mediasvc/e2e/adbdevice"
	"mediasvc/e2e/client"
)

// The device-farm tests (issue 13): control handoff, reservations, audit
// and group input, over the emulated ADB devices, with two instances
// sharing a real Redis, and headless Chromium as one of the users.

var farmKeys = map[string]string{
	"alice": "alice-key-0123456789",
	"bob":   "bob-key-0123456789",
	"root":  "root-key-0123456789",
}

// farmConfig is an instance on Redis srv and adb server as, with the
// three farm keys (root the admin) and a short control grace.
func farmConfig(rs *redisEnv, as *adbdevice.Server, id string) Config {
	cfg := redisConfig(rs, id)
	cfg.set("adb", "addr", as.Addr())
	cfg.set("adb", "retry_min", "100ms")
	cfg.set("adb", "retry_max", "1s")
	cfg.set("stream", "grace", "1s")
	cfg.set("auth", "api_keys", farmKeys)
	cfg.set("farm", "admins", []string{"root"})
	cfg.set("control", "grace", "2s")
	return cfg
}

// api sends a JSON request as key's owner and returns the status and
// body.
func api(t *testing.T, method, url, who string, body any) (int, []byte) {
	t.Helper()
	var b []byte
	ct := ""
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
		ct = "application/json"
	}
	hdr := http.Header{}
	if who != "" {
		hdr.Set("Authorization", "Bearer "+farmKeys[who])
	}
	resp, rb := do(t, method, url, ct, b, hdr)
	return resp.StatusCode, rb
}

type holderJSON struct {
	Session    string    `json:"session_id"`
	Subject    string    `json:"subject"`
	GraceUntil time.Time `json:"grace_until"`
}

type controlJSON struct {
	Controllers []holderJSON `json:"controllers"`
	Queue       []holderJSON `json:"queue"`
}

func subjects(hs []holderJSON) string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Subject)
	}
	return strings.Join(out, ",")
}

// deviceControl returns who controls serial and who waits, as in GET
// /api/v1/devices/{id} on in.
func deviceControl(t *testing.T, in *Instance, serial, who string) (controllers, queue string) {
	t.Helper()
	code, body := api(t, "GET", in.Base+"/api/v1/devices/"+url.PathEscape(serial), who, nil)
	if code != http.StatusOK {
		t.Fatalf("GET device: %d %s", code, body)
	}
	var d struct {
		Control controlJSON `json:"control"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatalf("device: %v: %s", err, body)
	}
	return subjects(d.Control.Controllers), subjects(d.Control.Queue)
}

// waitOnline waits until in lists every serial with a screen size.
func waitOnline(t *testing.T, in *Instance, serials ...string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := api(t, "GET", in.Base+"/api/v1/devices", "root", nil)
		var resp struct {
			Devices []adbDevice `json:"devices"`
		}
		_ = json.Unmarshal(body, &resp)
		online := 0
		for _, d := range resp.Devices {
			for _, s := range serials {
				if d.ID == s && d.Width > 0 {
					online++
				}
			}
		}
		if code == http.StatusOK && online == len(serials) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("devices %v not online within 15s: %d %s", serials, code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func dialAs(ctx context.Context, t *testing.T, in *Instance, serial, role, who string) *client.Viewer {
	t.Helper()
	v, err := client.Dial(ctx, client.Config{BaseURL: in.Base, Device: serial, Role: role, Mode: client.ModeWS, APIKey: farmKeys[who]})
	if err != nil {
		t.Fatalf("dial %s as %s: %v", serial, who, err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

func waitYou(ctx context.Context, t *testing.T, v *client.Viewer, you string) client.Message {
	t.Helper()
	m, err := v.WaitMessage(ctx, func(m client.Message) bool { return m.Type == "control" && m.You == you })
	if err != nil {
		t.Fatalf("session %s never told %q: %v (messages %+v)", v.Session().SessionID, you, err, lastMessages(v, 5))
	}
	return m
}

func lastMessages(v *client.Viewer, n int) []client.Message {
	ms := v.Messages()
	if len(ms) > n {
		ms = ms[len(ms)-n:]
	}
	return ms
}

// openPage starts Chromium on in's viewer page as who and opens serial.
func openPage(t *testing.T, in *Instance, serial, who string) context.Context {
	t.Helper()
	bctx := startChromium(t)
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.Navigate(in.Base+"/")); err != nil {
		t.Fatalf("open the viewer page: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`sessionStorage.setItem('mediasvc.apiKey', %q), true`, farmKeys[who]))); err != nil {
		t.Fatalf("store the API key: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(in.Base+"/?device="+url.QueryEscape(serial))); err != nil {
		t.Fatalf("open the device: %v", err)
	}
	return ctx
}

// pageControl returns where the page's session stands ("controller",
// "queued", "viewer"; "" before the first control message).
func pageControl(ctx context.Context) string {
	you, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(window.mediasvc.control && window.mediasvc.control.you) || ''`))
	return you
}

// pageText returns the text content of the element sel on the page.
func pageText(ctx context.Context, sel string) string {
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ''`, sel)))
	return s
}

func waitPage(ctx context.Context, t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if ctx.Err() != nil {
			t.Fatalf("page: %s: %v", what, ctx.Err())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

func clickVideoCentre(ctx context.Context, t *testing.T) {
	t.Helper()
	type rect struct{ X, Y, W, H float64 }
	r, err := chromedp.Run(ctx, chromedp.Evaluate[rect](`(() => { const b = document.querySelector('#video').getBoundingClientRect(); return {X: b.x, Y: b.y, W: b.width, H: b.height}; })()`))
	if err != nil {
		t.Fatalf("video rect: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.MouseClickXY(r.X+r.W/2, r.Y+r.H/2)); err != nil {
		t.Fatalf("click: %v", err)
	}
}

// TestFarmControlHandoff: alice controls a device through instance a;
// bob's Chromium on instance b is queued, sees alice in control, and his
// clicks reach nothing. alice's network drops: after control.grace bob's
// page is the controller and his click arrives as a tap. root (admin)
// takes control from bob on a. Every step is in the audit trail, which
// only root may read, and in the Redis stream.
func TestFarmControlHandoff(t *testing.T) {
	rs := singleRedis(t)
	as := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, as, adbdevice.Options{Model: "Pixel_7"})
	a := startInstance(t, farmConfig(rs, as, "a"))
	b := startInstance(t, farmConfig(rs, as, "b"))
	serial := d.Serial()
	waitOnline(t, a, serial)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now().UTC()

	alice := dialAs(ctx, t, a, serial, "controller", "alice")
	waitYou(ctx, t, alice, "controller")

	page := openPage(t, b, serial, "bob")
	waitPage(page, t, "bob queued", func() bool { return pageControl(page) == "queued" })
	info := pageText(page, "#control-info")
	if !strings.Contains(info, "In control: alice") || !strings.Contains(info, "waiting: bob") {
		t.Errorf("bob's page shows %q, want alice in control and bob waiting", info)
	}
	for _, in := range []*Instance{a, b} {
		if c, q := deviceControl(t, in, serial, "bob"); c != "alice" || q != "bob" {
			t.Errorf("GET device on %s: controllers %q queue %q, want alice / bob", in.Base, c, q)
		}
	}
	// Wait for bob's picture, then click: nothing reaches the device.
	waitPage(page, t, "bob's video", func() bool {
		st, err := chromedp.Run(page, chromedp.Evaluate[pageStats](pcStatsJS, chromedp.EvalAwaitPromise))
		return err == nil && st.FramesDecoded > 5
	})
	d.ResetInputs()
	clickVideoCentre(page, t)
	waitPage(page, t, "bob's refusal", func() bool {
		return strings.Contains(pageText(page, "#player-msg"), "not in control")
	})
	if in := d.Inputs(); len(in) != 0 {
		t.Fatalf("a queued session's click reached the device: %q", in)
	}

	// alice's network drops. Right after, she still holds control (the
	// grace); then bob's page becomes the controller.
	dropped := time.Now()
	alice.DropWS()
	time.Sleep(300 * time.Millisecond)
	if c, _ := deviceControl(t, b, serial, "bob"); c != "alice" {
		t.Fatalf("controllers %q right after alice's drop, want alice during the grace", c)
	}
	handoff := waitPage(page, t, "bob in control", func() bool { return pageControl(page) == "controller" })
	t.Logf("handoff after a dropped controller: %s (control.grace 2s)", (time.Since(dropped)).Round(100*time.Millisecond))
	if time.Since(dropped) < 2*time.Second {
		t.Errorf("bob got control %s after alice dropped, before the 2s grace", time.Since(dropped))
	}
	_ = handoff
	d.ResetInputs()
	clickVideoCentre(page, t)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	got, err := d.WaitInputs(wctx, 1)
	wcancel()
	if err != nil || !strings.HasPrefix(got[0], "tap ") {
		t.Fatalf("bob's click as controller: %q %v", got, err)
	}

	// root takes control on a; bob's page is told it is a viewer now.
	root := dialAs(ctx, t, a, serial, "controller", "root")
	waitYou(ctx, t, root, "queued")
	if err := root.SendJSON(ctx, map[string]string{"type": "control", "action": "take"}); err != nil {
		t.Fatal(err)
	}
	waitYou(ctx, t, root, "controller")
	waitPage(page, t, "bob displaced", func() bool { return pageControl(page) == "viewer" })
	// bob may not take it back.
	if _, err := chromedp.Run(page, chromedp.Evaluate[bool](`document.querySelector('#ctl-take').click(), true`)); err != nil {
		t.Fatal(err)
	}
	waitPage(page, t, "bob's take refused", func() bool { return strings.Contains(pageText(page, "#player-msg"), "only an admin") })

	// The audit trail: root only.
	if code, body := api(t, "GET", b.Base+"/api/v1/audit", "bob", nil); code != http.StatusForbidden {
		t.Fatalf("audit as bob = %d %s, want 403", code, body)
	}
	q := url.Values{"device": {serial}, "since": {start.Format(time.RFC3339Nano)}}
	code, body := api(t, "GET", b.Base+"/api/v1/audit?"+q.Encode(), "root", nil)
	if code != http.StatusOK {
		t.Fatalf("audit as root = %d %s", code, body)
	}
	var trail struct {
		Events []struct {
			Action, Subject, Outcome, Detail, Instance string
			Session                                    string `json:"session_id"`
		} `json:"events"`
	}
	if err := json.Unmarshal(body, &trail); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range trail.Events {
		lines = append(lines, e.Action+" "+e.Subject+" "+e.Outcome)
	}
	joined := strings.Join(lines, "\n")
	for _, want := range []string{
		"control_request alice granted", "control_request bob queued", "input bob forbidden",
		"control_release alice ok", "control_granted bob ok", "input bob ok", "control_take root ok",
		"control_lost bob ok", "control_take bob forbidden",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("audit trail lacks %q:\n%s", want, joined)
		}
	}
	code, body = api(t, "GET", a.Base+"/api/v1/audit?subject=alice&device="+url.QueryEscape(serial), "root", nil)
	if code != http.StatusOK || strings.Contains(string(body), `"subject":"bob"`) || !strings.Contains(string(body), `"subject":"alice"`) {
		t.Errorf("audit ?subject=alice on a = %d %s", code, body)
	}
	if code, _ := api(t, "GET", a.Base+"/api/v1/audit?since=yesterday", "root", nil); code != http.StatusBadRequest {
		t.Errorf("audit ?since=yesterday = %d, want 400", code)
	}
	rdb := rs.rdb
	if n := rdb.XLen(ctx, "mediasvc:audit").Val(); n < int64(len(trail.Events)) {
		t.Errorf("Redis stream mediasvc:audit holds %d entries, fewer than the %d events", n, len(trail.Events))
	}
	if ttl := rdb.PTTL(ctx, "mediasvc:control:"+serial).Val(); ttl <= 0 {
		t.Errorf("control key TTL = %v, want one", ttl)
	}
}

// TestFarmReservations: alice books a device on instance a; bob is
// refused control on b with 423 naming alice and the end, may still
// watch (his Chromium falls back to viewing), may neither extend nor
// cancel alice's booking, nor overlap it; alice extends it on b; after
// she cancels, bob controls. The booking lives in Redis until its end.
func TestFarmReservations(t *testing.T) {
	rs := singleRedis(t)
	as := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, as, adbdevice.Options{Model: "Pixel_7"})
	a := startInstance(t, farmConfig(rs, as, "a"))
	b := startInstance(t, farmConfig(rs, as, "b"))
	serial := d.Serial()
	waitOnline(t, a, serial)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := a.Base + "/api/v1/devices/" + url.PathEscape(serial) + "/reservations"

	until := time.Now().Add(10 * time.Minute).UTC().Truncate(time.Second)
	code, body := api(t, "POST", res, "alice", map[string]any{"until": until})
	if code != http.StatusCreated {
		t.Fatalf("alice reserves: %d %s", code, body)
	}
	var booking struct {
		ID      string    `json:"id"`
		Subject string    `json:"subject"`
		Until   time.Time `json:"until"`
	}
	json.Unmarshal(body, &booking)
	if booking.Subject != "alice" || !booking.Until.Equal(until) {
		t.Fatalf("booking = %+v", booking)
	}

	// bob on b: a controller session is refused with who and until.
	code, body = api(t, "POST", b.Base+"/api/v1/sessions", "bob", map[string]string{"device_id": serial, "role": "controller"})
	var refusal struct {
		Error struct {
			Code    string    `json:"code"`
			Subject string    `json:"subject"`
			Until   time.Time `json:"until"`
		} `json:"error"`
	}
	json.Unmarshal(body, &refusal)
	if code != http.StatusLocked || refusal.Error.Code != "reserved" || refusal.Error.Subject != "alice" || !refusal.Error.Until.Equal(until) {
		t.Fatalf("bob's controller session = %d %s, want 423 reserved for alice until %s", code, body, until)
	}
	// bob's browser falls back to watching.
	page := openPage(t, b, serial, "bob")
	waitPage(page, t, "bob watches", func() bool {
		st, err := chromedp.Run(page, chromedp.Evaluate[pageStats](pcStatsJS, chromedp.EvalAwaitPromise))
		return err == nil && st.FramesDecoded > 5
	})
	if role := pageText(page, "#role"); role != "viewer" {
		t.Errorf("bob's page role %q, want viewer", role)
	}
	// alice may control through either instance.
	alice := dialAs(ctx, t, b, serial, "controller", "alice")
	waitYou(ctx, t, alice, "controller")

	// Uploads obey the booking too, and are audited: bob's push is
	// refused with who holds the device, alice's lands on the device.
	files := a.Base + "/api/v1/devices/" + url.PathEscape(serial) + "/files?name=notes.txt"
	upload := func(who string) (int, []byte) {
		resp, rb := do(t, "POST", files, "application/octet-stream", []byte("booked"), http.Header{"Authorization": {"Bearer " + farmKeys[who]}})
		return resp.StatusCode, rb
	}
	if code, body := upload("bob"); code != http.StatusLocked || !strings.Contains(string(body), `"subject":"alice"`) {
		t.Errorf("bob pushes a file to alice's booking = %d %s, want 423 naming alice", code, body)
	}
	if code, body := upload("alice"); code != http.StatusCreated || string(d.Files()["/sdcard/Download/notes.txt"].Data) != "booked" {
		t.Errorf("alice pushes a file = %d %s", code, body)
	}
	code, body = api(t, "GET", a.Base+"/api/v1/audit?device="+url.QueryEscape(serial), "root", nil)
	var pushes struct {
		Events []struct{ Action, Subject, Outcome, Detail string } `json:"events"`
	}
	json.Unmarshal(body, &pushes)
	var got []string
	for _, e := range pushes.Events {
		if e.Action == "file_push" {
			got = append(got, e.Subject+":"+e.Outcome+":"+e.Detail)
		}
	}
	if want := `bob:reserved:"notes.txt", 6 bytes alice:ok:"notes.txt", 6 bytes`; code != http.StatusOK || strings.Join(got, " ") != want {
		t.Errorf("audit of the pushes = %d %q, want %q", code, got, want)
	}

	bres := b.Base + "/api/v1/devices/" + url.PathEscape(serial) + "/reservations"
	code, body = api(t, "GET", bres, "bob", nil)
	if code != http.StatusOK || !strings.Contains(string(body), booking.ID) {
		t.Fatalf("list on b = %d %s", code, body)
	}
	later := until.Add(10 * time.Minute)
	if code, body := api(t, "PATCH", bres+"/"+booking.ID, "bob", map[string]any{"until": later}); code != http.StatusForbidden {
		t.Errorf("bob extends alice's booking = %d %s, want 403", code, body)
	}
	if code, body := api(t, "DELETE", bres+"/"+booking.ID, "bob", nil); code != http.StatusForbidden {
		t.Errorf("bob cancels alice's booking = %d %s, want 403", code, body)
	}
	if code, body := api(t, "PATCH", bres+"/"+booking.ID, "alice", map[string]any{"until": later}); code != http.StatusOK {
		t.Fatalf("alice extends on b = %d %s", code, body)
	}
	// An overlapping booking is refused with who holds it; one after it
	// is taken; bad times are 400.
	if code, body := api(t, "POST", bres, "bob", map[string]any{"start": later.Add(-time.Minute), "until": later.Add(time.Hour)}); code != http.StatusLocked || !strings.Contains(string(body), `"subject":"alice"`) {
		t.Errorf("bob overlaps = %d %s, want 423 naming alice", code, body)
	}
	if code, body := api(t, "POST", bres, "bob", map[string]any{"start": later, "until": later.Add(time.Hour)}); code != http.StatusCreated {
		t.Errorf("bob books after alice = %d %s", code, body)
	}
	for _, bad := range []map[string]any{{}, {"until": "tomorrow"}, {"until": time.Now().Add(-time.Hour)}, {"until": time.Now().Add(48 * time.Hour)}, {"until": later, "subject": "carol"}} {
		code, body := api(t, "POST", bres, "bob", bad)
		if code != http.StatusBadRequest && code != http.StatusForbidden {
			t.Errorf("reserve %v = %d %s, want 400 (403 for another subject)", bad, code, body)
		}
	}

	rdb := rs.rdb
	if ttl := rdb.PTTL(ctx, "mediasvc:{farm}reservations:"+serial).Val(); ttl < 70*time.Minute || ttl > 81*time.Minute {
		t.Errorf("reservations key TTL = %v, want until bob's booking ends (~80m)", ttl)
	}

	if code, body := api(t, "DELETE", bres+"/"+booking.ID, "alice", nil); code != http.StatusNoContent {
		t.Fatalf("alice cancels = %d %s", code, body)
	}
	code, body = api(t, "POST", a.Base+"/api/v1/sessions", "bob", map[string]string{"device_id": serial, "role": "controller"})
	if code != http.StatusCreated {
		t.Fatalf("bob's controller session after the cancel = %d %s", code, body)
	}
	code, body = api(t, "GET", a.Base+"/api/v1/reservations", "root", nil)
	if code != http.StatusOK || strings.Contains(string(body), booking.ID) || !strings.Contains(string(body), `"subject":"bob"`) {
		t.Errorf("all reservations = %d %s, want bob's only", code, body)
	}
}

// TestFarmGroupInput: alice controls two devices of different screen
// sizes and bob a third; one POST /api/v1/input taps the same spot of
// each picture on alice's two, and is refused on bob's.
func TestFarmGroupInput(t *testing.T) {
	rs := singleRedis(t)
	as := adbdevice.StartTestServer(t)
	d1 := adbdevice.PlugTestDevice(t, as, adbdevice.Options{Model: "Pixel_7", Width: 1280, Height: 720})
	d2 := adbdevice.PlugTestDevice(t, as, adbdevice.Options{Model: "Pixel_8", Width: 1080, Height: 1920})
	d3 := adbdevice.PlugTestDevice(t, as, adbdevice.Options{Model: "Pixel_9", Width: 720, Height: 1280})
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	in := startInstance(t, farmConfig(rs, as, "a").
		set("metrics", "addr", metricsAddr).
		set("limits", "group_input_rate", 0.1).
		set("limits", "group_input_burst", 8))
	waitOnline(t, in, d1.Serial(), d2.Serial(), d3.Serial())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	waitYou(ctx, t, dialAs(ctx, t, in, d1.Serial(), "controller", "alice"), "controller")
	waitYou(ctx, t, dialAs(ctx, t, in, d2.Serial(), "controller", "alice"), "controller")
	waitYou(ctx, t, dialAs(ctx, t, in, d3.Serial(), "controller", "bob"), "controller")
	for _, d := range []*adbdevice.Device{d1, d2, d3} {
		d.ResetInputs()
	}
	devices := []string{d1.Serial(), d2.Serial(), d3.Serial()}
	code, body := api(t, "POST", in.Base+"/api/v1/input", "alice", map[string]any{
		"devices": devices, "input": map[string]any{"action": "tap", "x": 0.5, "y": 0.25},
	})
	if code != http.StatusOK {
		t.Fatalf("group input = %d %s", code, body)
	}
	var out struct {
		Results []struct {
			Device string `json:"device_id"`
			OK     bool   `json:"ok"`
			Status int    `json:"status"`
			Error  *struct {
				Code string `json:"code"`
			} `json:"error"`
		} `json:"results"`
	}
	json.Unmarshal(body, &out)
	if len(out.Results) != 3 || !out.Results[0].OK || !out.Results[1].OK || out.Results[2].OK || out.Results[2].Status != 403 || out.Results[2].Error.Code != "forbidden" {
		t.Fatalf("results = %s, want ok, ok, 403 forbidden", body)
	}
	for _, c := range []struct {
		d    *adbdevice.Device
		want string
	}{{d1, "tap 640 180"}, {d2, "tap 540 480"}} {
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		got, err := c.d.WaitInputs(wctx, 1)
		wcancel()
		if err != nil || got[0] != c.want {
			t.Errorf("%s recorded %q (%v), want %q", c.d.Serial(), got, err, c.want)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if got := d3.Inputs(); len(got) != 0 {
		t.Errorf("bob's device got alice's group input: %q", got)
	}
	// Bad requests: 400 as a whole; a bad coordinate per device.
	for _, bad := range []map[string]any{
		{"devices": []string{}, "input": map[string]any{"action": "home"}},
		{"devices": []string{d1.Serial(), d1.Serial()}, "input": map[string]any{"action": "home"}},
		{"devices": []string{d1.Serial()}, "input": map[string]any{"action": "tap", "x": "left"}},
	} {
		if code, body := api(t, "POST", in.Base+"/api/v1/input", "alice", bad); code != http.StatusBadRequest {
			t.Errorf("group input %v = %d %s, want 400", bad, code, body)
		}
	}
	code, body = api(t, "POST", in.Base+"/api/v1/input", "alice", map[string]any{"devices": []string{d1.Serial()}, "input": map[string]any{"action": "tap", "x": 1.5, "y": 0.5}})
	if code != http.StatusOK || !strings.Contains(string(body), "invalid_input") {
		t.Errorf("group tap at x=1.5 = %d %s, want a per-device invalid_input", code, body)
	}
	// A flood of group calls: past the subject's burst the whole call is
	// refused with 429 and Retry-After, and nothing reaches the device;
	// another subject's budget is its own.
	d1.ResetInputs()
	home := map[string]any{"devices": []string{d1.Serial()}, "input": map[string]any{"action": "home"}}
	sent, limited := 0, false
	for range 12 {
		resp, body := do(t, "POST", in.Base+"/api/v1/input", "application/json", mustJSON(t, home), http.Header{"Authorization": {"Bearer " + farmKeys["alice"]}})
		if resp.StatusCode == http.StatusTooManyRequests {
			if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"rate_limited"`) {
				t.Errorf("limited call = %v %s, want Retry-After and rate_limited", resp.Header, body)
			}
			limited = true
			break
		}
		sent++
	}
	if !limited {
		t.Fatalf("12 group calls in a row were all taken (burst 8)")
	}
	if n := metricSum(t, "http://"+metricsAddr, "media_rate_limited_total", `limit="group_input"`); n < 1 {
		t.Errorf("media_rate_limited_total{limit=group_input} = %v after a refusal", n)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	_, _ = d1.WaitInputs(wctx, sent)
	wcancel()
	time.Sleep(200 * time.Millisecond)
	if got := d1.Inputs(); len(got) != sent {
		t.Errorf("%d calls taken, device got %d inputs: %q", sent, len(got), got)
	}
	code, body = api(t, "POST", in.Base+"/api/v1/input", "bob", map[string]any{"devices": []string{d3.Serial()}, "input": map[string]any{"action": "home"}})
	if code != http.StatusOK {
		t.Errorf("bob's group call while alice is limited = %d %s", code, body)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFarmExpiredControllerReleased: a controller session that took
// control over REST lives on instance a, which is killed; once the
// session expires in Redis, instance b reaps it and releases its control
// (bob queued behind it over REST moves up).
func TestFarmExpiredControllerReleased(t *testing.T) {
	rs := singleRedis(t)
	as := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, as, adbdevice.Options{Model: "Pixel_7"})
	cfg := func(id string) Config {
		c := farmConfig(rs, as, id)
		c.set("session", "ttl", "3s")
		c.set("redis", "touch_throttle", "500ms")
		return c
	}
	a := startInstance(t, cfg("a"))
	b := startInstance(t, cfg("b"))
	serial := d.Serial()
	waitOnline(t, a, serial)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	code, body := api(t, "POST", a.Base+"/api/v1/sessions", "alice", map[string]string{"device_id": serial, "role": "controller"})
	if code != http.StatusCreated {
		t.Fatalf("alice's session: %d %s", code, body)
	}
	var sess struct {
		ID string `json:"session_id"`
	}
	json.Unmarshal(body, &sess)
	code, body = api(t, "POST", a.Base+"/api/v1/sessions/"+sess.ID+"/control", "alice", map[string]string{"action": "request"})
	if code != http.StatusOK || !strings.Contains(string(body), `"you":"controller"`) {
		t.Fatalf("alice requests control over REST: %d %s", code, body)
	}
	if code, body := api(t, "POST", a.Base+"/api/v1/sessions/"+sess.ID+"/control", "bob", map[string]string{"action": "release"}); code != http.StatusNotFound {
		t.Errorf("bob acting on alice's session = %d %s, want 404", code, body)
	}
	if code, body := api(t, "POST", a.Base+"/api/v1/sessions/"+sess.ID+"/control", "alice", map[string]string{"action": "jump"}); code != http.StatusBadRequest {
		t.Errorf("action jump = %d %s, want 400", code, body)
	}
	if c, _ := deviceControl(t, b, serial, "bob"); c != "alice" {
		t.Fatalf("controllers on b = %q, want alice", c)
	}

	killed := time.Now()
	if err := a.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.Done()
	for {
		if c, _ := deviceControl(t, b, serial, "bob"); c == "" {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("alice's control outlived her expired session")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("control released %s after its holder's instance was killed (session.ttl 3s)", time.Since(killed).Round(100*time.Millisecond))
	code, body = api(t, "GET", b.Base+"/api/v1/audit?subject=alice", "root", nil)
	if code != http.StatusOK || !strings.Contains(string(body), `"action":"control_release"`) || !strings.Contains(string(body), `"instance":"b"`) {
		t.Errorf("audit of the release = %d %s, want control_release recorded by b", code, body)
	}
}
