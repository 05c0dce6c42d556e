package adb

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"mediasvc/domain"
)

// startSource runs a Source against f until the test ends.
func startSource(t *testing.T, f *fakeADB, opts Options) *Source {
	t.Helper()
	opts.Addr = f.addr()
	s, err := New(opts, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func lookupDev(t *testing.T, s *Source, id string) (domain.Device, bool) {
	t.Helper()
	d, err := s.Device(context.Background(), domain.DeviceID(id))
	return d, err == nil
}

func TestSourceTracksDevices(t *testing.T) {
	sim := &deviceSim{}
	f := newFakeADB(t, sim.serve)
	f.setDevice("d1", "device")
	f.setDevice("hidden", "device")
	s := startSource(t, f, Options{Serials: []string{"d1", "d2"}})

	waitFor(t, "d1 with its size", func() bool { d, ok := lookupDev(t, s, "d1"); return ok && d.Width == 1080 })
	d, _ := lookupDev(t, s, "d1")
	want := domain.Device{ID: "d1", Name: "Pixel 7", Model: "Pixel 7", State: domain.DeviceOnline, Width: 1080, Height: 2340, Backend: "screenrecord", Breaker: domain.BreakerClosed}
	if d != want {
		t.Fatalf("device\n got %+v\nwant %+v", d, want)
	}
	if _, ok := lookupDev(t, s, "hidden"); ok {
		t.Fatal("a device outside the allow-list is exposed")
	}
	f.setDevice("d2", "unauthorized")
	waitFor(t, "d2", func() bool { _, ok := lookupDev(t, s, "d2"); return ok })
	if _, err := s.Open(context.Background(), "d2", domain.CaptureOptions{}); !errors.Is(err, domain.ErrDeviceUnavailable) {
		t.Fatalf("open unauthorized: %v", err)
	}
	f.setDevice("d1", "")
	waitFor(t, "d1 gone", func() bool { _, ok := lookupDev(t, s, "d1"); return !ok })
	if _, err := s.Open(context.Background(), "d1", domain.CaptureOptions{}); !errors.Is(err, domain.ErrDeviceNotFound) {
		t.Fatalf("open vanished: %v", err)
	}
	ds, _ := s.Devices(context.Background())
	if len(ds) != 1 || ds[0].ID != "d2" || ds[0].State != domain.DeviceUnauthorized {
		t.Fatalf("devices %+v", ds)
	}
}

// TestSourceSetSerials: a reload's new allow-list applies at once to the
// devices the server already reports, without waiting for the next change
// from the server; an empty list exposes every device.
func TestSourceSetSerials(t *testing.T) {
	sim := &deviceSim{}
	f := newFakeADB(t, sim.serve)
	f.setDevice("d1", "device")
	f.setDevice("d2", "device")
	s := startSource(t, f, Options{Serials: []string{"d1"}})
	waitFor(t, "d1", func() bool { _, ok := lookupDev(t, s, "d1"); return ok })
	if _, ok := lookupDev(t, s, "d2"); ok {
		t.Fatal("d2 exposed outside the allow-list")
	}

	s.SetSerials(context.Background(), []string{"d2"})
	if _, ok := lookupDev(t, s, "d1"); ok {
		t.Fatal("d1 still exposed after it left the allow-list")
	}
	waitFor(t, "d2 with its size", func() bool { d, ok := lookupDev(t, s, "d2"); return ok && d.Width == 1080 })

	s.SetSerials(context.Background(), nil)
	ds, _ := s.Devices(context.Background())
	if len(ds) != 2 {
		t.Fatalf("an empty allow-list exposes %+v, want d1 and d2", ds)
	}
	// The server's next change is filtered by the new list too.
	s.SetSerials(context.Background(), []string{"d1"})
	f.setDevice("d3", "device")
	waitFor(t, "the server's next list", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.last) == 3
	})
	if ds, _ := s.Devices(context.Background()); len(ds) != 1 || ds[0].ID != "d1" {
		t.Fatalf("after the server's next list: %+v, want d1 alone", ds)
	}
}

