package adbdevice

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"image/png"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// newControlRig runs one emulated scrcpy session's controller on a pipe.
func newControlRig(t *testing.T, opts Options, o scrcpyOptions) (*Device, *scrcpySession, net.Conn, *bytes.Buffer) {
	t.Helper()
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	host, dev := net.Pipe()
	ss := &scrcpySession{d: d, o: o, stdout: &logs, stderr: &logs, control: dev, out: make(chan []byte, scrcpyDeviceQueue)}
	ss.setVideoSize(d.clip)
	if o.clipboardAutosync {
		t.Cleanup(d.watchClipboard(func(text string) { ss.sendDevice(appendDeviceClipboard(nil, text)) }))
	}
	done := make(chan struct{})
	sctx, stop := context.WithCancel(context.Background())
	sent := make(chan struct{})
	go func() { defer close(sent); ss.sender(sctx, dev) }()
	go func() {
		defer close(done)
		_ = ss.controlLoop(dev, make(chan struct{}, 1))
	}()
	t.Cleanup(func() {
		_ = host.Close()
		_ = dev.Close()
		<-done
		stop()
		<-sent
	})
	return d, ss, host, &logs
}

func touchMsg(action byte, id int64, x, y int32, w, h uint16) []byte {
	b := []byte{scrcpyInjectTouch, action}
	b = binary.BigEndian.AppendUint64(b, uint64(id))
	b = binary.BigEndian.AppendUint32(b, uint32(x))
	b = binary.BigEndian.AppendUint32(b, uint32(y))
	b = binary.BigEndian.AppendUint16(b, w)
	b = binary.BigEndian.AppendUint16(b, h)
	b = binary.BigEndian.AppendUint16(b, 0xffff)
	return append(b, 0, 0, 0, 0, 0, 0, 0, 0)
}

func waitInputs(t *testing.T, d *Device, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	in, err := d.WaitInputs(ctx, n)
	if err != nil {
		t.Fatalf("%v: %q (ignored %q)", err, in, d.Ignored())
	}
	return in
}

// The size check of PositionMapper: a touch or scroll made for another
// video size (the device turned since) is dropped, silently.
func TestScrcpyDropsPositionsOfAnotherSize(t *testing.T) {
	d, ss, host, _ := newControlRig(t, Options{}, scrcpyOptions{video: true, logLevel: scrcpyLogInfo})
	scroll := append([]byte{scrcpyInjectScroll}, make([]byte, 20)...)
	binary.BigEndian.PutUint16(scroll[9:], 720) // 720x1280: not the video's size
	binary.BigEndian.PutUint16(scroll[11:], 1280)
	msgs := append(touchMsg(0, 1, 10, 10, 720, 1280), scroll...)
	msgs = append(msgs, touchMsg(0, 1, 640, 360, 1280, 720)...)
	if _, err := host.Write(msgs); err != nil {
		t.Fatal(err)
	}
	if in := waitInputs(t, d, 1); in[0] != "scrcpy touch down 640 360 id=1" {
		t.Fatalf("inputs %q", in)
	}
	if ig := d.Ignored(); len(ig) != 2 || !strings.Contains(ig[0], "720x1280 (video is 1280x720)") {
		t.Fatalf("ignored %q", ig)
	}
	// Rotated: the video is now the portrait clip and the display 720x1280.
	d.SetFault(FaultRotated, true)
	ss.setVideoSize(d.rclip)
	d.ResetInputs()
	if _, err := host.Write(append(touchMsg(1, 1, 640, 360, 1280, 720), touchMsg(0, 2, 360, 640, 720, 1280)...)); err != nil {
		t.Fatal(err)
	}
	// The finger whose up was dropped stays down on the device, as on a
	// real one: the new touch is a second pointer.
	if in := waitInputs(t, d, 1); in[0] != "scrcpy touch pointer_down 1 360 640 id=2" {
		t.Fatalf("after rotation %q", in)
	}
	if ig := d.Ignored(); len(ig) != 3 {
		t.Fatalf("the old-size touch was not dropped: %q", ig)
	}
}

