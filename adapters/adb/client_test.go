package adb

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"mediasvc/domain"
)

func TestEncodeRequest(t *testing.T) {
	b, err := encodeRequest("host:version")
	if err != nil || string(b) != "000chost:version" {
		t.Fatalf("got %q, %v", b, err)
	}
	if _, err := encodeRequest(""); !errors.Is(err, ErrProtocol) {
		t.Fatalf("empty request: %v", err)
	}
	if _, err := encodeRequest(strings.Repeat("x", 0x10000)); !errors.Is(err, ErrProtocol) {
		t.Fatalf("oversized request: %v", err)
	}
}

func TestReadStatus(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		ok          bool
		notFound    bool
		unavailable bool
		protocol    bool
		unexpected  bool
	}{
		{name: "okay", in: "OKAY", ok: true},
		{name: "offline", in: "FAIL000edevice offline", unavailable: true},
		{name: "unauthorized", in: "FAIL0058device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set\nTry 'adb kill-server'", unavailable: true},
		{name: "not found", in: "FAIL0016device 'abc' not found", notFound: true},
		{name: "no devices", in: "FAIL0014no devices/emulators", notFound: true},
		{name: "other", in: "FAIL0004nope"},
		{name: "garbage", in: "WHAT", protocol: true},
		{name: "bad length", in: "FAILzzzz", protocol: true},
		{name: "short", in: "OK", unexpected: true},
		{name: "short reason", in: "FAIL0010dev", unexpected: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := readStatus(strings.NewReader(tt.in))
			if tt.ok != (err == nil) {
				t.Fatalf("err %v", err)
			}
			if errors.Is(err, domain.ErrDeviceNotFound) != tt.notFound || errors.Is(err, domain.ErrDeviceUnavailable) != tt.unavailable {
				t.Fatalf("err %v: notFound %v unavailable %v", err, errors.Is(err, domain.ErrDeviceNotFound), errors.Is(err, domain.ErrDeviceUnavailable))
			}
			if errors.Is(err, ErrProtocol) != tt.protocol || errors.Is(err, io.ErrUnexpectedEOF) != tt.unexpected {
				t.Fatalf("err %v", err)
			}
		})
	}
}

func TestParseDeviceList(t *testing.T) {
	body := "emulator-5554          device product:sdk_gphone64 model:sdk_gphone64_x86_64 device:emu64x transport_id:1\n" +
		"127.0.0.1:6001         offline transport_id:2\n" +
		"R58M1234567            unauthorized usb:1-1 transport_id:3\n" +
		"0123456789ABCDEF       no permissions (missing udev rules? user is in the plugdev group); see [http://developer.android.com/tools/device.html] usb:1-2 transport_id:4\n" +
		"abc\tdevice\n" +
		"\n   \nlonely\n"
	got := parseDeviceList(body)
	want := []Entry{
		{Serial: "emulator-5554", State: "device", Product: "sdk_gphone64", Model: "sdk_gphone64_x86_64", Device: "emu64x", TransportID: 1},
		{Serial: "127.0.0.1:6001", State: "offline", TransportID: 2},
		{Serial: "R58M1234567", State: "unauthorized", TransportID: 3},
		{Serial: "0123456789ABCDEF", State: "no permissions (missing udev rules? user is in the plugdev group); see [http://developer.android.com/tools/device.html]", TransportID: 4},
		{Serial: "abc", State: "device"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries: %+v", len(got), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	for st, want := range map[string]domain.DeviceState{"device": domain.DeviceOnline, "offline": domain.DeviceOffline, "unauthorized": domain.DeviceUnauthorized, "recovery": domain.DeviceUnavailable} {
		if deviceState(st) != want {
			t.Errorf("deviceState(%q) = %s", st, deviceState(st))
		}
	}
}

func TestClientVersionTrackAndShellV2(t *testing.T) {
	f := newFakeADB(t, (&deviceSim{}).serve)
	f.setDevice("d1", "device")
	c := NewClient(f.addr(), ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	v, err := c.Version(ctx)
	if err != nil || v != 0x29 {
		t.Fatalf("version %d, %v", v, err)
	}
	res, err := c.ShellV2(ctx, "d1", "echo hi")
	if err != nil || string(res.Stdout) != "out:echo hi" || string(res.Stderr) != "err" || res.Exit != 7 {
		t.Fatalf("shell v2 %+v, %v", res, err)
	}
	if _, err := c.ShellV2(ctx, "nope", "true"); !errors.Is(err, domain.ErrDeviceNotFound) {
		t.Fatalf("unknown serial: %v", err)
	}
	f.setDevice("d2", "offline")
	if _, err := c.Exec(ctx, "d2", "true"); !errors.Is(err, domain.ErrDeviceUnavailable) {
		t.Fatalf("offline device: %v", err)
	}

	lists := make(chan []Entry, 8)
	tctx, tcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.TrackDevices(tctx, func(l []Entry) { lists <- l }) }()
	first := <-lists
	if len(first) != 2 {
		t.Fatalf("first list %+v", first)
	}
	f.setDevice("d2", "")
	if l := <-lists; len(l) != 1 || l[0].Serial != "d1" || l[0].Model != "Pixel_7" {
		t.Fatalf("second list %+v", l)
	}
	tcancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("track after cancel: %v", err)
	}
}

