package adbdevice

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
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
	logLevel                                int // index into scrcpyLogLevels; default info
	audioEncoder                            string
	clipboardAutosync                       bool
}

// scrcpyLogLevels are Ln.Level's names, most verbose first.
var scrcpyLogLevels = []string{"verbose", "debug", "info", "warn", "error"}

const scrcpyLogInfo = 2

// scrcpyOpusEncoder is the one audio encoder the emulated device has.
const scrcpyOpusEncoder = "c2.android.opus.encoder"

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
	o := scrcpyOptions{video: true, audio: true, control: true, dummy: true, deviceMeta: true, codecMeta: true, frameMeta: true,
		logLevel: scrcpyLogInfo, clipboardAutosync: true}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "[server] ERROR: Exception on thread Thread[main,5,main]\njava.lang.IllegalArgumentException: "+format+"\n", a...)
		return 1
	}
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
			switch v {
			case "h264":
			case "h265", "av1":
				fmt.Fprintf(stderr, "[server] ERROR: emulated server: video_codec %s not supported\n", v)
				return 1
			default:
				return fail("Video codec %s not supported", v)
			}
		case "audio_codec":
			switch v {
			case "opus":
			case "aac", "flac", "raw":
				fmt.Fprintf(stderr, "[server] ERROR: emulated server: audio_codec %s not supported\n", v)
				return 1
			default:
				return fail("Audio codec %s not supported", v)
			}
		case "log_level":
			i := slices.Index(scrcpyLogLevels, strings.ToLower(v))
			if i < 0 {
				return fail("No enum constant com.genymobile.scrcpy.util.Ln.Level.%s", strings.ToUpper(v))
			}
			o.logLevel = i
		case "audio_encoder":
			o.audioEncoder = v
		case "clipboard_autosync":
			o.clipboardAutosync = b
		case "max_size", "video_bit_rate", "audio_bit_rate", "display_id", "screen_off_timeout":
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil {
				return fail("For input string: \"%s\"", v)
			}
			if k == "display_id" && n != 0 {
				fmt.Fprintf(stderr, "[server] ERROR: Display %d not found\n", n)
				return 1
			}
		case "max_fps", "angle":
			if _, err := strconv.ParseFloat(v, 32); err != nil {
				return fail("Invalid float value for %s: \"%s\"", k, v)
			}
		case "video_codec_options", "audio_codec_options":
			if err := parseCodecOptions(v); err != nil {
				return fail("%v", err)
			}
		case "stay_awake", "power_off_on_close", "show_touches", "cleanup", "power_on", "downsize_on_error", "audio_dup":
		default:
			if o.logLevel <= 3 {
				fmt.Fprintf(stderr, "[server] WARN: Unknown server option: %s\n", k)
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
	ss := &scrcpySession{d: d, o: o, stdout: stdout, stderr: stderr, out: make(chan []byte, scrcpyDeviceQueue)}
	ss.logf(scrcpyLogInfo, "Device: [mediasvc] %s %s (Android %s)", "mediasvc", d.opts.Model, releaseOf(d.opts.SDK))
	return ss.serve(ctx, name)
}

