package adb

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"mediasvc/domain"
)

// ScrcpyOptions are the scrcpy-server options an operator may set (see
// scrcpyCommand for how each maps to the server's key=value arguments).
type ScrcpyOptions struct {
	// StayAwake keeps the device awake while plugged in (stay_awake=true).
	StayAwake bool
	// PowerOffOnClose turns the device's screen off when the capture ends
	// (power_off_on_close=true). Off by default: a farm's next user would
	// find a dark screen.
	PowerOffOnClose bool
	// MaxFPS caps the capture frame rate (max_fps; 0 = the device's own).
	MaxFPS int
	// VideoCodecOptions are MediaFormat keys passed to the encoder
	// (video_codec_options, "key[:type]=value" comma-separated), e.g.
	// "i-frame-interval=2" so joiners find a keyframe without RESET_VIDEO.
	VideoCodecOptions string
	// DisplayID is the display to capture (display_id; 0 = the main one).
	DisplayID int
	// NoClipboardSync turns the server's clipboard autosync off
	// (clipboard_autosync=false); by default the device pushes every
	// clipboard change to us.
	NoClipboardSync bool
}

// Validate reports the first bad field.
func (o ScrcpyOptions) Validate() error {
	if o.MaxFPS < 0 || o.MaxFPS > 240 {
		return fmt.Errorf("scrcpy max_fps %d: want 0..240", o.MaxFPS)
	}
	if o.DisplayID < 0 {
		return fmt.Errorf("scrcpy display_id %d: want ≥ 0", o.DisplayID)
	}
	if err := checkCodecOptions(o.VideoCodecOptions); err != nil {
		return fmt.Errorf("scrcpy video_codec_options: %w", err)
	}
	return nil
}

// checkCodecOptions checks "key[:type]=value,…" as the server parses it
// (CodecOption.parse: \ escapes a comma; type int, long, float or string,
// int by default), so a typo fails at start-up instead of on the device.
// Spaces are refused: the value is one word of the server's command line.
func checkCodecOptions(s string) error {
	if s == "" {
		return nil
	}
	if strings.ContainsAny(s, " \t\n'\"$`;&|<>()") {
		return fmt.Errorf("%q: no spaces, quotes or shell characters", s)
	}
	var opts []string
	var cur strings.Builder
	esc := false
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\':
			esc = true
		case r == ',':
			opts = append(opts, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		opts = append(opts, cur.String())
	}
	for _, o := range opts {
		kt, v, ok := strings.Cut(o, "=")
		if !ok || kt == "" {
			return fmt.Errorf("%q: want key[:type]=value", o)
		}
		k, typ, typed := strings.Cut(kt, ":")
		if k == "" {
			return fmt.Errorf("%q: empty key", o)
		}
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
			return fmt.Errorf("%q: type %q is not int, long, float or string", o, typ)
		}
		if err != nil {
			return fmt.Errorf("%q: %w", o, err)
		}
	}
	return nil
}

// scrcpyCommand is the device command line that starts scrcpy-server:
//
//	adb.scrcpy.audio            → audio=true|false (audio_codec=opus)
//	adb.max_width/max_height    → max_size (the larger side)
//	the bitrate policy's start  → video_bit_rate
//	adb.scrcpy.stay_awake       → stay_awake
//	adb.scrcpy.power_off_on_close → power_off_on_close
//	adb.scrcpy.max_fps          → max_fps
//	adb.scrcpy.video_codec_options → video_codec_options
//	adb.scrcpy.display_id       → display_id
//	adb.scrcpy.clipboard_sync   → clipboard_autosync
//
// and always tunnel_forward=true control=true cleanup=false
// video_codec=h264 log_level=warn (info would log a line per RESET_VIDEO).
func scrcpyCommand(o Options, scid string, maxSize, bitrate int) string {
	sc := o.Scrcpy
	var b strings.Builder
	b.WriteString("CLASSPATH=" + scrcpyRemoteJar + " app_process / com.genymobile.scrcpy.Server " + o.ScrcpyVersion)
	b.WriteString(" scid=" + scid + " log_level=warn tunnel_forward=true audio=" + strconv.FormatBool(o.ScrcpyAudio))
	b.WriteString(" audio_codec=opus control=true cleanup=false video_codec=h264")
	if maxSize > 0 {
		b.WriteString(" max_size=" + strconv.Itoa(maxSize))
	}
	if bitrate > 0 {
		b.WriteString(" video_bit_rate=" + strconv.Itoa(bitrate))
	}
	if sc.MaxFPS > 0 {
		b.WriteString(" max_fps=" + strconv.Itoa(sc.MaxFPS))
	}
	if sc.DisplayID > 0 {
		b.WriteString(" display_id=" + strconv.Itoa(sc.DisplayID))
	}
	if sc.StayAwake {
		b.WriteString(" stay_awake=true")
	}
	b.WriteString(" power_off_on_close=" + strconv.FormatBool(sc.PowerOffOnClose))
	if sc.NoClipboardSync {
		b.WriteString(" clipboard_autosync=false")
	}
	if sc.VideoCodecOptions != "" {
		b.WriteString(" video_codec_options=" + sc.VideoCodecOptions)
	}
	return b.String()
}

