package adbdevice

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// client speaks the transport protocol to a device directly, as the adb
// server does, one stream at a time.
type client struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
	id uint32
}

func startDevice(t *testing.T, opts Options) *Device {
	t.Helper()
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func dial(t *testing.T, d *Device) *client {
	t.Helper()
	nc, err := net.Dial("tcp", d.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *client) send(m Message) {
	c.t.Helper()
	if err := WriteMessage(c.nc, m); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) read() Message {
	c.t.Helper()
	m, err := ReadMessage(c.br, 1<<20)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

// connect sends the host's CNXN with maxData and returns the answer.
func (c *client) connect(maxData uint32) Message {
	c.t.Helper()
	c.send(Message{Command: CmdCNXN, Arg0: Version, Arg1: maxData, Data: []byte("host::features=shell_v2,cmd\x00")})
	return c.read()
}

// exchange opens service, writes stdin in WRTEs (each after the previous
// OKAY), collects the device's WRTEs (acknowledging each) until CLSE, and
// returns them with the largest payload seen. ok is false if the OPEN was
// refused.
func (c *client) exchange(service string, stdin ...[]byte) (out []byte, largest int, ok bool) {
	c.t.Helper()
	c.id++
	local := c.id
	c.send(Message{Command: CmdOPEN, Arg0: local, Data: append([]byte(service), 0)})
	m := c.read()
	if m.Command == CmdCLSE {
		return nil, 0, false
	}
	if m.Command != CmdOKAY || m.Arg1 != local {
		c.t.Fatalf("OPEN answered with %v", m)
	}
	remote := m.Arg0
	pending := stdin
	canSend := true
	for {
		if canSend && len(pending) > 0 {
			c.send(Message{Command: CmdWRTE, Arg0: local, Arg1: remote, Data: pending[0]})
			pending, canSend = pending[1:], false
		}
		m := c.read()
		switch m.Command {
		case CmdOKAY:
			canSend = true
		case CmdWRTE:
			if m.Arg1 != local {
				continue // a stream closed before
			}
			out = append(out, m.Data...)
			largest = max(largest, len(m.Data))
			c.send(Message{Command: CmdOKAY, Arg0: local, Arg1: remote})
		case CmdCLSE:
			if m.Arg1 != local {
				continue // a stream closed before
			}
			return out, largest, true
		default:
			c.t.Fatalf("unexpected %v", m)
		}
	}
}

func v2Packet(id byte, s string) []byte {
	b := []byte{id, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[1:], uint32(len(s)))
	return append(b, s...)
}

// v2Decode splits shell v2 output into stdout, stderr and the exit status
// (-1 if none).
func v2Decode(t *testing.T, b []byte) (stdout, stderr string, exit int) {
	t.Helper()
	exit = -1
	for len(b) > 0 {
		if len(b) < 5 {
			t.Fatalf("truncated v2 packet %q", b)
		}
		n := int(binary.LittleEndian.Uint32(b[1:]))
		data := b[5 : 5+n]
		switch b[0] {
		case v2Stdout:
			stdout += string(data)
		case v2Stderr:
			stderr += string(data)
		case v2Exit:
			exit = int(data[0])
		}
		b = b[5+n:]
	}
	return stdout, stderr, exit
}

func TestTransportHandshake(t *testing.T) {
	d := startDevice(t, Options{MaxData: 4096})
	c := dial(t, d)
	m := c.connect(1 << 20)
	if m.Command != CmdCNXN || m.Arg0 != Version || m.Arg1 != 4096 ||
		!strings.HasPrefix(string(m.Data), "device::") || !strings.Contains(string(m.Data), "features=shell_v2,cmd") {
		t.Fatalf("CNXN answer %v %q", m, m.Data)
	}
	if strings.Contains(string(m.Data), "delayed_ack") {
		t.Fatal("banner advertises delayed_ack")
	}
	// Payloads respect the negotiated maximum and flow control.
	out, largest, ok := c.exchange("exec:screenrecord --output-format=h264 --time-limit 1 -")
	if !ok || len(out) < 100_000 || largest > 4096 {
		t.Fatalf("exec screenrecord: ok %v, %d bytes, largest WRTE %d", ok, len(out), largest)
	}
	if _, _, ok := c.exchange("nosuchservice:"); ok {
		t.Fatal("unknown service opened")
	}
}

func TestTransportAuthAccept(t *testing.T) {
	d := startDevice(t, Options{Auth: AuthAccept})
	c := dial(t, d)
	if m := c.connect(1 << 20); m.Command != CmdAUTH || m.Arg0 != authToken || len(m.Data) != 20 {
		t.Fatalf("want an AUTH token, got %v", m)
	}
	c.send(Message{Command: CmdAUTH, Arg0: authSignature, Data: make([]byte, 256)})
	if m := c.read(); m.Command != CmdCNXN {
		t.Fatalf("signature answered with %v", m)
	}
}

func TestTransportIgnoreConnect(t *testing.T) {
	d := startDevice(t, Options{})
	d.SetFault(FaultIgnoreConnect, true)
	c := dial(t, d)
	c.send(Message{Command: CmdCNXN, Arg0: Version, Arg1: 4096, Data: []byte("host::\x00")})
	_ = c.nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if m, err := ReadMessage(c.br, 1<<20); err == nil {
		t.Fatalf("ignored CNXN answered with %v", m)
	}
}

func TestTransportShellV2(t *testing.T) {
	d := startDevice(t, Options{})
	c := dial(t, d)
	c.connect(1 << 20)

	out, _, _ := c.exchange("shell,v2,raw:echo out; nosuch; exit 7")
	stdout, stderr, exit := v2Decode(t, out)
	if stdout != "out\n" || !strings.Contains(stderr, "nosuch: inaccessible or not found") || exit != 7 {
		t.Fatalf("stdout %q stderr %q exit %d", stdout, stderr, exit)
	}

	// Interactive: commands from stdin, one per line, across WRTEs.
	out, _, _ = c.exchange("shell,v2,raw:",
		v2Packet(v2WindowSize, "24x80,0x0\x00"),
		v2Packet(v2Stdin, "input tap 1 2\ninput sw"),
		v2Packet(v2Stdin, "ipe 1 2 3 4 100\necho done\n"),
		v2Packet(v2CloseStdin, ""))
	stdout, _, exit = v2Decode(t, out)
	if stdout != "done\n" || exit != 0 {
		t.Fatalf("interactive: stdout %q exit %d", stdout, exit)
	}
	if got := strings.Join(d.Inputs(), "|"); got != "tap 1 2|swipe 1 2 3 4 100" {
		t.Fatalf("inputs %q", got)
	}

	// v1 interactive ends at exit.
	out, _, _ = c.exchange("shell:", []byte("input keyevent 3\nexit\ninput keyevent 4\n"))
	if len(out) != 0 || len(d.Inputs()) != 3 {
		t.Fatalf("v1 interactive: out %q, inputs %q", out, d.Inputs())
	}

	// Malformed input is refused with a usage message and not recorded.
	out, _, _ = c.exchange("shell,v2,raw:input tap x 2")
	if _, stderr, exit := v2Decode(t, out); exit != 1 || !strings.Contains(stderr, "Usage: input") || len(d.Inputs()) != 3 {
		t.Fatalf("bad input: stderr %q exit %d inputs %q", stderr, exit, d.Inputs())
	}
}

func TestTransportCommandsAndHandlers(t *testing.T) {
	d := startDevice(t, Options{SDK: 34})
	d.HandleCommand("app_process", func(ctx context.Context, env, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		io.WriteString(stdout, strings.Join(env, ",")+" "+strings.Join(args, ","))
		return 0
	})
	done := make(chan struct{})
	d.HandleAbstract("scrcpy", func(nc net.Conn) {
		defer close(done)
		b := make([]byte, 4)
		if _, err := io.ReadFull(nc, b); err == nil {
			nc.Write(bytes.ToUpper(b))
		}
	})
	c := dial(t, d)
	c.connect(1 << 20)
	if out, _, _ := c.exchange("exec:CLASSPATH=/x.jar app_process / Server 2.7"); string(out) != "CLASSPATH=/x.jar app_process,/,Server,2.7" {
		t.Fatalf("app_process: %q", out)
	}
	if out, _, ok := c.exchange("localabstract:scrcpy", []byte("ping")); !ok || string(out) != "PING" {
		t.Fatalf("localabstract: ok %v, %q", ok, out)
	}
	<-done
	if _, _, ok := c.exchange("localabstract:other"); ok {
		t.Fatal("localabstract without a handler opened")
	}
	ln := d.ListenAbstract("other")
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		b := make([]byte, 4)
		if _, err := io.ReadFull(nc, b); err == nil {
			_, _ = nc.Write(bytes.ToLower(b))
		}
	}()
	if out, _, ok := c.exchange("localabstract:other", []byte("PONG")); !ok || string(out) != "pong" {
		t.Fatalf("ListenAbstract: ok %v, %q", ok, out)
	}
	<-accepted
	_ = ln.Close()
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	if _, _, ok := c.exchange("localabstract:other"); ok {
		t.Fatal("localabstract opened after the listener closed")
	}
	out, _, _ := c.exchange("exec:screenrecord --help")
	if !strings.Contains(string(out), "--time-limit") || !strings.Contains(string(out), "Set to 0") {
		t.Fatalf("SDK 34 help: %q", out)
	}
	if out, _, _ := c.exchange("exec:getprop ro.build.version.sdk"); string(out) != "34\n" {
		t.Fatalf("sdk: %q", out)
	}
}

func TestScreenrecordFlags(t *testing.T) {
	d := startDevice(t, Options{})
	c := dial(t, d)
	c.connect(1 << 20)
	tests := []struct {
		args, stderr string
		exit         int
	}{
		{"--help", "Default / maximum is 180", 0},
		{"--time-limit 0 -", "outside acceptable range [1,180]", 2},
		{"--time-limit 181 -", "outside acceptable range", 2},
		{"--size 1280 -", "Invalid size", 2},
		{"--bit-rate 10 -", "Bit rate", 2},
		{"--output-format=webm -", "Unknown format", 2},
		{"--output-format=h264", "Must specify output file", 2},
		{"--frobnicate -", "Unknown option", 2},
		{"-", "only write to stdout with --output-format=h264", 2},
		{"--size 0x360 -", "Invalid size", 2},
		{"--size 321x180 --output-format=h264 -", "unable to configure video/avc codec at 321x180", 1},
		{"--size 8192x4608 --output-format=h264 -", "unable to configure video/avc codec", 1},
	}
	for _, tt := range tests {
		out, _, _ := c.exchange("shell,v2,raw:screenrecord " + tt.args)
		if _, stderr, exit := v2Decode(t, out); exit != tt.exit || !strings.Contains(stderr, tt.stderr) {
			t.Errorf("screenrecord %s: exit %d, stderr %q", tt.args, exit, stderr)
		}
	}
	// A file output lands in the file system; flags are recorded.
	out, _, _ := c.exchange("shell,v2,raw:screenrecord --bit-rate 4M --size 640x360 --time-limit 1 /sdcard/a.mp4")
	if _, stderr, exit := v2Decode(t, out); exit != 0 {
		t.Fatalf("to a file: exit %d %q", exit, stderr)
	}
	if f := d.Files()["/sdcard/a.mp4"]; len(f.Data) < 100_000 {
		t.Fatalf("recorded file of %d bytes", len(f.Data))
	}
	r := d.Recordings()
	if len(r) != 1 || r[0].BitRate != 4_000_000 || r[0].Size != "640x360" || r[0].TimeLimit != time.Second {
		t.Fatalf("recordings %+v", r)
	}
	// The file holds pictures of the asked size, not the display's.
	sc, err := parseClip(d.Files()["/sdcard/a.mp4"].Data)
	if err != nil || sc.width != 640 || sc.height != 360 {
		t.Fatalf("recorded %dx%d, %v; want 640x360", sc.width, sc.height, err)
	}
}

// TestTransportCancel closes a screenrecord stream from the host side, as
// the adb server does when its client goes away, and checks the device
// stops it and keeps serving.
func TestTransportCancel(t *testing.T) {
	d := startDevice(t, Options{})
	d.HandleTCP(27183, func(nc net.Conn) { _, _ = nc.Write([]byte("tcp")) })
	c := dial(t, d)
	c.connect(1 << 20)
	c.send(Message{Command: CmdOPEN, Arg0: 100, Data: []byte("exec:screenrecord --output-format=h264 -\x00")})
	m := c.read()
	if m.Command != CmdOKAY {
		t.Fatalf("OPEN answered with %v", m)
	}
	remote := m.Arg0
	if m := c.read(); m.Command != CmdWRTE {
		t.Fatalf("want video, got %v", m)
	}
	c.send(Message{Command: CmdCLSE, Arg0: 100, Arg1: remote})
	// Nothing more on that stream once whatever was in flight is drained;
	// the next stream works.
	if out, _, ok := c.exchange("tcp:27183"); !ok || string(out) != "tcp" {
		t.Fatalf("tcp: handler: ok %v %q", ok, out)
	}
	if d.Connects() != 1 {
		t.Fatalf("connects %d", d.Connects())
	}
}