// parseCodecOptions checks "key[:type]=value,…" as CodecOption.parse does.
func parseCodecOptions(s string) error {
	if s == "" {
		return nil
	}
	var opts []string
	var cur strings.Builder
	esc := false
	for _, r := range s {
		switch {
		case r == '\\' && !esc:
			esc = true
		case r == ',' && !esc:
			opts = append(opts, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
			esc = false
		}
	}
	if cur.Len() > 0 {
		opts = append(opts, cur.String())
	}
	for _, o := range opts {
		kt, v, ok := strings.Cut(o, "=")
		if !ok {
			return errors.New("'=' expected")
		}
		if kt == "" {
			//lint:ignore ST1005 the real scrcpy server's Java exception message, word for word
			return errors.New("Key may not be null")
		}
		_, typ, typed := strings.Cut(kt, ":")
		if !typed {
			typ = "int"
		}
		var err error
		switch typ {
		case "int":
			_, err = strconv.ParseInt(v, 10, 32)
		case "long":
			_, err = strconv.ParseInt(v, 10, 64)
		case "float":
			_, err = strconv.ParseFloat(v, 32)
		case "string":
		default:
			//lint:ignore ST1005 the real scrcpy server's Java exception message, word for word
			return fmt.Errorf("Invalid codec option type (int, long, float, str): %s", typ)
		}
		if err != nil {
			//lint:ignore ST1005 the real scrcpy server's Java exception message, word for word
			return fmt.Errorf("For input string: \"%s\"", v)
		}
	}
	return nil
}

// scrcpySession is one emulated scrcpy server's run: its sockets, its
// current video size (what PositionMapper checks every positional event
// against) and its pointers.
type scrcpySession struct {
	d              *Device
	o              scrcpyOptions
	stdout, stderr io.Writer

	logMu sync.Mutex // one log line at a time

	mu       sync.Mutex
	vw, vh   int     // current video size; 0 before the first config packet
	pointers []int64 // ids of the pointers down, by local index (PointersState)

	control net.Conn
	// out queues device messages for the control socket's sender, as
	// DeviceMessageSender's 16-message queue does (full: dropped).
	out chan []byte
}

// scrcpyDeviceQueue is DeviceMessageSender's queue length.
const scrcpyDeviceQueue = 16

// logf prints a log line as Ln does: info and below on stdout, warnings
// and errors on stderr, each only at or above the log_level. The write
// blocks while the host does not read, as the real server's does.
func (ss *scrcpySession) logf(level int, format string, a ...any) {
	if level < ss.o.logLevel {
		return
	}
	w := ss.stdout
	if level > scrcpyLogInfo {
		w = ss.stderr
	}
	ss.logMu.Lock()
	defer ss.logMu.Unlock()
	fmt.Fprintf(w, "[server] %s: %s\n", strings.ToUpper(scrcpyLogLevels[level]), fmt.Sprintf(format, a...))
}

// serve accepts the sockets on name and serves them until one closes or
// ctx ends.
func (ss *scrcpySession) serve(ctx context.Context, name string) int {
	d, o := ss.d, ss.o
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
		ss.control = control
	}

	status := 0
	reset := make(chan struct{}, 1)
	var wg sync.WaitGroup
	if control != nil {
		wg.Go(func() { ss.sender(ctx, control) })
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			if err := ss.controlLoop(control, reset); err != nil && ctx.Err() == nil {
				ss.logf(4, "Controller error: %v", err)
			}
		}()
		if o.clipboardAutosync {
			unwatch := d.watchClipboard(func(text string) {
				ss.sendDevice(appendDeviceClipboard(nil, text))
			})
			defer unwatch()
		}
	}
	if video != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			ss.video(ctx, video, reset)
		}()
	}
	if audio != nil {
		if o.audioEncoder != "" && o.audioEncoder != scrcpyOpusEncoder {
			// A ConfigurationException: codec id 1 ("error"), and the
			// server stops.
			ss.logf(4, "Unknown encoder: %s", o.audioEncoder)
			_, _ = audio.Write([]byte{0, 0, 0, 1})
			cancel()
			status = 1
		} else {
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
	}
	<-ctx.Done()
	for _, s := range socks {
		_ = s.Close()
	}
	wg.Wait()
	return status
}

// setVideoSize records the size of the stream's current config packet.
func (ss *scrcpySession) setVideoSize(c *clip) {
	ss.mu.Lock()
	ss.vw, ss.vh = c.width, c.height
	ss.mu.Unlock()
}

