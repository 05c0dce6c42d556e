//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"mediasvc/e2e/adbdevice"
)

// The device wall (issue 13, item 3 and group control from it): headless
// Chromium on /wall over emulated devices on the real adb server, with a
// real Redis.

// countPCs wraps RTCPeerConnection before the page's script runs, so the
// test can count how many the page made.
const countPCs = `(() => {
  const Orig = window.RTCPeerConnection;
  window.__pcs = 0;
  window.RTCPeerConnection = function (...a) { window.__pcs++; return new Orig(...a); };
  window.RTCPeerConnection.prototype = Orig.prototype;
})();`

// wallTileJS is what the page knows of one tile: the server's state and
// counters (pushed every ws.stats_interval) and the decoder's frames.
type wallTileJS struct {
	State   string  `json:"state"`
	Mid     string  `json:"mid"`
	Packets float64 `json:"packets"`
	Frames  float64 `json:"frames"`
	Width   float64 `json:"vw"`
	Top     float64 `json:"top"`
}

const wallTilesJS = `(() => {
  const out = {};
  for (const [id, t] of Object.entries(window.mediasvcWall.tiles)) {
    const el = document.querySelector('.tile[data-device="' + CSS.escape(id) + '"]');
    const v = el && el.querySelector('video');
    const q = v && v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
    out[id] = { state: t.state, mid: t.mid || '', packets: t.packets_sent || 0, frames: q ? q.totalVideoFrames : 0,
      vw: v ? v.videoWidth : 0, top: el ? el.getBoundingClientRect().top : 0 };
  }
  return out;
})()`

func wallTiles(ctx context.Context) map[string]wallTileJS {
	m, _ := chromedp.Run(ctx, chromedp.Evaluate[map[string]wallTileJS](wallTilesJS))
	return m
}

// openWall starts Chromium (profile in dir) on in's wall as who.
func openWall(t *testing.T, in *Instance, who, dir string, timeout time.Duration) context.Context {
	t.Helper()
	bctx := startChromium(t, chromedp.UserDataDir(dir))
	ctx, cancel := context.WithTimeout(bctx, timeout)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.Navigate(in.Base+"/")); err != nil {
		t.Fatalf("open the viewer page: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`sessionStorage.setItem('mediasvc.apiKey', %q), true`, farmKeys[who]))); err != nil {
		t.Fatalf("store the API key: %v", err)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: countPCs}); err != nil {
		t.Fatalf("install the PeerConnection counter: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(in.Base+"/wall")); err != nil {
		t.Fatalf("open the wall: %v", err)
	}
	return ctx
}

// waitDecoding waits until every serial's tile decodes frames; it returns
// the tiles then.
func waitDecoding(ctx context.Context, t *testing.T, serials []string, frames float64) map[string]wallTileJS {
	t.Helper()
	var last map[string]wallTileJS
	waitPage(ctx, t, fmt.Sprintf("%d tiles decoding (last %+v)", len(serials), &last), func() bool {
		last = wallTiles(ctx)
		for _, s := range serials {
			if tl, ok := last[s]; !ok || tl.Frames < frames || tl.Width == 0 {
				return false
			}
		}
		return true
	})
	return last
}

func pageNumber(ctx context.Context, expr string) float64 {
	v, _ := chromedp.Run(ctx, chromedp.Evaluate[float64](expr))
	return v
}

