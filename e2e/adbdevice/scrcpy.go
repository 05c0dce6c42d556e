package adbdevice

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ScrcpyVersion is the scrcpy server version the emulated one claims by
// default. Its wire protocol is the scrcpy 3.x one: on the first socket a
// dummy byte (forward tunnels) and the 64-byte device name; on the video
// socket the codec id, width and height (u32 BE each), then packets with a
// 12-byte header (u64 BE PTS in µs with bit 63 = config, bit 62 = key
// frame; u32 BE size); control messages with types 0–17 (17 RESET_VIDEO).
const ScrcpyVersion = "3.3.4"

// scrcpyMainClass is the class app_process must be asked to run.
const scrcpyMainClass = "com.genymobile.scrcpy.Server"

// Scrcpy codec ids (u32 BE on the video and audio sockets).
const (
	scrcpyCodecH264     uint32 = 0x68323634
	scrcpyCodecOpus     uint32 = 0x6f707573
	scrcpyCodecDisabled uint32 = 0
)

// Scrcpy packet header flags, in the PTS field.
const (
	scrcpyFlagConfig = uint64(1) << 63
	scrcpyFlagKey    = uint64(1) << 62
)

// Scrcpy control message types (ControlMessage.TYPE_*, scrcpy 3.x).
const (
	scrcpyInjectKeycode     = 0
	scrcpyInjectText        = 1
	scrcpyInjectTouch       = 2
	scrcpyInjectScroll      = 3
	scrcpyBackOrScreenOn    = 4
	scrcpyExpandNotif       = 5
	scrcpyExpandSettings    = 6
	scrcpyCollapsePanels    = 7
	scrcpyGetClipboard      = 8
	scrcpySetClipboard      = 9
	scrcpySetDisplayPower   = 10
	scrcpyRotateDevice      = 11
	scrcpyUHIDCreate        = 12
	scrcpyUHIDInput         = 13
	scrcpyUHIDDestroy       = 14
	scrcpyOpenKeyboardPrefs = 15
	scrcpyStartApp          = 16
	scrcpyResetVideo        = 17
)

// EnableScrcpy makes the device run an emulated scrcpy server when asked
// to, as `adb shell CLASSPATH=JAR app_process / com.genymobile.scrcpy.Server
// VERSION key=value...` does on a phone: JAR must have been pushed (any
// content), VERSION must equal version (empty: ScrcpyVersion), and only
// forward tunnels (tunnel_forward=true) are emulated. The server listens on
// localabstract:scrcpy_SCID (scrcpy without scid) for the video, audio and
// control sockets (those enabled, in that order), streams the clip with
// scrcpy's framing (config packet first, a fresh config packet and IDR on
// RESET_VIDEO and on rotation, switching to the rotated clip), streams
// Options.Audio (the demo Opus by default) on an enabled audio socket
// (codec id opus, OpusHead as config packet, 20 ms packets; codec id 0,
// "disabled", when there is no audio), and records control messages among
// Inputs as "scrcpy …" strings:
//
//	scrcpy touch down|up|move X Y WxH            (pointer coordinates, video size)
//	scrcpy key down|up KEYCODE
//	scrcpy text TEXT
//	scrcpy scroll X Y H V
//	scrcpy back, scrcpy reset_video, scrcpy rotate, …
//
// The server ends when a socket closes or its shell is closed.
// Registration replaces any app_process command.
func (d *Device) EnableScrcpy(version string) {
	if version == "" {
		version = ScrcpyVersion
	}
	d.HandleCommand("app_process", func(ctx context.Context, env, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		return d.scrcpyServer(ctx, version, env, args, stdout, stderr)
	})
}

// ScrcpyStarts returns the arguments of every emulated scrcpy server
// started (after the class name: version, then key=value options).
func (d *Device) ScrcpyStarts() [][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([][]string, len(d.scrcpyRuns))
	for i, a := range d.scrcpyRuns {
		out[i] = append([]string(nil), a...)
	}
	return out
}

type scrcpyOptions struct {
	scid                                    string
	video, audio, control                   bool
	dummy, deviceMeta, codecMeta, frameMeta bool
	tunnelForward                           bool
}