// video streams the clip as scrcpy does: codec meta (the capture size),
// then a config packet (SPS/PPS) and the pictures without them, each with
// a 12-byte header; a reset or a rotation restarts at an IDR after a new
// config packet (and a rotation changes the video size, with no new codec
// meta).
func (ss *scrcpySession) video(ctx context.Context, w io.Writer, reset <-chan struct{}) {
	d, o := ss.d, ss.o
	bw := bufio.NewWriterSize(w, 64*1024)
	rotated := d.Fault(FaultRotated)
	c := d.clip
	if rotated {
		c = d.rclip
	}
	if o.codecMeta {
		var meta [12]byte
		binary.BigEndian.PutUint32(meta[0:], scrcpyCodecH264)
		binary.BigEndian.PutUint32(meta[4:], uint32(c.width))
		binary.BigEndian.PutUint32(meta[8:], uint32(c.height))
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
			// The encoder restarted at this size: from now on the
			// controller maps (and checks) positions against it.
			ss.setVideoSize(c)
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

// Device message types (DeviceMessage.TYPE_*).
const (
	scrcpyDevClipboard    = 0
	scrcpyDevAckClipboard = 1
)

// scrcpyClipboardMax is the longest clipboard text one device message
// carries (DeviceMessageWriter: 256 KiB less the 5-byte header); longer
// texts are cut at a UTF-8 boundary.
const scrcpyClipboardMax = 1<<18 - 5

func appendDeviceClipboard(b []byte, text string) []byte {
	raw := []byte(text)
	if len(raw) > scrcpyClipboardMax {
		n := scrcpyClipboardMax
		for n > 0 && !utf8.RuneStart(raw[n]) {
			n--
		}
		raw = raw[:n]
	}
	b = append(b, scrcpyDevClipboard)
	b = binary.BigEndian.AppendUint32(b, uint32(len(raw)))
	return append(b, raw...)
}

// sendDevice queues one device message for the control socket (see
// sender); a full queue drops it with a warning, as the real server does.
func (ss *scrcpySession) sendDevice(msg []byte) {
	select {
	case ss.out <- msg:
	default:
		ss.logf(scrcpyLogInfo+1, "Device message dropped: %d", msg[0])
	}
}

// sender writes the queued device messages to the control socket until
// ctx ends or a write fails (then the queue fills and later messages are
// dropped), as DeviceMessageSender's thread does.
func (ss *scrcpySession) sender(ctx context.Context, w io.Writer) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-ss.out:
			if _, err := w.Write(m); err != nil {
				return
			}
		}
	}
}

var errScrcpyControl = errors.New("bad scrcpy control message")

// scrcpyMaxString is where the emulated server's heap ends for one string
// of a control message (the real reader has no limit of its own: INJECT_TEXT
// and SET_CLIPBOARD take what their length says).
const scrcpyMaxString = 64 << 20

// mapPosition is PositionMapper.map: a position whose video size is not
// the current one is dropped (nil, false; logged at verbose only); else
// the point is scaled from the video to the display in its current
// orientation.
func (ss *scrcpySession) mapPosition(x, y int32, w, h uint16) (int, int, bool) {
	if !ss.o.video {
		return int(x), int(y), true // no display data: raw coordinates
	}
	ss.mu.Lock()
	vw, vh := ss.vw, ss.vh
	ss.mu.Unlock()
	if int(w) != vw || int(h) != vh {
		ss.logf(0, "Ignore positional event generated for size %dx%d (current size is %dx%d)", w, h, vw, vh)
		ss.d.recordIgnored(fmt.Sprintf("scrcpy position for %dx%d (video is %dx%d)", w, h, vw, vh))
		return 0, 0, false
	}
	dw, dh := ss.d.displaySize()
	return int(int64(x) * int64(dw) / int64(vw)), int(int64(y) * int64(dh) / int64(vh)), true
}