// TestWall: three devices make three tiles, each decoding its own small
// screenrecord (--size, a low --bit-rate) on one PeerConnection with
// three receivers; a fourth device plugged later adds a tile without a
// reload (the server offers again); tiles scrolled out of view are paused
// (the server sends them nothing) and resume when scrolled back; a group
// tap from the wall lands on the selected devices alice controls and is
// refused, per device, where she does not; a click without a selection
// opens the full view.
func TestWall(t *testing.T) {
	rs := singleRedis(t)
	as := adbdevice.StartTestServer(t)
	d1 := adbdevice.PlugTestDevice(t, as, adbdevice.Options{Model: "Pixel_7", Width: 1280, Height: 720})
	d2 := adbdevice.PlugTestDevice(t, as, adbdevice.Options{Model: "Pixel_8", Width: 1080, Height: 1920})
	d3 := adbdevice.PlugTestDevice(t, as, adbdevice.Options{Model: "Pixel_9", Width: 720, Height: 1280})
	cfg := farmConfig(rs, as, "a")
	cfg.set("ws", "stats_interval", "500ms")
	in := startInstance(t, cfg)
	waitOnline(t, in, d1.Serial(), d2.Serial(), d3.Serial())
	ctx := openWall(t, in, "alice", t.TempDir(), 3*time.Minute)

	// The demo device's tile is the wall rendition of its capture (the
	// transcoder), the others' a second screenrecord each.
	serials := []string{d1.Serial(), d2.Serial(), d3.Serial(), "demo"}
	took := waitDecoding(ctx, t, serials, 10)
	t.Logf("4 tiles decoding: %+v", took)
	if n := pageNumber(ctx, `window.__pcs`); n != 1 {
		t.Fatalf("the wall made %v RTCPeerConnections, want 1", n)
	}
	if n := pageNumber(ctx, `window.mediasvcWall.pc.getReceivers().filter(r => r.track && r.track.kind === 'video').length`); n != 4 {
		t.Fatalf("the wall's connection has %v video receivers, want 4", n)
	}
	// Each tile is a second screenrecord of its device, small and at the
	// wall's bitrate; the main capture never ran. (On a loaded machine the
	// emulator's first encode of a size can outlast the capture's keyframe
	// timeout: the tile retries, with the same arguments.)
	for _, d := range []*adbdevice.Device{d1, d2, d3} {
		recs := d.Recordings()
		if len(recs) == 0 {
			t.Fatalf("%s never ran screenrecord", d.Serial())
		}
		for _, rec := range recs {
			w, h, _ := strings.Cut(rec.Size, "x")
			wi, _ := strconv.Atoi(w)
			hi, _ := strconv.Atoi(h)
			if rec.BitRate != 250_000 || wi == 0 || wi > 320 || hi == 0 || hi > 320 {
				t.Fatalf("%s screenrecords %+v, want each with --size within 320x320 and --bit-rate 250000", d.Serial(), recs)
			}
		}
	}
	if v, ok := wallMetric(t, in.Base, `media_wall_tiles{state="playing"}`); !ok || v != "4" {
		t.Fatalf("media_wall_tiles{state=playing} = %q, want 4", v)
	}
	if v, ok := wallMetric(t, in.Base, `media_transcoders_active{device_id="demo",rendition="wall"}`); !ok || v != "1" {
		t.Fatalf("media_transcoders_active{demo,wall} = %q, want 1", v)
	}

	// A device coming online adds a tile, no reload.
	offers := pageNumber(ctx, `window.mediasvcWall.offers`)
	d4 := adbdevice.PlugTestDevice(t, as, adbdevice.Options{Model: "Pixel_6", Width: 1280, Height: 720})
	serials = append(serials, d4.Serial())
	waitDecoding(ctx, t, serials, 10)
	if n := pageNumber(ctx, `window.mediasvcWall.offers`); n <= offers {
		t.Fatalf("offers %v → %v: the new tile came without a renegotiation", offers, n)
	}
	if n := pageNumber(ctx, `window.__pcs`); n != 1 {
		t.Fatalf("%v RTCPeerConnections after a device joined, want 1", n)
	}

	// Tall tiles: only the first row fits the window; the others are
	// paused and the server sends them nothing.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const s = document.createElement('style'); s.id = 'tall';
	  s.textContent = '#tiles { grid-template-columns: 1fr !important } .tile video { height: 1500px; aspect-ratio: auto !important }';
	  document.head.append(s); scrollTo(0, 0); return true; })()`)); err != nil {
		t.Fatal(err)
	}
	first := serials[0]
	for _, s := range serials[1:] {
		if s < first {
			first = s
		}
	}
	waitPage(ctx, t, "tiles out of view paused", func() bool {
		n := 0
		for id, tl := range wallTiles(ctx) {
			if id != first && tl.State == "paused" {
				n++
			}
		}
		return n == len(serials)-1
	})
	before := wallTiles(ctx)
	time.Sleep(2 * time.Second)
	after := wallTiles(ctx)
	for id := range after {
		if id == first {
			if after[id].Packets <= before[id].Packets {
				t.Errorf("the visible tile %s sent %v → %v packets", id, before[id].Packets, after[id].Packets)
			}
			continue
		}
		if after[id].Packets != before[id].Packets {
			t.Errorf("paused tile %s sent %v → %v packets", id, before[id].Packets, after[id].Packets)
		}
	}
	if v, _ := wallMetric(t, in.Base, `media_wall_tiles{state="paused"}`); v != strconv.Itoa(len(serials)-1) {
		t.Errorf("media_wall_tiles{state=paused} = %q, want %d", v, len(serials)-1)
	}
	// Scrolled back into view: resumed at a keyframe, decoding again.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.getElementById('tall').remove(), scrollTo(0, 0), true)`)); err != nil {
		t.Fatal(err)
	}
	frames := wallTiles(ctx)
	waitPage(ctx, t, "tiles resumed and decoding", func() bool {
		now := wallTiles(ctx)
		for _, s := range serials {
			if now[s].State != "playing" || now[s].Frames < frames[s].Frames+10 {
				return false
			}
		}
		return true
	})

	// Group tap: alice controls d1 and d2, bob d3, no one d4.
	waitYou(ctx, t, dialAs(ctx, t, in, d1.Serial(), "controller", "alice"), "controller")
	waitYou(ctx, t, dialAs(ctx, t, in, d2.Serial(), "controller", "alice"), "controller")
	waitYou(ctx, t, dialAs(ctx, t, in, d3.Serial(), "controller", "bob"), "controller")
	for _, d := range []*adbdevice.Device{d1, d2, d3, d4} {
		d.ResetInputs()
	}
	type rect struct{ X, Y, W, H float64 }
	r, err := chromedp.Run(ctx, chromedp.Evaluate[rect](fmt.Sprintf(`(() => {
	  document.getElementById('selall').click();
	  const v = document.querySelector('.tile[data-device=%q] video'); v.scrollIntoView();
	  const vw = v.videoWidth, vh = v.videoHeight, b = v.getBoundingClientRect(), s = Math.min(b.width / vw, b.height / vh);
	  return {X: b.x + (b.width - vw * s) / 2, Y: b.y + (b.height - vh * s) / 2, W: vw * s, H: vh * s}; })()`, d1.Serial())))
	if err != nil {
		t.Fatal(err)
	}
	// A tap at (0.5, 0.25) of the picture.
	if err := chromedp.Do(ctx, chromedp.MouseClickXY(r.X+r.W*0.5, r.Y+r.H*0.25)); err != nil {
		t.Fatal(err)
	}
	var results map[string]struct {
		OK     bool `json:"ok"`
		Status int  `json:"status"`
		Error  *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	waitPage(ctx, t, "group input results on the page", func() bool {
		s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.mediasvcWall.results)`))
		_ = json.Unmarshal([]byte(s), &results)
		return len(results) == 5
	})
	for _, c := range []struct {
		d    *adbdevice.Device
		ok   bool
		code string
	}{{d1, true, ""}, {d2, true, ""}, {d3, false, "forbidden"}, {d4, false, "forbidden"}} {
		res := results[c.d.Serial()]
		if res.OK != c.ok || (!c.ok && (res.Error == nil || res.Error.Code != c.code)) {
			t.Errorf("%s: result %+v, want ok=%v %s", c.d.Serial(), res, c.ok, c.code)
		}
	}
	for _, c := range []struct {
		d    *adbdevice.Device
		w, h int
	}{{d1, 1280, 720}, {d2, 1080, 1920}} {
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		got, err := c.d.WaitInputs(wctx, 1)
		wcancel()
		if err != nil || !nearTap(got[0], c.w, c.h, 0.5, 0.25) {
			t.Errorf("%s recorded %q (%v), want a tap at (0.5, 0.25) of %dx%d", c.d.Serial(), got, err, c.w, c.h)
		}
	}
	if got := append(d3.Inputs(), d4.Inputs()...); len(got) != 0 {
		t.Errorf("devices alice does not control got %q", got)
	}
	shown, _ := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector('.tile[data-device=%q] .result').textContent`, d3.Serial())))
	if !strings.Contains(shown, "forbidden") {
		t.Errorf("d3's tile shows %q, want its refusal", shown)
	}

	// Unplugging a device drops its tile; with no selection a click opens
	// the full view.
	if err := as.Disconnect(ctx, d4.Addr()); err != nil {
		t.Fatal(err)
	}
	waitPage(ctx, t, "the unplugged device's tile gone", func() bool { _, ok := wallTiles(ctx)[d4.Serial()]; return !ok })
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.getElementById('selnone').click(), scrollTo(0, 0), true)`)); err != nil {
		t.Fatal(err)
	}
	r, _ = chromedp.Run(ctx, chromedp.Evaluate[rect](fmt.Sprintf(`(() => { const b = document.querySelector('.tile[data-device=%q] video').getBoundingClientRect(); return {X: b.x, Y: b.y, W: b.width, H: b.height}; })()`, d2.Serial())))
	if err := chromedp.Do(ctx, chromedp.MouseClickXY(r.X+r.W/2, r.Y+r.H/2)); err != nil {
		t.Fatal(err)
	}
	waitPage(ctx, t, "the full view of the clicked device", func() bool {
		u, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname + ' ' + new URLSearchParams(location.search).get('device')`))
		return u == "/ "+d2.Serial()
	})
	// The wall's streams stop a grace after the wall went.
	waitPage(ctx, t, "wall captures stopped", func() bool {
		v, ok := wallMetric(t, in.Base, `media_wall_captures_active{device_id="`+d1.Serial()+`"}`)
		return !ok || v == "0"
	})
}