func TestScrcpyPointersAsTheServer(t *testing.T) {
	d, _, host, _ := newControlRig(t, Options{Width: 2000, Height: 1000}, scrcpyOptions{video: true, logLevel: scrcpyLogInfo})
	var msgs []byte
	msgs = append(msgs, touchMsg(0, 5, 100, 100, 1280, 720)...) // first finger
	msgs = append(msgs, touchMsg(0, 7, 200, 100, 1280, 720)...) // second: ACTION_POINTER_DOWN, index 1
	msgs = append(msgs, touchMsg(2, 7, 300, 100, 1280, 720)...)
	msgs = append(msgs, touchMsg(1, 5, 100, 100, 1280, 720)...) // ACTION_POINTER_UP index 0
	msgs = append(msgs, touchMsg(1, 7, 300, 100, 1280, 720)...) // the last: ACTION_UP
	for i := range int64(11) {                                  // ten at most
		msgs = append(msgs, touchMsg(0, 100+i, 10, 10, 1280, 720)...)
	}
	// A key after the eleventh pointer: the controller handles messages in
	// order, so once the key has run, the eleventh pointer has been dropped.
	msgs = append(msgs, scrcpyInjectKeycode, 0)
	msgs = binary.BigEndian.AppendUint32(msgs, 31)
	msgs = binary.BigEndian.AppendUint32(msgs, 0)
	msgs = binary.BigEndian.AppendUint32(msgs, 0)
	if _, err := host.Write(msgs); err != nil {
		t.Fatal(err)
	}
	in := waitInputs(t, d, 16)
	if len(in) != 16 || in[15] != "scrcpy key down 31" {
		t.Fatalf("inputs after the pointers %q", in[15:])
	}
	// Positions scale from the 1280x720 video to the 2000x1000 display.
	want := []string{"scrcpy touch down 156 138 id=5", "scrcpy touch pointer_down 1 312 138 id=7", "scrcpy touch move 468 138 id=7",
		"scrcpy touch pointer_up 0 156 138 id=5", "scrcpy touch up 468 138 id=7", "scrcpy touch down 15 13 id=100"}
	for i, w := range want {
		if in[i] != w {
			t.Errorf("input %d: %q, want %q", i, in[i], w)
		}
	}
	if in[14] != "scrcpy touch pointer_down 9 15 13 id=109" {
		t.Errorf("tenth pointer %q", in[14])
	}
	if ig := d.Ignored(); len(ig) != 1 || ig[0] != "scrcpy touch: too many pointers" {
		t.Errorf("eleventh pointer: ignored %q", ig)
	}
}

func TestScrcpyScrollKeyText(t *testing.T) {
	d, _, host, logs := newControlRig(t, Options{}, scrcpyOptions{video: true, logLevel: scrcpyLogInfo})
	scroll := []byte{scrcpyInjectScroll}
	scroll = binary.BigEndian.AppendUint32(scroll, 640)
	scroll = binary.BigEndian.AppendUint32(scroll, 360)
	scroll = binary.BigEndian.AppendUint16(scroll, 1280)
	scroll = binary.BigEndian.AppendUint16(scroll, 720)
	scroll = binary.BigEndian.AppendUint16(scroll, 0x1000)         // 1/8 of 16: 2
	scroll = binary.BigEndian.AppendUint16(scroll, uint16(0x8000)) // -16
	scroll = append(scroll, 0, 0, 0, 0)
	key := []byte{scrcpyInjectKeycode, 0}
	key = binary.BigEndian.AppendUint32(key, 31)
	key = binary.BigEndian.AppendUint32(key, 2)
	key = binary.BigEndian.AppendUint32(key, 0x3000)
	long := strings.Repeat("x", 400) + "é世"
	text := append([]byte{scrcpyInjectText}, binary.BigEndian.AppendUint32(nil, uint32(len(long)))...)
	text = append(text, long...)
	if _, err := host.Write(append(append(scroll, key...), text...)); err != nil {
		t.Fatal(err)
	}
	in := waitInputs(t, d, 3)
	if in[0] != "scrcpy scroll 640 360 h=2 v=-16" || in[1] != "scrcpy key down 31 repeat=2 meta=0x3000" {
		t.Fatalf("inputs %q", in[:2])
	}
	// No 300-byte cap on the server; what it cannot type is skipped.
	if in[2] != "scrcpy text "+strings.Repeat("x", 400)+"é" {
		t.Fatalf("text %q", in[2])
	}
	if ig := d.Ignored(); len(ig) != 1 || ig[0] != "scrcpy char u+4e16" {
		t.Fatalf("ignored %q", ig)
	}
	if !strings.Contains(logs.String(), "[server] WARN: Could not inject char u+4e16") {
		t.Fatalf("log %q", logs.String())
	}
}