// serverLog drains scrcpy-server's output for as long as it runs, passes
// its warnings and errors to our log and keeps the last lines to explain a
// failed start.
type serverLog struct {
	log  *slog.Logger
	mu   sync.Mutex
	tail []string // last lines; guarded by mu
	done chan struct{}
}

const serverLogTail = 8

func newServerLog(log *slog.Logger) *serverLog {
	return &serverLog{log: log, done: make(chan struct{})}
}

// drain reads r to its end, line by line (a line longer than 4 KiB is cut).
func (l *serverLog) drain(r io.Reader) {
	defer close(l.done)
	br := bufio.NewReaderSize(r, 4096)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			s := strings.TrimSpace(string(line))
			if err == bufio.ErrBufferFull {
				s += "…"
				for errors.Is(err, bufio.ErrBufferFull) {
					_, err = br.ReadSlice('\n')
				}
			}
			if s != "" {
				l.add(s)
			}
		}
		if err != nil {
			return
		}
	}
}

func (l *serverLog) add(s string) {
	l.mu.Lock()
	l.tail = append(l.tail, s)
	if len(l.tail) > serverLogTail {
		l.tail = l.tail[len(l.tail)-serverLogTail:]
	}
	l.mu.Unlock()
	switch {
	case strings.Contains(s, "ERROR:"), strings.Contains(s, "WARN:"):
		l.log.Warn("scrcpy-server", "said", truncate(s, 400))
	default:
		l.log.Debug("scrcpy-server", "said", truncate(s, 400))
	}
}

// said returns the last lines the server printed.
func (l *serverLog) said() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.tail, " / ")
}

// explain adds what the server said to err, waiting up to wait for it to
// end (a server that fails prints why and exits).
func (l *serverLog) explain(err error, wait time.Duration) error {
	select {
	case <-l.done:
	case <-time.After(wait):
	}
	if s := l.said(); s != "" {
		if len(s) > 300 {
			s = "…" + s[len(s)-300:] // the last words say why
		}
		return fmt.Errorf("%w (server said %q)", err, s)
	}
	return err
}

// scrcpy control message types (ControlMessage.TYPE_*, scrcpy 3.x) and
// device message types (DeviceMessage.TYPE_*).
const (
	scrcpyMsgKeycode      byte = 0
	scrcpyMsgText         byte = 1
	scrcpyMsgTouch        byte = 2
	scrcpyMsgScroll       byte = 3
	scrcpyMsgGetClipboard byte = 8
	scrcpyMsgSetClipboard byte = 9
	scrcpyMsgResetVideo   byte = 17

	scrcpyDevClipboard    byte = 0
	scrcpyDevAckClipboard byte = 1
	scrcpyDevUHIDOutput   byte = 2
)

// Android MotionEvent actions, KeyEvent actions and meta state bits.
const (
	motionDown      byte = 0
	motionUp        byte = 1
	motionMove      byte = 2
	motionHoverMove byte = 7

	keyDown byte = 0
	keyUp   byte = 1

	metaShift = 0x1 | 0x40        // META_SHIFT_ON | META_SHIFT_LEFT_ON
	metaAlt   = 0x2 | 0x10        // META_ALT_ON | META_ALT_LEFT_ON
	metaCtrl  = 0x1000 | 0x2000   // META_CTRL_ON | META_CTRL_LEFT_ON
	metaMeta  = 0x10000 | 0x20000 // META_META_ON | META_META_LEFT_ON

	pointerIDMouse = ^uint64(0) // POINTER_ID_MOUSE, -1
)

// maxDeviceMessage bounds one device message (the server's
// MESSAGE_MAX_SIZE, 256 KiB).
const maxDeviceMessage = 1 << 18