// nearTap reports whether got is a tap at the fraction (fx, fy) of a
// w×h screen, within 2 % of it: the fraction comes from a click on a tile
// about a tenth of the screen's size (a pixel there is ten or more on the
// device).
func nearTap(got string, w, h int, fx, fy float64) bool {
	var gx, gy int
	if _, err := fmt.Sscanf(got, "tap %d %d", &gx, &gy); err != nil {
		return false
	}
	return math.Abs(float64(gx)/float64(w)-fx) <= 0.02 && math.Abs(float64(gy)/float64(h)-fy) <= 0.02
}

// TestWallLoad measures a wall of MEDIASVC_WALL_N (default 30) emulated
// devices in headless Chromium: the browser's and the server's CPU over
// MEDIASVC_WALL_SECONDS (default 20) once every tile decodes, and the
// server's memory per tile. Run it with
//
//	MEDIASVC_WALL_N=30 go test -tags e2e -run TestWallLoad -count=1 -v ./e2e/
//
// It prints the figures and the load average; it asserts only that every
// tile decodes.
func TestWallLoad(t *testing.T) {
	n := envInt(t, "MEDIASVC_WALL_N", 30)
	secs := envInt(t, "MEDIASVC_WALL_SECONDS", 20)
	rs := singleRedis(t)
	as := adbdevice.StartTestServer(t)
	cfg := farmConfig(rs, as, "a")
	cfg.set("demo", "enabled", false)
	in := startInstance(t, cfg)
	base, err := readProc(in.PID())
	if err != nil {
		t.Fatal(err)
	}
	serials := make([]string, n)
	for i := range n {
		serials[i] = adbdevice.PlugTestDevice(t, as, adbdevice.Options{Model: fmt.Sprintf("Wall_%02d", i), Width: 1280, Height: 720}).Serial()
	}
	waitOnline(t, in, serials...)
	idle, _ := readProc(in.PID())
	dir := t.TempDir()
	ctx := openWall(t, in, "root", dir, time.Duration(secs)*time.Second+4*time.Minute)
	// Every tile in view: small tiles, a tall window is not needed.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const s = document.createElement('style');
	  s.textContent = '#tiles { grid-template-columns: repeat(auto-fill, minmax(120px, 1fr)) !important } .tile video { aspect-ratio: 16 / 9 !important }';
	  document.head.append(s); return true; })()`)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitDecoding(ctx, t, serials, 5)
	t.Logf("%d tiles decoding after %v", n, time.Since(start).Round(time.Millisecond))
	if pcs := pageNumber(ctx, `window.__pcs`); pcs != 1 {
		t.Fatalf("%v RTCPeerConnections, want 1", pcs)
	}
	s0, _ := readProc(in.PID())
	b0 := chromiumTicks(t, dir)
	f0 := wallTiles(ctx)
	l0 := loadAvg()
	time.Sleep(time.Duration(secs) * time.Second)
	s1, _ := readProc(in.PID())
	b1 := chromiumTicks(t, dir)
	f1 := wallTiles(ctx)
	l1 := loadAvg()
	paused := 0
	var frames float64
	for _, s := range serials {
		frames += f1[s].Frames - f0[s].Frames
		if f1[s].State != "playing" {
			paused++
		}
	}
	dt := s1.At.Sub(s0.At).Seconds()
	const hz = 100 // USER_HZ
	serverCores := float64(s1.CPUTicks-s0.CPUTicks) / hz / dt
	browserCores := float64(b1-b0) / hz / dt
	rssTile := (float64(s1.RSSKiB) - float64(idle.RSSKiB)) / 1024 / float64(n)
	fmt.Printf("WALL n=%d over %.0fs (%d tiles not playing)\n", n, dt, paused)
	fmt.Printf("WALL browser CPU  %.2f cores total, %.1f %% of a core per tile\n", browserCores, browserCores*100/float64(n))
	fmt.Printf("WALL server CPU   %.2f cores total, %.1f %% of a core per tile\n", serverCores, serverCores*100/float64(n))
	fmt.Printf("WALL server RSS   %.1f MiB at start, %.1f MiB with devices listed, %.1f MiB with the wall: %.2f MiB per tile\n",
		float64(base.RSSKiB)/1024, float64(idle.RSSKiB)/1024, float64(s1.RSSKiB)/1024, rssTile)
	fmt.Printf("WALL decoded      %.1f frames/s per tile (screenrecord 30 fps)\n", frames/dt/float64(n))
	fmt.Printf("WALL load average %s → %s (nproc %s)\n", l0, l1, nproc())
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// chromiumTicks sums the CPU ticks of every Chromium process using the
// profile dir (browser, renderer, GPU and utility processes).
func chromiumTicks(t *testing.T, dir string) uint64 {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var sum uint64
	for _, p := range procs {
		cmd, err := os.ReadFile(p + "/cmdline")
		if err != nil || !strings.Contains(string(cmd), dir) && !strings.Contains(string(cmd), "--type=") {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(p))
		if !strings.Contains(string(cmd), dir) && !childOfProfile(pid, dir) {
			continue
		}
		if ps, err := readProc(pid); err == nil {
			sum += ps.CPUTicks
		}
	}
	return sum
}

// childOfProfile reports whether pid descends from a process started
// with the profile dir (Chromium's zygote children do not carry it).
func childOfProfile(pid int, dir string) bool {
	for range 8 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			return false
		}
		pid, _ = strconv.Atoi(f[1])
		if pid <= 1 {
			return false
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.Contains(string(cmd), dir) {
			return true
		}
	}
	return false
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func nproc() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strconv.Itoa(strings.Count(string(b), "processor\t:"))
}

// wallMetric is scrapeValue with root's key (the farm's /metrics needs
// one).
func wallMetric(t *testing.T, base, series string) (string, bool) {
	t.Helper()
	resp, body := do(t, "GET", base+"/metrics", "", nil, http.Header{"Authorization": {"Bearer " + farmKeys["root"]}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v, true
		}
	}
	return "", false
}