func (d *Device) scrcpyServer(ctx context.Context, version string, env, args []string, stdout, stderr io.Writer) int {
	classpath := ""
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "CLASSPATH="); ok {
			classpath = v
		}
	}
	if len(args) < 3 || args[2] != scrcpyMainClass {
		fmt.Fprintln(stderr, "usage: app_process [java-options] cmd-dir start-class-name [options]")
		return 1
	}
	if _, ok := d.file(classpath); !ok {
		fmt.Fprintf(stderr, "Error: Could not find class '%s'\n", scrcpyMainClass)
		return 1
	}
	rest := args[3:]
	d.mu.Lock()
	d.scrcpyRuns = append(d.scrcpyRuns, append([]string(nil), rest...))
	d.mu.Unlock()
	if len(rest) == 0 || rest[0] != version {
		got := ""
		if len(rest) > 0 {
			got = rest[0]
		}
		fmt.Fprintf(stderr, "[server] ERROR: The server version (%s) does not match the client (%s)\n", version, got)
		return 1
	}
	o := scrcpyOptions{video: true, audio: true, control: true, dummy: true, deviceMeta: true, codecMeta: true, frameMeta: true}
	for _, kv := range rest[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			fmt.Fprintf(stderr, "[server] ERROR: Invalid key=value pair: \"%s\"\n", kv)
			return 1
		}
		b := v == "true"
		switch k {
		case "scid":
			if _, err := strconv.ParseUint(v, 16, 31); err != nil {
				fmt.Fprintf(stderr, "[server] ERROR: scid must be a 31-bit hex value: %q\n", v)
				return 1
			}
			o.scid = v
		case "video":
			o.video = b
		case "audio":
			o.audio = b
		case "control":
			o.control = b
		case "tunnel_forward":
			o.tunnelForward = b
		case "send_dummy_byte":
			o.dummy = b
		case "send_device_meta":
			o.deviceMeta = b
		case "send_codec_meta":
			o.codecMeta = b
		case "send_frame_meta":
			o.frameMeta = b
		case "raw_stream":
			if b {
				o.dummy, o.deviceMeta, o.codecMeta, o.frameMeta = false, false, false, false
			}
		case "video_codec":
			if v != "h264" {
				fmt.Fprintf(stderr, "[server] ERROR: emulated server: video_codec %s not supported\n", v)
				return 1
			}
		}
	}
	if !o.tunnelForward {
		fmt.Fprintln(stderr, "[server] ERROR: emulated server: only tunnel_forward=true is supported")
		return 1
	}
	if !o.video && !o.audio && !o.control {
		fmt.Fprintln(stderr, "[server] ERROR: No video, no audio, no control")
		return 1
	}
	name := "scrcpy"
	if o.scid != "" {
		n, _ := strconv.ParseUint(o.scid, 16, 31)
		name = fmt.Sprintf("scrcpy_%08x", n)
	}
	fmt.Fprintf(stdout, "[server] INFO: Device: [mediasvc] %s %s (Android %s)\n", "mediasvc", d.opts.Model, releaseOf(d.opts.SDK))
	return d.scrcpySession(ctx, name, o, stderr)
}

// scrcpySession accepts the sockets on name and serves them until one
// closes or ctx ends.
func (d *Device) scrcpySession(ctx context.Context, name string, o scrcpyOptions, stderr io.Writer) int {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	want := 0
	for _, on := range []bool{o.video, o.audio, o.control} {
		if on {
			want++
		}
	}
	ln := d.ListenAbstract(name)
	defer ln.Close()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	var socks []net.Conn
	defer func() {
		for _, s := range socks {
			_ = s.Close()
		}
	}()
	for len(socks) < want {
		nc, err := ln.Accept()
		if err != nil {
			return 1
		}
		socks = append(socks, nc)
		// The dummy byte goes out as soon as the first socket is accepted,
		// so the client knows the server is there.
		if len(socks) == 1 && o.dummy {
			if _, err := nc.Write([]byte{0}); err != nil {
				return 1
			}
		}
	}
	_ = ln.Close() // the real server stops listening once connected

	if o.deviceMeta {
		var meta [64]byte
		copy(meta[:63], d.opts.Model)
		if _, err := socks[0].Write(meta[:]); err != nil {
			return 1
		}
	}
	var video, audio, control net.Conn
	i := 0
	if o.video {
		video, i = socks[i], i+1
	}
	if o.audio {
		audio, i = socks[i], i+1
	}
	if o.control {
		control = socks[i]
	}

	reset := make(chan struct{}, 1)
	var wg sync.WaitGroup
	if control != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			if err := d.scrcpyControl(control, reset); err != nil && ctx.Err() == nil {
				fmt.Fprintf(stderr, "[server] ERROR: controller: %v\n", err)
			}
		}()
	}
	if video != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			d.scrcpyVideo(ctx, video, o, reset)
		}()
	}
	if audio != nil {
		wg.Add(2)
		go func() { // notices the client closing the socket
			defer wg.Done()
			defer cancel()
			_, _ = io.Copy(io.Discard, audio)
		}()
		go func() {
			defer wg.Done()
			d.scrcpyAudio(ctx, audio, o)
		}()
	}
	<-ctx.Done()
	for _, s := range socks {
		_ = s.Close()
	}
	wg.Wait()
	return 0
}