// appendTouch appends INJECT_TOUCH_EVENT: action, pointer id, position
// (x, y, and the video size it refers to), pressure (u16 fixed point),
// action button, buttons.
func appendTouch(b []byte, action byte, id uint64, x, y, w, h int, pressure float64, actionButton, buttons int) []byte {
	b = append(b, scrcpyMsgTouch, action)
	b = binary.BigEndian.AppendUint64(b, id)
	b = appendPosition(b, x, y, w, h)
	b = binary.BigEndian.AppendUint16(b, u16Fixed(pressure))
	b = binary.BigEndian.AppendUint32(b, uint32(actionButton))
	return binary.BigEndian.AppendUint32(b, uint32(buttons))
}

// appendScroll appends INJECT_SCROLL_EVENT: position, then the horizontal
// and vertical scroll as i16 fixed point over scrcpy 3.3's [-16, 16]
// range, and buttons.
func appendScroll(b []byte, x, y, w, h int, hscroll, vscroll float64, buttons int) []byte {
	b = append(b, scrcpyMsgScroll)
	b = appendPosition(b, x, y, w, h)
	b = binary.BigEndian.AppendUint16(b, uint16(i16Fixed(hscroll/16)))
	b = binary.BigEndian.AppendUint16(b, uint16(i16Fixed(vscroll/16)))
	return binary.BigEndian.AppendUint32(b, uint32(buttons))
}

func appendPosition(b []byte, x, y, w, h int) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(int32(x)))
	b = binary.BigEndian.AppendUint32(b, uint32(int32(y)))
	b = binary.BigEndian.AppendUint16(b, uint16(w))
	return binary.BigEndian.AppendUint16(b, uint16(h))
}

// appendKeycode appends INJECT_KEYCODE: action, key code, repeat, meta.
func appendKeycode(b []byte, action byte, code, repeat, meta int) []byte {
	b = append(b, scrcpyMsgKeycode, action)
	b = binary.BigEndian.AppendUint32(b, uint32(code))
	b = binary.BigEndian.AppendUint32(b, uint32(repeat))
	return binary.BigEndian.AppendUint32(b, uint32(meta))
}

// appendText appends INJECT_TEXT: u32 length and UTF-8 text.
func appendText(b []byte, text string) []byte {
	b = append(b, scrcpyMsgText)
	b = binary.BigEndian.AppendUint32(b, uint32(len(text)))
	return append(b, text...)
}

// appendSetClipboard appends SET_CLIPBOARD: sequence (0 = no
// acknowledgement), paste flag, u32 length and text.
func appendSetClipboard(b []byte, seq uint64, paste bool, text string) []byte {
	b = append(b, scrcpyMsgSetClipboard)
	b = binary.BigEndian.AppendUint64(b, seq)
	p := byte(0)
	if paste {
		p = 1
	}
	b = append(b, p)
	b = binary.BigEndian.AppendUint32(b, uint32(len(text)))
	return append(b, text...)
}

func appendResetVideo(b []byte) []byte { return append(b, scrcpyMsgResetVideo) }

// u16Fixed encodes 0..1 as scrcpy's unsigned 16-bit fixed point (1 is
// 0xffff).
func u16Fixed(v float64) uint16 {
	if v >= 1 {
		return 0xffff
	}
	if v <= 0 || math.IsNaN(v) {
		return 0
	}
	return uint16(v * 65536)
}

// i16Fixed encodes -1..1 as scrcpy's signed 16-bit fixed point (1 is
// 0x7fff).
func i16Fixed(v float64) int16 {
	switch {
	case math.IsNaN(v):
		return 0
	case v >= 1:
		return 0x7fff
	case v <= -1:
		return -0x8000
	}
	return int16(math.Round(v * 0x8000))
}

// scrcpyTypeable reports whether the server's INJECT_TEXT can type r: it
// injects the key events of Android's virtual keyboard map (printable
// ASCII, newline, tab) and the accented letters KeyComposition decomposes
// into a dead key and a letter; any other character is skipped by the
// server with a warning only.
func scrcpyTypeable(r rune) bool {
	if r == '\n' || r == '\t' || (r >= 0x20 && r <= 0x7e) {
		return true
	}
	return strings.ContainsRune(scrcpyComposable, r)
}

// scrcpyComposable are the characters scrcpy 3.3.4's KeyComposition maps
// to a dead key (grave, acute, circumflex, tilde, umlaut) and a letter.
const scrcpyComposable = "ÀÈÌÒÙàèìòùǸǹẀẁỲỳÁÉÍÓÚÝáéíóúýĆćĹĺŃńŔŕŚśŹźǴǵḈḉḰḱḾḿṔṕẂẃ" +
	"ÂÊÎÔÛâêîôûĈĉĜĝĤĥĴĵŜŝŴŵŶŷẐẑÃÑÕãñõĨĩŨũẼẽỸỹÄËÏÖÜäëïöüÿŸḦḧẄẅẌẍẗ"

