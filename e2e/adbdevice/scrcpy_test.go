package adbdevice

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"mediasvc/domain"
)

// scrcpyPacket reads one video packet: PTS field and payload.
func scrcpyPacket(t *testing.T, r io.Reader) (uint64, []byte) {
	t.Helper()
	var h [12]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		t.Fatalf("read packet header: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint32(h[8:]))
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("read packet: %v", err)
	}
	return binary.BigEndian.Uint64(h[:]), b
}

// dialForward connects to a forwarded port until the device side accepts
// (adb accepts locally at once and closes if the device refuses the OPEN):
// it reads the first byte to know.
func dialForward(t *testing.T, port int, first []byte) net.Conn {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
			if len(first) == 0 {
				return nc
			}
			if _, err = io.ReadFull(nc, first); err == nil {
				return nc
			}
			_ = nc.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect to the forwarded scrcpy socket: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRealADBScrcpy starts the emulated scrcpy server the way a host does,
// through the real adb server: push, forward, app_process; then reads the
// video socket and drives the control socket.
func TestRealADBScrcpy(t *testing.T) {
	s := StartTestServer(t)
	d := PlugTestDevice(t, s, Options{})
	d.EnableScrcpy("")
	serial := d.Serial()
	jar := t.TempDir() + "/scrcpy-server.jar"
	if err := writeFile(jar, []byte("not really a jar")); err != nil {
		t.Fatal(err)
	}
	run(t, s, "-s", serial, "push", jar, "/data/local/tmp/scrcpy-server.jar")

	// A version mismatch fails like the real server.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := s.Run(ctx, "-s", serial, "shell", "CLASSPATH=/data/local/tmp/scrcpy-server.jar", "app_process", "/", scrcpyMainClass, "2.7")
	if err == nil || !strings.Contains(string(out), "does not match the client (2.7)") {
		t.Fatalf("version mismatch: %v %q", err, out)
	}

	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	local := "tcp:" + strconv.Itoa(port)
	run(t, s, "-s", serial, "forward", local, "localabstract:scrcpy_0000abcd")
	defer run(t, s, "-s", serial, "forward", "--remove", local)
	server := s.Command(context.Background(), "-s", serial, "shell",
		"CLASSPATH=/data/local/tmp/scrcpy-server.jar app_process / "+scrcpyMainClass+" "+ScrcpyVersion+
			" scid=0000abcd tunnel_forward=true audio=true control=true max_size=1280")
	var serverOut bytes.Buffer
	server.Stdout, server.Stderr = &serverOut, &serverOut
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- server.Wait() }()
	ended := false
	defer func() {
		if !ended {
			_ = server.Process.Kill()
			<-waited
		}
	}()

	dummy := make([]byte, 1)
	video := dialForward(t, port, dummy)
	defer video.Close()
	audio := dialForward(t, port, nil)
	defer audio.Close()
	control := dialForward(t, port, nil)
	defer control.Close()

	var codec [4]byte
	if _, err := io.ReadFull(audio, codec[:]); err != nil || binary.BigEndian.Uint32(codec[:]) != scrcpyCodecOpus {
		t.Fatalf("audio codec % x, %v", codec, err)
	}
	if pts, head := scrcpyPacket(t, audio); pts&scrcpyFlagConfig == 0 || !bytes.HasPrefix(head, []byte("OpusHead")) {
		t.Fatalf("audio config packet: pts %#x, %q", pts, head)
	}
	if pts, pkt := scrcpyPacket(t, audio); pts&scrcpyFlagConfig != 0 || len(pkt) == 0 {
		t.Fatalf("audio packet: pts %#x, %d bytes", pts, len(pkt))
	}

	var meta [64 + 12]byte
	if _, err := io.ReadFull(video, meta[:]); err != nil {
		t.Fatal(err)
	}
	if name := string(bytes.TrimRight(meta[:64], "\x00")); name != "Mediasvc_Phone" {
		t.Errorf("device name %q", name)
	}
	if codec, w, h := binary.BigEndian.Uint32(meta[64:]), binary.BigEndian.Uint32(meta[68:]), binary.BigEndian.Uint32(meta[72:]); codec != scrcpyCodecH264 || w != 1280 || h != 720 {
		t.Errorf("codec meta %#x %dx%d", codec, w, h)
	}
	pts, cfg := scrcpyPacket(t, video)
	if pts&scrcpyFlagConfig == 0 || domain.NALType(domain.SplitAnnexB(cfg)[0]) != domain.NALTypeSPS {
		t.Fatalf("first packet is not the config: pts %#x", pts)
	}
	pts, _ = scrcpyPacket(t, video)
	if pts&scrcpyFlagKey == 0 {
		t.Fatalf("second packet is not a key frame: pts %#x", pts)
	}

	// Touch (32 bytes), text, key, then RESET_VIDEO.
	var msg []byte
	touch := make([]byte, 32)
	touch[0], touch[1] = scrcpyInjectTouch, 0
	binary.BigEndian.PutUint64(touch[2:], ^uint64(1)) // generic finger
	binary.BigEndian.PutUint32(touch[10:], 100)
	binary.BigEndian.PutUint32(touch[14:], 200)
	binary.BigEndian.PutUint16(touch[18:], 1280)
	binary.BigEndian.PutUint16(touch[20:], 720)
	binary.BigEndian.PutUint16(touch[22:], 0xffff)
	msg = append(msg, touch...)
	msg = append(msg, scrcpyInjectText, 0, 0, 0, 2, 'h', 'i')
	msg = append(msg, scrcpyInjectKeycode, 1, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0)
	msg = append(msg, scrcpyResetVideo)
	if _, err := control.Write(msg); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	in, err := d.WaitInputs(wctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(in, "|"); got != "scrcpy touch down 100 200 id=-2|scrcpy text hi|scrcpy key up 4|scrcpy reset_video" {
		t.Fatalf("inputs %q", got)
	}
	// After the reset: a config packet, then a key frame, within a few packets.
	for i := 0; ; i++ {
		if i > 60 {
			t.Fatal("no config packet after RESET_VIDEO")
		}
		if pts, _ := scrcpyPacket(t, video); pts&scrcpyFlagConfig != 0 {
			break
		}
	}
	if pts, _ := scrcpyPacket(t, video); pts&scrcpyFlagKey == 0 {
		t.Fatal("no key frame after the reset's config packet")
	}
	if starts := d.ScrcpyStarts(); len(starts) != 2 || starts[1][0] != ScrcpyVersion {
		t.Fatalf("starts %q", starts)
	}

	// The client closing the video socket ends the server.
	_ = video.Close()
	select {
	case err := <-waited:
		ended = true
		if err != nil {
			t.Fatalf("server ended with %v: %s", err, serverOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server still running after the client left")
	}
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }

// FuzzScrcpyControl checks the control message reader never panics and
// never records more messages than it was given bytes.
func FuzzScrcpyControl(f *testing.F) {
	touch := make([]byte, 32)
	touch[0] = scrcpyInjectTouch
	f.Add(touch)
	f.Add([]byte{scrcpyInjectText, 0, 0, 0, 2, 'h', 'i', scrcpyResetVideo})
	f.Add([]byte{scrcpyInjectKeycode, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{scrcpyUHIDCreate, 0, 1, 0, 2, 0, 3, 1, 'k', 0, 1, 5})
	f.Add([]byte{scrcpyStartApp, 3, 'a', 'p', 'p', 99})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := &Device{inputCh: make(chan struct{}), opts: Options{Width: 1280, Height: 720}}
		ss := &scrcpySession{d: d, o: scrcpyOptions{logLevel: scrcpyLogInfo}, stdout: io.Discard, stderr: io.Discard, vw: 1280, vh: 720}
		_ = ss.controlLoop(bytes.NewReader(b), make(chan struct{}, 1))
		if len(d.inputs) > len(b) {
			t.Fatalf("%d messages from %d bytes", len(d.inputs), len(b))
		}
	})
}