func TestSourceSurvivesNoServer(t *testing.T) {
	s, err := New(Options{Addr: "127.0.0.1:1", RetryMin: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ds, err := s.Devices(ctx); err != nil || len(ds) != 0 {
		t.Fatalf("devices %v %v", ds, err)
	}
}

func readFrames(t *testing.T, c interface {
	ReadFrame(context.Context) (domain.Frame, error)
}, n int) []domain.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []domain.Frame
	for range n {
		f, err := c.ReadFrame(ctx)
		if err != nil {
			t.Fatalf("frame %d: %v", len(out), err)
		}
		out = append(out, f)
	}
	return out
}

func TestScreenrecordCaptureAndSeamlessRestart(t *testing.T) {
	sim := &deviceSim{aus: clipAUs(t, 60), interval: 10 * time.Millisecond, limit: time.Second}
	f := newFakeADB(t, sim.serve)
	f.setDevice("d1", "device")
	s := startSource(t, f, Options{TimeLimit: time.Second, RestartLead: 300 * time.Millisecond, MaxWidth: 720})
	waitFor(t, "d1 size", func() bool { d, ok := lookupDev(t, s, "d1"); return ok && d.Width > 0 })

	c, err := s.Open(context.Background(), "d1", domain.CaptureOptions{BitrateBps: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info := c.Info()
	if info.Video != domain.CodecH264 || info.Width != 1280 || info.Height != 720 || info.ProfileLevelID == "" {
		t.Fatalf("info %+v", info)
	}
	frames := readFrames(t, c, 200) // ~2 s at 100 fps: at least one restart
	if !frames[0].Keyframe {
		t.Fatal("first frame is not a keyframe")
	}
	types := domain.SplitAnnexB(frames[0].Data)
	if domain.NALType(types[0]) != domain.NALTypeSPS || domain.NALType(types[1]) != domain.NALTypePPS {
		t.Fatalf("keyframe does not start with SPS, PPS")
	}
	var maxGap time.Duration
	for i, f := range frames {
		if f.Keyframe && !slices.ContainsFunc(domain.SplitAnnexB(f.Data), func(n []byte) bool { return domain.NALType(n) == domain.NALTypeSPS }) {
			t.Fatalf("keyframe %d without SPS", i)
		}
		hasTS := slices.ContainsFunc(domain.SplitAnnexB(f.Data), func(n []byte) bool { _, ok := domain.ParseSEITimestamp(n); return ok })
		if !hasTS {
			t.Fatalf("frame %d without SEI timestamp", i)
		}
		if i > 0 {
			if f.PTS <= frames[i-1].PTS {
				t.Fatalf("PTS not increasing at %d", i)
			}
			maxGap = max(maxGap, f.Ingest.Sub(frames[i-1].Ingest))
		}
	}
	d, _ := lookupDev(t, s, "d1")
	if d.CaptureRestarts == 0 {
		t.Fatal("no restart counted")
	}
	t.Logf("restarts %d, largest gap between frames %s", d.CaptureRestarts, maxGap)
	sim.mu.Lock()
	cmds := slices.Clone(sim.commands)
	sim.mu.Unlock()
	if !slices.Contains(cmds, "exec:screenrecord --output-format=h264 --bit-rate 1000000 --size 720x1560 --time-limit 1 -") {
		t.Fatalf("commands %q", cmds)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadFrame(context.Background()); err == nil {
		t.Fatal("ReadFrame after Close succeeded")
	}
}

func TestScreenrecordEarlyEOFFailsCapture(t *testing.T) {
	sim := &deviceSim{aus: clipAUs(t, 5), interval: 10 * time.Millisecond, limit: 200 * time.Millisecond}
	f := newFakeADB(t, sim.serve)
	f.setDevice("d1", "device")
	s := startSource(t, f, Options{TimeLimit: 10 * time.Second})
	waitFor(t, "d1", func() bool { d, ok := lookupDev(t, s, "d1"); return ok && d.Width > 0 })
	c, err := s.Open(context.Background(), "d1", domain.CaptureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, err := c.ReadFrame(ctx)
		if err == nil {
			continue
		}
		if !errors.Is(err, domain.ErrDeviceUnavailable) {
			t.Fatalf("early EOF: %v", err)
		}
		break
	}
}

func TestBreakerOpensAfterFailures(t *testing.T) {
	sim := &deviceSim{failExec: "device offline"}
	f := newFakeADB(t, sim.serve)
	f.setDevice("d1", "device")
	s := startSource(t, f, Options{Breaker: BreakerOptions{Failures: 2, OpenFor: time.Hour}})
	waitFor(t, "d1", func() bool { d, ok := lookupDev(t, s, "d1"); return ok && d.Width > 0 })
	for range 2 {
		if _, err := s.Open(context.Background(), "d1", domain.CaptureOptions{}); !errors.Is(err, domain.ErrDeviceUnavailable) {
			t.Fatalf("open: %v", err)
		}
	}
	d, _ := lookupDev(t, s, "d1")
	if d.Breaker != domain.BreakerOpen {
		t.Fatalf("breaker %s after 2 failures", d.Breaker)
	}
	sim.mu.Lock()
	before := len(sim.commands)
	sim.mu.Unlock()
	start := time.Now()
	if _, err := s.Open(context.Background(), "d1", domain.CaptureOptions{}); !errors.Is(err, domain.ErrDeviceUnavailable) {
		t.Fatalf("open with the breaker open: %v", err)
	}
	sim.mu.Lock()
	after := len(sim.commands)
	sim.mu.Unlock()
	if after != before {
		t.Fatal("the device was asked while the breaker was open")
	}
	t.Logf("open refused in %s", time.Since(start))
	if err := s.Input(context.Background(), "d1", domain.InputEvent{Type: domain.InputBack}); !errors.Is(err, domain.ErrDeviceUnavailable) {
		t.Fatalf("input with the breaker open: %v", err)
	}
}

func TestInputThroughPersistentShell(t *testing.T) {
	sim := &deviceSim{}
	f := newFakeADB(t, sim.serve)
	f.setDevice("d1", "device")
	s := startSource(t, f, Options{})
	waitFor(t, "d1", func() bool { _, ok := lookupDev(t, s, "d1"); return ok })
	ctx := context.Background()
	evs := []domain.InputEvent{
		{Type: domain.InputTap, X: 100, Y: 200},
		{Type: domain.InputText, Text: "a b'c"},
		{Type: domain.InputHome},
	}
	for _, ev := range evs {
		if err := s.Input(ctx, "d1", ev); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"input tap 100 200", `input text 'a%sb'\''c'`, "input keyevent 3"}
	waitFor(t, "lines", func() bool { return len(sim.snapshotLines()) == 3 })
	if got := sim.snapshotLines(); !slices.Equal(got, want) {
		t.Fatalf("lines %q", got)
	}
	sim.mu.Lock()
	shells := 0
	for _, c := range sim.commands {
		if c == "shell:" {
			shells++
		}
	}
	sim.mu.Unlock()
	if shells != 1 {
		t.Fatalf("%d shells opened for 3 events, want 1", shells)
	}
	if err := s.Input(ctx, "d1", domain.InputEvent{Type: domain.InputKey, Key: "nope"}); !errors.Is(err, domain.ErrInvalidInput) {
		t.Fatalf("unknown key: %v", err)
	}
	if err := s.Input(ctx, "zz", domain.InputEvent{Type: domain.InputBack}); !errors.Is(err, domain.ErrDeviceNotFound) {
		t.Fatalf("unknown device: %v", err)
	}
}

// The device's shell runs one input command at a time, each starting a
// JVM on a phone: at most InputQueue wait there; the next gets
// ErrInputBusy at once (not a breaker failure), and input is taken again
// as soon as the phone finishes one.
func TestInputQueueIsBounded(t *testing.T) {
	gate := make(chan struct{})
	sim := &deviceSim{inputGate: gate}
	f := newFakeADB(t, sim.serve)
	f.setDevice("d1", "device")
	s := startSource(t, f, Options{InputQueue: 3, Breaker: BreakerOptions{Failures: 1}})
	waitFor(t, "d1", func() bool { _, ok := lookupDev(t, s, "d1"); return ok })
	ctx := context.Background()
	tap := domain.InputEvent{Type: domain.InputTap, X: 1, Y: 2}
	for i := range 3 {
		if err := s.Input(ctx, "d1", tap); err != nil {
			t.Fatalf("input %d: %v", i, err)
		}
	}
	for range 5 {
		if err := s.Input(ctx, "d1", tap); !errors.Is(err, domain.ErrInputBusy) {
			t.Fatalf("input beyond the queue: %v, want ErrInputBusy", err)
		}
	}
	if d, _ := lookupDev(t, s, "d1"); d.Breaker != domain.BreakerClosed {
		t.Fatalf("breaker %s after busy refusals, want closed", d.Breaker)
	}
	gate <- struct{}{} // the phone finishes one command
	waitFor(t, "a free slot", func() bool { return s.Input(ctx, "d1", tap) == nil })
	if err := s.Input(ctx, "d1", tap); !errors.Is(err, domain.ErrInputBusy) {
		t.Fatalf("input with the queue full again: %v", err)
	}
	// The four taken reach the device once it catches up; the refused
	// ones never do.
	go func() {
		for range 3 {
			gate <- struct{}{}
		}
	}()
	waitFor(t, "four lines", func() bool { return len(sim.snapshotLines()) == 4 })
	for _, l := range sim.snapshotLines() {
		if l != "input tap 1 2" {
			t.Fatalf("line %q", l)
		}
	}
}

func TestSetBitrateRestartsWithNewBitrate(t *testing.T) {
	sim := &deviceSim{aus: clipAUs(t, 30), interval: 10 * time.Millisecond}
	f := newFakeADB(t, sim.serve)
	f.setDevice("d1", "device")
	s := startSource(t, f, Options{BitrateInterval: 10 * time.Millisecond})
	waitFor(t, "d1", func() bool { d, ok := lookupDev(t, s, "d1"); return ok && d.Width > 0 })
	c, err := s.Open(context.Background(), "d1", domain.CaptureOptions{BitrateBps: 2_000_000})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetBitrate(1_500_000)
	c.SetBitrate(1_700_000) // only the latest counts
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, err := c.ReadFrame(ctx); err != nil {
			t.Fatal(err)
		}
		if d, _ := lookupDev(t, s, "d1"); d.CaptureRestarts == 1 {
			break
		}
	}
	sim.mu.Lock()
	defer sim.mu.Unlock()
	var bitrates []string
	for _, cmd := range sim.commands {
		if strings.HasPrefix(cmd, "exec:screenrecord --output") {
			bitrates = append(bitrates, strings.Fields(cmd)[3])
		}
	}
	if !slices.Equal(bitrates, []string{"2000000", "1700000"}) {
		t.Fatalf("screenrecord bit rates %q", bitrates)
	}
}

func TestScreenrecordNoTimeLimitWhenSupported(t *testing.T) {
	for _, tt := range []struct {
		help string
		want string
	}{
		{help: "--time-limit TIME\n    Set the maximum recording time, in seconds.  Default is 180. Set to 0 to remove the limit.\n", want: "--time-limit 0 -"},
		{help: "--time-limit TIME\n    Set the maximum recording time, in seconds.  Default / maximum is 180.\n", want: "--time-limit 180 -"},
	} {
		sim := &deviceSim{aus: clipAUs(t, 5), interval: 10 * time.Millisecond, help: tt.help}
		f := newFakeADB(t, sim.serve)
		f.setDevice("d1", "device")
		s := startSource(t, f, Options{})
		waitFor(t, "d1", func() bool { d, ok := lookupDev(t, s, "d1"); return ok && d.Width > 0 })
		c, err := s.Open(context.Background(), "d1", domain.CaptureOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
		sim.mu.Lock()
		cmds := slices.Clone(sim.commands)
		sim.mu.Unlock()
		if !slices.ContainsFunc(cmds, func(c string) bool {
			return strings.HasPrefix(c, "exec:screenrecord --output") && strings.HasSuffix(c, tt.want)
		}) {
			t.Errorf("help %q: commands %q, want one ending %q", tt.help, cmds, tt.want)
		}
	}
}