// metaState returns the Android meta state of ev's modifiers.
func metaState(ev domain.InputEvent) int {
	m := 0
	if ev.Shift {
		m |= metaShift
	}
	if ev.Alt {
		m |= metaAlt
	}
	if ev.Ctrl {
		m |= metaCtrl
	}
	if ev.Meta {
		m |= metaMeta
	}
	return m
}

// deviceMessages reads the device's messages until the control socket
// ends: clipboard texts go to onClipboard; acknowledgements and UHID
// output are read and dropped. A malformed message fails the capture, as
// the scrcpy client stops on one.
func (c *scrcpyCapture) deviceMessages() {
	r := bufio.NewReader(c.control)
	for {
		m, err := readDeviceMessage(r)
		if err != nil {
			if errors.Is(err, ErrProtocol) {
				c.fail("control", err)
				_ = c.control.Close()
			}
			return
		}
		if m.typ == scrcpyDevClipboard && c.cfg.onClipboard != nil {
			c.cfg.onClipboard(m.text)
		}
	}
}

// deviceMessage is one message of the device on the control socket.
type deviceMessage struct {
	typ  byte
	text string // clipboard
	seq  uint64 // ack
}

// readDeviceMessage reads one device message (DeviceMessageWriter, scrcpy
// 3.x): CLIPBOARD (u32 length, UTF-8 text), ACK_CLIPBOARD (u64 sequence),
// UHID_OUTPUT (u16 id, u16 length, data). Unknown types, lengths past the
// server's 256 KiB and invalid UTF-8 are ErrProtocol.
func readDeviceMessage(r io.Reader) (deviceMessage, error) {
	var t [1]byte
	if _, err := io.ReadFull(r, t[:]); err != nil {
		return deviceMessage{}, err
	}
	m := deviceMessage{typ: t[0]}
	switch m.typ {
	case scrcpyDevClipboard:
		var n [4]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return m, noEOF(err)
		}
		size := binary.BigEndian.Uint32(n[:])
		if size > maxDeviceMessage-5 {
			return m, fmt.Errorf("scrcpy clipboard of %d bytes: %w", size, ErrProtocol)
		}
		b := make([]byte, size)
		if _, err := io.ReadFull(r, b); err != nil {
			return m, noEOF(err)
		}
		if !utf8.Valid(b) {
			return m, fmt.Errorf("scrcpy clipboard is not UTF-8: %w", ErrProtocol)
		}
		m.text = string(b)
	case scrcpyDevAckClipboard:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return m, noEOF(err)
		}
		m.seq = binary.BigEndian.Uint64(b[:])
	case scrcpyDevUHIDOutput:
		var h [4]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return m, noEOF(err)
		}
		if _, err := io.CopyN(io.Discard, r, int64(binary.BigEndian.Uint16(h[2:]))); err != nil {
			return m, noEOF(err)
		}
	default:
		return m, fmt.Errorf("scrcpy device message type %d: %w", m.typ, ErrProtocol)
	}
	return m, nil
}