// touch applies one INJECT_TOUCH_EVENT to the pointers as PointersState
// and Controller.injectTouch do, and returns the MotionEvent action it
// injects ("down", "pointer_down 1", "move", "up", "pointer_up 0",
// "hover_move", …), or "" when the server drops it (too many pointers).
func (ss *scrcpySession) touch(action byte, id int64, actionButton, buttons uint32) string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	idx := slices.Index(ss.pointers, id)
	if idx < 0 {
		if len(ss.pointers) >= 10 {
			return ""
		}
		ss.pointers = append(ss.pointers, id)
		idx = len(ss.pointers) - 1
	}
	count := len(ss.pointers)
	name := map[byte]string{0: "down", 1: "up", 2: "move", 3: "cancel", 7: "hover_move", 9: "hover_enter", 10: "hover_exit"}[action]
	if name == "" {
		name = strconv.Itoa(int(action))
	}
	// A real mouse (hover, or a button other than the primary) is up once
	// no button is held; anything else is a finger, up on ACTION_UP.
	up := action == 1
	if id == -1 && (action == 7 || (actionButton|buttons)&^1 != 0) {
		up = buttons == 0
	}
	if count > 1 && (action == 0 || action == 1) {
		name = "pointer_" + name + " " + strconv.Itoa(idx)
	}
	if up {
		ss.pointers = slices.Delete(ss.pointers, idx, idx+1)
	}
	return name
}