// scrcpyVideo streams the clip as scrcpy does: codec meta, then a config
// packet (SPS/PPS) and the pictures without them, each with a 12-byte
// header; a reset or a rotation restarts at an IDR after a new config
// packet.
func (d *Device) scrcpyVideo(ctx context.Context, w io.Writer, o scrcpyOptions, reset <-chan struct{}) {
	bw := bufio.NewWriterSize(w, 64*1024)
	rotated := d.Fault(FaultRotated)
	c := d.clip
	if rotated {
		c = d.rclip
	}
	if o.codecMeta {
		wd, ht := d.displaySize()
		var meta [12]byte
		binary.BigEndian.PutUint32(meta[0:], scrcpyCodecH264)
		binary.BigEndian.PutUint32(meta[4:], uint32(wd))
		binary.BigEndian.PutUint32(meta[8:], uint32(ht))
		if _, err := bw.Write(meta[:]); err != nil {
			return
		}
	}
	packet := func(pts uint64, data []byte) error {
		if o.frameMeta {
			var h [12]byte
			binary.BigEndian.PutUint64(h[0:], pts)
			binary.BigEndian.PutUint32(h[8:], uint32(len(data)))
			if _, err := bw.Write(h[:]); err != nil {
				return err
			}
		}
		if _, err := bw.Write(data); err != nil {
			return err
		}
		return bw.Flush()
	}
	fps := time.Duration(d.opts.FPS)
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	pic := 0 // index into c.pics
	config := true
	for n := 0; ; n++ {
		at := time.Duration(n) * time.Second / fps
		if wait := time.Until(start.Add(at)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-reset:
				config, pic = true, 0
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		if r := d.Fault(FaultRotated); r != rotated {
			rotated, config, pic = r, true, 0
			if c = d.clip; rotated {
				c = d.rclip
			}
		}
		if config {
			if err := packet(scrcpyFlagConfig, c.params); err != nil {
				return
			}
			config = false
			pic = 0
		} else if d.Fault(FaultStaticScreen) {
			continue
		}
		p := c.pics[pic%len(c.pics)]
		pic++
		pts := uint64(at / time.Microsecond)
		if p.key {
			pts |= scrcpyFlagKey
		}
		data := p.bare
		if d.Fault(FaultGarbage) {
			data = append(garbage(64), data...)
		}
		if err := packet(pts, data); err != nil {
			return
		}
		if n >= int(fps)/2 && d.Fault(FaultDropMidStream) {
			d.Drop()
			return
		}
	}
}

// scrcpyAudio sends the codec id and, for Opus, the OpusHead as a config
// packet and then the 20 ms packets in real time, looped; with no audio it
// sends the "disabled" codec id only.
func (d *Device) scrcpyAudio(ctx context.Context, w io.Writer, o scrcpyOptions) {
	var id [4]byte
	if d.opus == nil {
		binary.BigEndian.PutUint32(id[:], scrcpyCodecDisabled)
		_, _ = w.Write(id[:])
		return
	}
	if o.codecMeta {
		binary.BigEndian.PutUint32(id[:], scrcpyCodecOpus)
		if _, err := w.Write(id[:]); err != nil {
			return
		}
	}
	packet := func(pts uint64, data []byte) error {
		b := make([]byte, 0, 12+len(data))
		if o.frameMeta {
			b = binary.BigEndian.AppendUint64(b, pts)
			b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
		}
		_, err := w.Write(append(b, data...))
		return err
	}
	if err := packet(scrcpyFlagConfig, d.opus[0]); err != nil {
		return
	}
	const frame = 20 * time.Millisecond
	audio := d.opus[2:]
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for n := 0; ; n++ {
		at := time.Duration(n) * frame
		if wait := time.Until(start.Add(at)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		if err := packet(uint64(at/time.Microsecond), audio[n%len(audio)]); err != nil {
			return
		}
	}
}

var errScrcpyControl = errors.New("bad scrcpy control message")

// scrcpyControl reads control messages until the socket closes, records
// them as inputs and signals RESET_VIDEO on reset.
func (d *Device) scrcpyControl(r io.Reader, reset chan<- struct{}) error {
	br := bufio.NewReader(r)
	be := binary.BigEndian
	read := func(n int) ([]byte, error) {
		b := make([]byte, n)
		_, err := io.ReadFull(br, b)
		return b, err
	}
	action := func(a byte, names ...string) string {
		if int(a) < len(names) {
			return names[a]
		}
		return strconv.Itoa(int(a))
	}
	for {
		typ, err := br.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		var rec string
		switch typ {
		case scrcpyInjectKeycode:
			b, err := read(13)
			if err != nil {
				return err
			}
			rec = fmt.Sprintf("key %s %d", action(b[0], "down", "up"), be.Uint32(b[1:]))
		case scrcpyInjectText:
			b, err := read(4)
			if err != nil {
				return err
			}
			n := be.Uint32(b)
			if n > 300 {
				return fmt.Errorf("text of %d bytes: %w", n, errScrcpyControl)
			}
			t, err := read(int(n))
			if err != nil {
				return err
			}
			rec = "text " + string(t)
		case scrcpyInjectTouch:
			b, err := read(31)
			if err != nil {
				return err
			}
			rec = fmt.Sprintf("touch %s %d %d %dx%d", action(b[0], "down", "up", "move"),
				int32(be.Uint32(b[9:])), int32(be.Uint32(b[13:])), be.Uint16(b[17:]), be.Uint16(b[19:]))
		case scrcpyInjectScroll:
			b, err := read(20)
			if err != nil {
				return err
			}
			rec = fmt.Sprintf("scroll %d %d %d %d", int32(be.Uint32(b[0:])), int32(be.Uint32(b[4:])),
				int16(be.Uint16(b[12:])), int16(be.Uint16(b[14:])))
		case scrcpyBackOrScreenOn:
			if _, err := read(1); err != nil {
				return err
			}
			rec = "back"
		case scrcpyExpandNotif, scrcpyExpandSettings, scrcpyCollapsePanels, scrcpyRotateDevice, scrcpyOpenKeyboardPrefs:
			rec = map[byte]string{scrcpyExpandNotif: "expand_notification_panel", scrcpyExpandSettings: "expand_settings_panel",
				scrcpyCollapsePanels: "collapse_panels", scrcpyRotateDevice: "rotate", scrcpyOpenKeyboardPrefs: "open_hard_keyboard_settings"}[typ]
		case scrcpyGetClipboard, scrcpySetDisplayPower:
			b, err := read(1)
			if err != nil {
				return err
			}
			rec = map[byte]string{scrcpyGetClipboard: "get_clipboard", scrcpySetDisplayPower: "set_display_power"}[typ] + " " + strconv.Itoa(int(b[0]))
		case scrcpySetClipboard:
			b, err := read(13)
			if err != nil {
				return err
			}
			n := be.Uint32(b[9:])
			if n > 1<<18 {
				return fmt.Errorf("clipboard of %d bytes: %w", n, errScrcpyControl)
			}
			t, err := read(int(n))
			if err != nil {
				return err
			}
			rec = "set_clipboard " + string(t)
		case scrcpyUHIDCreate:
			b, err := read(7) // id, vendor, product, name length
			if err != nil {
				return err
			}
			if _, err := read(int(b[6])); err != nil {
				return err
			}
			s, err := read(2)
			if err != nil {
				return err
			}
			if _, err := read(int(be.Uint16(s))); err != nil {
				return err
			}
			rec = fmt.Sprintf("uhid_create %d", be.Uint16(b))
		case scrcpyUHIDInput:
			b, err := read(4)
			if err != nil {
				return err
			}
			if _, err := read(int(be.Uint16(b[2:]))); err != nil {
				return err
			}
			rec = fmt.Sprintf("uhid_input %d", be.Uint16(b))
		case scrcpyUHIDDestroy:
			b, err := read(2)
			if err != nil {
				return err
			}
			rec = fmt.Sprintf("uhid_destroy %d", be.Uint16(b))
		case scrcpyStartApp:
			n, err := br.ReadByte()
			if err != nil {
				return err
			}
			t, err := read(int(n))
			if err != nil {
				return err
			}
			rec = "start_app " + string(t)
		case scrcpyResetVideo:
			rec = "reset_video"
			select {
			case reset <- struct{}{}:
			default:
			}
		default:
			return fmt.Errorf("type %d: %w", typ, errScrcpyControl)
		}
		d.recordInput("scrcpy " + rec)
	}
}