// input injects ev, given in device coordinates of a dw×dh display (in
// its current orientation), through the control socket: positions are
// mapped to the current video size, which each positional message
// carries (the server drops any whose size is not its current one).
func (c *scrcpyCapture) input(ctx context.Context, ev domain.InputEvent, dw, dh int) error {
	vw, vh := c.videoSize()
	vx := func(x int) int { return scale(x, vw, dw) }
	vy := func(y int) int { return scale(y, vh, dh) }
	touch := func(action byte, x, y int) []byte {
		ab, btn := 1, 1 // primary, as a mouse click
		if action == motionUp {
			btn = 0
		}
		p := 1.0
		if action == motionUp {
			p = 0
		}
		return appendTouch(nil, action, pointerIDMouse, vx(x), vy(y), vw, vh, p, ab, btn)
	}
	gesture := func(x1, y1, x2, y2 int, d time.Duration) error {
		if err := c.send(touch(motionDown, x1, y1)); err != nil {
			return err
		}
		steps := max(1, int(d/(16*time.Millisecond)))
		for i := 1; i <= steps; i++ {
			select {
			case <-ctx.Done():
				_ = c.send(touch(motionUp, x1, y1))
				return ctx.Err()
			case <-time.After(d / time.Duration(steps)):
			}
			if x1 != x2 || y1 != y2 {
				if err := c.send(touch(motionMove, x1+(x2-x1)*i/steps, y1+(y2-y1)*i/steps)); err != nil {
					return err
				}
			}
		}
		return c.send(touch(motionUp, x2, y2))
	}
	key := func(code int) error {
		return c.send(appendKeycode(appendKeycode(nil, keyDown, code, 0, 0), keyUp, code, 0, 0))
	}
	switch ev.Type {
	case domain.InputTap:
		return c.send(append(touch(motionDown, ev.X, ev.Y), touch(motionUp, ev.X, ev.Y)...))
	case domain.InputLongPress:
		d := time.Duration(ev.DurationMs) * time.Millisecond
		if d <= 0 {
			d = 800 * time.Millisecond
		}
		return gesture(ev.X, ev.Y, ev.X, ev.Y, d)
	case domain.InputSwipe:
		d := time.Duration(ev.DurationMs) * time.Millisecond
		if d <= 0 {
			d = 300 * time.Millisecond
		}
		return gesture(ev.X, ev.Y, ev.X2, ev.Y2, d)
	case domain.InputPointer:
		return c.pointer(ev, vx(ev.X), vy(ev.Y), vw, vh)
	case domain.InputScroll:
		// WheelEvent's deltaY grows downwards; Android's AXIS_VSCROLL
		// grows upwards.
		return c.send(appendScroll(nil, vx(ev.X), vy(ev.Y), vw, vh, ev.ScrollX, -ev.ScrollY, 0))
	case domain.InputText:
		for _, r := range ev.Text {
			if !scrcpyTypeable(r) {
				// The server would skip it: paste the text instead
				// (it replaces the device's clipboard).
				return c.send(appendSetClipboard(nil, 0, true, ev.Text))
			}
		}
		return c.send(appendText(nil, ev.Text))
	case domain.InputClipboard:
		return c.send(appendSetClipboard(nil, 0, ev.Paste, ev.Text))
	case domain.InputKey:
		code, ok := keyCode(ev.Key)
		if !ok {
			return fmt.Errorf("unknown key %q: %w", ev.Key, domain.ErrInvalidInput)
		}
		meta := metaState(ev)
		var b []byte
		if ev.Phase != domain.PhaseUp {
			b = appendKeycode(b, keyDown, code, ev.Repeat, meta)
		}
		if ev.Phase != domain.PhaseDown {
			b = appendKeycode(b, keyUp, code, 0, meta)
		}
		return c.send(b)
	case domain.InputBack:
		return key(4)
	case domain.InputHome:
		return key(3)
	case domain.InputRecents:
		return key(187)
	}
	return fmt.Errorf("input action %q: %w", ev.Type, domain.ErrInvalidInput)
}

// pointer sends one Pointer Events step as INJECT_TOUCH_EVENT: fingers and
// pens by their pointer id (the server keeps up to 10 down at once), the
// mouse as POINTER_ID_MOUSE with its buttons (hover moves need no button).
func (c *scrcpyCapture) pointer(ev domain.InputEvent, x, y, vw, vh int) error {
	action := motionMove
	switch ev.Phase {
	case domain.PhaseDown:
		action = motionDown
	case domain.PhaseUp, domain.PhaseCancel:
		action = motionUp
	case domain.PhaseHover:
		action = motionHoverMove
	}
	pressure := ev.Pressure
	if pressure == 0 {
		pressure = 1
	}
	if action == motionUp || action == motionHoverMove {
		pressure = 0
	}
	if ev.PointerType != domain.PointerMouse {
		if action == motionHoverMove {
			// A finger cannot hover; a pen's hover has no meaning on a
			// touch screen either.
			return nil
		}
		return c.send(appendTouch(nil, action, uint64(ev.PointerID), x, y, vw, vh, pressure, 0, 0))
	}
	c.ctrlMu.Lock()
	prev := c.mouseBtn
	buttons := ev.Buttons
	if action == motionUp {
		if ev.Phase == domain.PhaseCancel {
			buttons = 0
		}
	} else if action == motionDown && buttons == 0 {
		buttons = 1
	}
	c.mouseBtn = buttons
	c.ctrlMu.Unlock()
	actionButton := 0
	switch action {
	case motionDown:
		actionButton = buttons &^ prev
		if actionButton == 0 {
			actionButton = 1
		}
	case motionUp:
		actionButton = prev &^ buttons
	}
	return c.send(appendTouch(nil, action, pointerIDMouse, x, y, vw, vh, pressure, actionButton, buttons))
}