func TestScrcpyClipboardBothWays(t *testing.T) {
	d, _, host, _ := newControlRig(t, Options{}, scrcpyOptions{video: true, logLevel: scrcpyLogInfo, clipboardAutosync: true})
	got := make(chan []byte, 4)
	go func() {
		for {
			var h [1]byte
			if _, err := io.ReadFull(host, h[:]); err != nil {
				return
			}
			switch h[0] {
			case scrcpyDevAckClipboard:
				var s [8]byte
				_, _ = io.ReadFull(host, s[:])
				got <- append(h[:], s[:]...)
			case scrcpyDevClipboard:
				var n [4]byte
				_, _ = io.ReadFull(host, n[:])
				b := make([]byte, binary.BigEndian.Uint32(n[:]))
				_, _ = io.ReadFull(host, b)
				got <- append(h[:], b...)
			}
		}
	}()
	set := []byte{scrcpySetClipboard}
	set = binary.BigEndian.AppendUint64(set, 42)
	set = append(set, 1)
	set = binary.BigEndian.AppendUint32(set, 5)
	set = append(set, "héllo"[:5]...)
	if _, err := host.Write(set); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m[0] != scrcpyDevAckClipboard || binary.BigEndian.Uint64(m[1:]) != 42 {
			t.Fatalf("ack % x", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no ACK_CLIPBOARD")
	}
	if in := waitInputs(t, d, 1); in[0] != "scrcpy set_clipboard héll (paste)" || d.Clipboard() != "héll" {
		t.Fatalf("inputs %q, clipboard %q", in, d.Clipboard())
	}
	d.SetClipboard("copied on the phone")
	select {
	case m := <-got:
		if m[0] != scrcpyDevClipboard || string(m[1:]) != "copied on the phone" {
			t.Fatalf("clipboard push % x", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("autosync pushed nothing")
	}
}

func TestScrcpyAudioEncoderErrorIsCodecOne(t *testing.T) {
	d, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	d.EnableScrcpy("")
	d.WriteFile("/data/local/tmp/s.jar", []byte("jar"), 0o644)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- d.scrcpyServer(ctx, ScrcpyVersion, []string{"CLASSPATH=/data/local/tmp/s.jar"},
			[]string{"app_process", "/", scrcpyMainClass, ScrcpyVersion, "scid=00000001", "tunnel_forward=true", "audio_encoder=OMX.nope", "control=false"}, &out, &out)
	}()
	var socks []net.Conn
	for range 2 {
		c, err := d.dialAbstract(ctx, "scrcpy_00000001")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		socks = append(socks, c)
	}
	go func() { _, _ = io.Copy(io.Discard, socks[0]) }() // the video
	var id [4]byte
	if _, err := io.ReadFull(socks[1], id[:]); err != nil || binary.BigEndian.Uint32(id[:]) != 1 {
		t.Fatalf("audio codec id % x %v", id, err)
	}
	select {
	case code := <-done:
		if code == 0 || !strings.Contains(out.String(), "Unknown encoder: OMX.nope") {
			t.Fatalf("status %d, output %q", code, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not stop after its configuration error")
	}
}

func TestScrcpyOptionsRefusedAsTheServer(t *testing.T) {
	d, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	d.EnableScrcpy("")
	d.WriteFile("/data/local/tmp/s.jar", []byte("jar"), 0o644)
	for opt, want := range map[string]string{
		"log_level=loud":                       "Ln.Level.LOUD",
		"video_codec_options=i-frame-interval": "'=' expected",
		"video_codec_options=x:bool=1":         "Invalid codec option type",
		"max_fps=fast":                         "Invalid float value",
		"display_id=3":                         "Display 3 not found",
		"video_codec=vp9":                      "Video codec vp9 not supported",
	} {
		var out bytes.Buffer
		code := d.scrcpyServer(context.Background(), ScrcpyVersion, []string{"CLASSPATH=/data/local/tmp/s.jar"},
			[]string{"app_process", "/", scrcpyMainClass, ScrcpyVersion, "tunnel_forward=true", opt}, &out, &out)
		if code == 0 || !strings.Contains(out.String(), want) {
			t.Errorf("%s: status %d, %q", opt, code, out.String())
		}
	}
}

func TestScreencapDumpsysInstall(t *testing.T) {
	d, err := New(Options{Width: 1080, Height: 1920, SDK: 33})
	if err != nil {
		t.Fatal(err)
	}
	run := func(line string, stdin []byte) (int, string) {
		var out bytes.Buffer
		code := d.runLine(context.Background(), line, bytes.NewReader(stdin), &out, &out)
		return code, out.String()
	}
	code, out := run("screencap -p", nil)
	img, err := png.Decode(strings.NewReader(out))
	if code != 0 || err != nil || img.Bounds().Dx() != 1080 || img.Bounds().Dy() != 1920 {
		t.Fatalf("screencap: %d %v", code, err)
	}
	if code, out := run("dumpsys window displays", nil); code != 0 || !strings.Contains(out, "init=1080x1920 320dpi cur=1080x1920 ") {
		t.Fatalf("dumpsys: %d %q", code, out)
	}
	d.SetFault(FaultRotated, true)
	if _, out := run("dumpsys window displays", nil); !strings.Contains(out, "cur=1920x1080 ") || !strings.Contains(out, "ROTATION_90") {
		t.Fatalf("dumpsys rotated: %q", out)
	}
	if _, out := run("screencap -p", nil); func() bool {
		i, err := png.Decode(strings.NewReader(out))
		return err != nil || i.Bounds().Dx() != 1920
	}() {
		t.Fatal("screencap while rotated is not landscape")
	}

	var apk bytes.Buffer
	zw := zip.NewWriter(&apk)
	w, _ := zw.Create("AndroidManifest.xml")
	_, _ = w.Write([]byte("manifest"))
	_ = zw.Close()
	if code, out := run("cmd package install -S "+itoa(apk.Len()), apk.Bytes()); code != 0 || out != "Success\n" {
		t.Fatalf("install: %d %q", code, out)
	}
	if code, out := run("cmd package install -S 10", []byte("not a zip!")); code == 0 || !strings.Contains(out, "INSTALL_PARSE_FAILED_NOT_APK") {
		t.Fatalf("bad apk: %d %q", code, out)
	}
	if code, out := run("cmd package install -S 100", []byte("short")); code == 0 || !strings.Contains(out, "short read") {
		t.Fatalf("short: %d %q", code, out)
	}
	if in := d.Installs(); len(in) != 3 || !in[0].OK || in[1].OK || in[0].Size != int64(apk.Len()) {
		t.Fatalf("installs %+v", in)
	}
	if code, _ := run("input mouse scroll 10 20 --axis VSCROLL,-1 --axis HSCROLL,0.5", nil); code != 0 {
		t.Fatal("input scroll refused on SDK 33")
	}
	if code, _ := run("input mouse scroll 10 20 --axis TILT,1", nil); code == 0 {
		t.Fatal("input scroll took a bad axis")
	}
	old, _ := New(Options{SDK: 30})
	var o bytes.Buffer
	if code := old.runLine(context.Background(), "input mouse scroll 1 2 --axis VSCROLL,1", nil, &o, &o); code == 0 {
		t.Fatal("input scroll accepted before Android 13")
	}
}

func TestShellWritable(t *testing.T) {
	for p, ok := range map[string]bool{
		"/sdcard/Download/a.txt":              true,
		"/storage/emulated/0/Download/b":      true,
		"/data/local/tmp/x.jar":               true,
		"/sdcard/Download/../../system/x":     false,
		"/system/bin/sh":                      false,
		"relative/path":                       false,
		"/sdcard/":                            false,
		"/data/local/tmp/../../data/system/x": false,
	} {
		if shellWritable(p) != ok {
			t.Errorf("shellWritable(%q) = %v", p, !ok)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// dialAbstract connects to localabstract:name once something listens, as
// an OPEN through the adb server would.
func (d *Device) dialAbstract(ctx context.Context, name string) (net.Conn, error) {
	for {
		d.mu.Lock()
		ch := d.listeners[name]
		d.mu.Unlock()
		if ch != nil {
			mine, theirs := net.Pipe()
			select {
			case ch <- theirs:
				return mine, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestScrcpyDeviceMessagesDropWhenQueueFull: like DeviceMessageSender, the
// emulated server queues 16 device messages for a client that does not
// read and drops the next with a warning; copying on the device never
// waits for the client.
func TestScrcpyDeviceMessagesDropWhenQueueFull(t *testing.T) {
	d, _, _, logs := newControlRig(t, Options{}, scrcpyOptions{video: true, clipboardAutosync: true, logLevel: scrcpyLogInfo})
	for i := range scrcpyDeviceQueue + 2 { // one in flight on the pipe, 16 queued, the rest dropped
		d.SetClipboard("copy " + strconv.Itoa(i))
	}
	if !strings.Contains(logs.String(), "[server] WARN: Device message dropped: 0") {
		t.Fatalf("no drop warning in %q", logs.String())
	}
}

// TestShellInputScrollMotionevent: `input scroll` and `input motionevent`
// take what AOSP's InputShellCommand takes (runScroll: X Y for a pointer
// source, --axis NAME,VALUE options; runMotionEvent: X Y after DOWN, MOVE
// and UP, optional after CANCEL) and refuse the rest with status 1.
func TestShellInputScrollMotionevent(t *testing.T) {
	d, err := New(Options{SDK: 34})
	if err != nil {
		t.Fatal(err)
	}
	for line, ok := range map[string]bool{
		"input mouse scroll 10 20 --axis VSCROLL,-1":  true,
		"input mouse scroll 10 20":                    true,
		"input scroll --axis SCROLL,2.5":              true, // rotary encoder: no position
		"input mouse scroll --axis VSCROLL,1":         false,
		"input mouse scroll 10":                       false,
		"input mouse scroll x 20":                     false,
		"input mouse scroll 10 20 --axis":             false,
		"input mouse scroll 10 20 --axis VSCROLL":     false,
		"input mouse scroll 10 20 --axis VSCROLL,1,2": false,
		"input mouse scroll 10 20 --axis X,1":         false,
		"input mouse scroll 10 20 --axis VSCROLL,up":  false,
		"input mouse scroll 10 20 --speed 3":          false,
		"input touchscreen motionevent DOWN 10 20":    true,
		"input touchscreen motionevent move 10 20":    true,
		"input touchscreen motionevent CANCEL":        true,
		"input touchscreen motionevent CANCEL 1 2":    true,
		"input touchscreen motionevent UP 10":         false,
		"input touchscreen motionevent DOWN 10 y":     false,
		"input touchscreen motionevent HOVER 10 20":   false,
		"input touchscreen motionevent":               false,
		"input rotaryencoder scroll --axis SCROLL,1":  true,
		"input touchscreen motionevent CANCEL 1 two":  false,
	} {
		var out bytes.Buffer
		if code := d.runLine(context.Background(), line, nil, &out, &out); (code == 0) != ok {
			t.Errorf("%q: status %d (%q), want accepted=%v", line, code, out.String(), ok)
		}
	}
}