// controlLoop reads control messages until the socket closes, applies
// them as the real server does (positions checked and mapped, pointers
// tracked, clipboard set and acknowledged) and records them as inputs.
func (ss *scrcpySession) controlLoop(r io.Reader, reset chan<- struct{}) error {
	d := ss.d
	br := bufio.NewReader(r)
	be := binary.BigEndian
	read := func(n int) ([]byte, error) {
		if n > scrcpyMaxString {
			// The server allocates the length it is given: past its heap
			// that is an OutOfMemoryError, and the controller dies.
			return nil, fmt.Errorf("java.lang.OutOfMemoryError: %d bytes: %w", n, errScrcpyControl)
		}
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
			if r := be.Uint32(b[5:]); r != 0 {
				rec += fmt.Sprintf(" repeat=%d", r)
			}
			if m := be.Uint32(b[9:]); m != 0 {
				rec += fmt.Sprintf(" meta=%#x", m)
			}
		case scrcpyInjectText:
			b, err := read(4)
			if err != nil {
				return err
			}
			t, err := read(int(be.Uint32(b)))
			if err != nil {
				return err
			}
			// Characters the virtual keyboard map cannot type are
			// skipped, with a warning.
			var typed strings.Builder
			for _, r := range string(t) {
				if scrcpyTypeable(r) {
					typed.WriteRune(r)
				} else {
					ss.logf(3, "Could not inject char u+%04x", r)
					d.recordIgnored(fmt.Sprintf("scrcpy char u+%04x", r))
				}
			}
			if typed.Len() == 0 {
				continue
			}
			rec = "text " + typed.String()
		case scrcpyInjectTouch:
			b, err := read(31)
			if err != nil {
				return err
			}
			id := int64(be.Uint64(b[1:]))
			x, y, ok := ss.mapPosition(int32(be.Uint32(b[9:])), int32(be.Uint32(b[13:])), be.Uint16(b[17:]), be.Uint16(b[19:]))
			if !ok {
				continue
			}
			ma := ss.touch(b[0], id, be.Uint32(b[23:]), be.Uint32(b[27:]))
			if ma == "" {
				ss.logf(3, "Too many pointers for touch event")
				d.recordIgnored("scrcpy touch: too many pointers")
				continue
			}
			rec = fmt.Sprintf("touch %s %d %d", ma, x, y)
			if id != -1 {
				rec += fmt.Sprintf(" id=%d", id)
			}
			if p := be.Uint16(b[21:]); p != 0xffff && b[0] != 1 {
				rec += fmt.Sprintf(" pressure=%.2f", float64(p)/65536)
			}
			if btn := be.Uint32(b[27:]); id == -1 && btn&^1 != 0 {
				rec += fmt.Sprintf(" buttons=%d", btn)
			}
		case scrcpyInjectScroll:
			b, err := read(20)
			if err != nil {
				return err
			}
			x, y, ok := ss.mapPosition(int32(be.Uint32(b[0:])), int32(be.Uint32(b[4:])), be.Uint16(b[8:]), be.Uint16(b[10:]))
			if !ok {
				continue
			}
			h := i16FixedToFloat(int16(be.Uint16(b[12:]))) * 16
			v := i16FixedToFloat(int16(be.Uint16(b[14:]))) * 16
			rec = fmt.Sprintf("scroll %d %d h=%g v=%g", x, y, h, v)
		case scrcpyBackOrScreenOn:
			if _, err := read(1); err != nil {
				return err
			}
			rec = "back"
		case scrcpyExpandNotif, scrcpyExpandSettings, scrcpyCollapsePanels, scrcpyRotateDevice, scrcpyOpenKeyboardPrefs:
			rec = map[byte]string{scrcpyExpandNotif: "expand_notification_panel", scrcpyExpandSettings: "expand_settings_panel",
				scrcpyCollapsePanels: "collapse_panels", scrcpyRotateDevice: "rotate", scrcpyOpenKeyboardPrefs: "open_hard_keyboard_settings"}[typ]
		case scrcpyGetClipboard:
			b, err := read(1)
			if err != nil {
				return err
			}
			rec = "get_clipboard " + strconv.Itoa(int(b[0]))
			if !ss.o.clipboardAutosync {
				ss.sendDevice(appendDeviceClipboard(nil, d.Clipboard()))
			}
		case scrcpySetDisplayPower:
			b, err := read(1)
			if err != nil {
				return err
			}
			rec = "set_display_power " + strconv.Itoa(int(b[0]))
		case scrcpySetClipboard:
			b, err := read(13)
			if err != nil {
				return err
			}
			seq, paste := be.Uint64(b), b[8] != 0
			t, err := read(int(be.Uint32(b[9:])))
			if err != nil {
				return err
			}
			// The change it makes is not echoed back (isSettingClipboard).
			d.setClipboard(string(t), false)
			ss.logf(scrcpyLogInfo, "Device clipboard set")
			rec = "set_clipboard " + string(t)
			if paste {
				rec += " (paste)"
			}
			if seq != 0 {
				ss.sendDevice(binary.BigEndian.AppendUint64([]byte{scrcpyDevAckClipboard}, seq))
			}
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
			// Logged from the controller's thread: a host that stops
			// reading the server's output blocks it here.
			ss.logf(scrcpyLogInfo, "Video capture reset")
			select {
			case reset <- struct{}{}:
			default:
			}
		default:
			//lint:ignore ST1005 the real scrcpy server's Java exception message, word for word
			return fmt.Errorf("Unknown event type: %d: %w", typ, errScrcpyControl)
		}
		d.recordInput("scrcpy " + rec)
	}
}

// i16FixedToFloat is Binary.i16FixedPointToFloat.
func i16FixedToFloat(v int16) float64 {
	if v == 0x7fff {
		return 1
	}
	return float64(v) / 0x8000
}

// scrcpyTypeable reports whether the server's virtual keyboard map (plus
// KeyComposition's dead-key letters) can type r.
func scrcpyTypeable(r rune) bool {
	if r == '\n' || r == '\t' || (r >= 0x20 && r <= 0x7e) {
		return true
	}
	return strings.ContainsRune(scrcpyComposable, r)
}

// scrcpyComposable are the letters KeyComposition (scrcpy 3.3.4) types as
// a dead key and a base letter.
const scrcpyComposable = "ÀÈÌÒÙàèìòùǸǹẀẁỲỳÁÉÍÓÚÝáéíóúýĆćĹĺŃńŔŕŚśŹźǴǵḈḉḰḱḾḿṔṕẂẃ" +
	"ÂÊÎÔÛâêîôûĈĉĜĝĤĥĴĵŜŝŴŵŶŷẐẑÃÑÕãñõĨĩŨũẼẽỸỹÄËÏÖÜäëïöüÿŸḦḧẄẅẌẍẗ"