func TestExecStreamsAndCancels(t *testing.T) {
	sim := &deviceSim{aus: [][]byte{bytes.Repeat([]byte{1}, 100)}, interval: time.Millisecond}
	f := newFakeADB(t, sim.serve)
	f.setDevice("d1", "device")
	c := NewClient(f.addr(), ClientOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	rc, err := c.Exec(ctx, "d1", "screenrecord -")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	buf := make([]byte, 1000)
	if _, err := io.ReadFull(rc, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.After(2 * time.Second)
	for {
		select {
		case <-deadline:
			t.Fatal("read did not end after cancel")
		default:
		}
		if _, err := rc.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("timeout instead of close: %v", err)
			}
			return
		}
	}
}

func TestPoolBoundsCommands(t *testing.T) {
	block := make(chan struct{})
	f := newFakeADB(t, func(c net.Conn, serial, svc string) {
		okay(c)
		<-block
	})
	f.setDevice("d1", "device")
	c := NewClient(f.addr(), ClientOptions{PoolSize: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	for range 2 {
		go func() { _, err := c.Output(ctx, "d1", "sleep"); errs <- err }()
	}
	time.Sleep(100 * time.Millisecond)
	short, scancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer scancel()
	if _, err := c.Output(short, "d1", "true"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third command with a full pool: %v", err)
	}
	close(block)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadV2(t *testing.T) {
	var b bytes.Buffer
	v2(&b, v2Stdout, "a")
	v2(&b, 9, "ignored")
	v2(&b, v2Stdout, "b")
	v2(&b, v2Exit, "\x01")
	res, err := readV2(&b)
	if err != nil || string(res.Stdout) != "ab" || res.Exit != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	b.Reset()
	v2(&b, v2Stdout, "a")
	if _, err := readV2(&b); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("no exit: %v", err)
	}
}

func TestParseWMSize(t *testing.T) {
	for in, want := range map[string][2]int{
		"Physical size: 1080x1920\n":                           {1080, 1920},
		"Physical size: 1440x3120\nOverride size: 1080x2340\n": {1080, 2340},
		"Override size: 720x1280\nPhysical size: 1440x3120":    {720, 1280},
		"error":                           {0, 0},
		"Physical size: 0x10":             {0, 0},
		"Physical size: 99999999999x1920": {0, 0},
	} {
		w, h, _ := parseWMSize(in)
		if w != want[0] || h != want[1] {
			t.Errorf("%q: %dx%d, want %v", in, w, h, want)
		}
	}
}

func TestCaptureSize(t *testing.T) {
	for _, tt := range []struct{ w, h, mw, mh, ww, wh int }{
		{1080, 2340, 0, 0, 0, 0},
		{1080, 2340, 720, 0, 720, 1560},
		{1080, 2340, 720, 1280, 584, 1280},
		{720, 1280, 1080, 1920, 0, 0},
		{0, 0, 720, 1280, 0, 0},
	} {
		if w, h := captureSize(tt.w, tt.h, tt.mw, tt.mh); w != tt.ww || h != tt.wh {
			t.Errorf("%+v: %dx%d", tt, w, h)
		}
	}
}

func TestPush(t *testing.T) {
	data := bytes.Repeat([]byte("x"), syncChunk+10)
	var want []byte
	want = appendSyncHeader(want, "SEND", uint32(len("/data/local/tmp/a.jar,33188")))
	want = append(want, "/data/local/tmp/a.jar,33188"...)
	want = appendSyncHeader(want, "DATA", syncChunk)
	want = append(want, data[:syncChunk]...)
	want = appendSyncHeader(want, "DATA", 10)
	want = append(want, data[syncChunk:]...)
	want = appendSyncHeader(want, "DONE", 100)
	got := make(chan []byte, 1)
	f := newFakeADB(t, func(c net.Conn, serial, svc string) {
		if svc != "sync:" {
			fail(c, "unexpected "+svc)
			return
		}
		okay(c)
		wire := make([]byte, len(want))
		_, _ = io.ReadFull(c, wire)
		got <- wire
		_, _ = c.Write([]byte("OKAY\x00\x00\x00\x00"))
		quit := make([]byte, 8)
		_, _ = io.ReadFull(c, quit)
	})
	f.setDevice("d1", "device")
	c := NewClient(f.addr(), ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Push(ctx, "d1", bytes.NewReader(data), "/data/local/tmp/a.jar", 0o644, time.Unix(100, 0)); err != nil {
		t.Fatal(err)
	}
	if wire := <-got; !bytes.Equal(wire, want) {
		t.Fatalf("wire differs: %q…", wire[:40])
	}
	if err := readSyncStatus(strings.NewReader("FAIL\x05\x00\x00\x00nope!")); err == nil || err.Error() != "adb server: nope!" {
		t.Fatalf("sync FAIL: %v", err)
	}
}
