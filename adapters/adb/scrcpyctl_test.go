package adb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"mediasvc/domain"
)

type writeRecorder struct{ bytes.Buffer }

func (w *writeRecorder) Read([]byte) (int, error) { return 0, io.EOF }
func (w *writeRecorder) Close() error             { return nil }

func newTestCapture(w, h int) (*scrcpyCapture, *writeRecorder) {
	rec := &writeRecorder{}
	return &scrcpyCapture{control: rec, info: domain.StreamInfo{Width: w, Height: h},
		cfg: scrcpyConfig{opts: Options{CommandTimeout: time.Second}, log: slog.New(slog.DiscardHandler)}}, rec
}

// touchMsg decodes one INJECT_TOUCH_EVENT.
type touchMsg struct {
	action       byte
	id           uint64
	x, y         int32
	w, h         uint16
	pressure     uint16
	actionButton uint32
	buttons      uint32
}

func decodeTouches(t *testing.T, b []byte) []touchMsg {
	t.Helper()
	var out []touchMsg
	for len(b) > 0 {
		if len(b) < 32 || b[0] != scrcpyMsgTouch {
			t.Fatalf("not a touch message: % x", b)
		}
		be := binary.BigEndian
		out = append(out, touchMsg{b[1], be.Uint64(b[2:]), int32(be.Uint32(b[10:])), int32(be.Uint32(b[14:])),
			be.Uint16(b[18:]), be.Uint16(b[20:]), be.Uint16(b[22:]), be.Uint32(b[24:]), be.Uint32(b[28:])})
		b = b[32:]
	}
	return out
}

func TestScrcpyTapCarriesCurrentVideoSize(t *testing.T) {
	c, rec := newTestCapture(1280, 720)
	// A 1920x1080 display (turned) captured at 1280x720.
	if err := c.input(t.Context(), domain.InputEvent{Type: domain.InputTap, X: 960, Y: 540}, 1920, 1080); err != nil {
		t.Fatal(err)
	}
	got := decodeTouches(t, rec.Bytes())
	if len(got) != 2 || got[0].action != motionDown || got[1].action != motionUp {
		t.Fatalf("tap: %+v", got)
	}
	if g := got[0]; g.x != 640 || g.y != 360 || g.w != 1280 || g.h != 720 || g.id != pointerIDMouse || g.pressure != 0xffff {
		t.Fatalf("down %+v", g)
	}
	// A rotation: the next config packet's SPS says 720x1280, and touches
	// carry it (the server drops any other size).
	c.config(append(append([]byte(nil), domain.AnnexBStartCode...), portraitSPS(t)...))
	if i := c.Info(); i.Width != 720 || i.Height != 1280 {
		t.Fatalf("after the config packet: %dx%d", i.Width, i.Height)
	}
	rec.Reset()
	if err := c.input(t.Context(), domain.InputEvent{Type: domain.InputTap, X: 540, Y: 960}, 1080, 1920); err != nil {
		t.Fatal(err)
	}
	if g := decodeTouches(t, rec.Bytes())[0]; g.x != 360 || g.y != 640 || g.w != 720 || g.h != 1280 {
		t.Fatalf("after rotation %+v", g)
	}
}

// portraitSPS returns the SPS of the emulated device's 720x1280 clip.
func portraitSPS(t *testing.T) []byte {
	t.Helper()
	// 720x1280 Constrained Baseline, level 3.1 (as x264 writes it).
	sps := []byte{0x67, 0x42, 0xc0, 0x1f, 0xda, 0x02, 0xd0, 0x28, 0x68, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x0f, 0x03, 0xc6, 0x0c, 0xa8}
	if w, h, err := domain.SPSSize(sps); err != nil || w != 720 || h != 1280 {
		t.Fatalf("test SPS is %dx%d %v", w, h, err)
	}
	return sps
}

func TestScrcpyMultiTouch(t *testing.T) {
	c, rec := newTestCapture(1000, 500)
	steps := []domain.InputEvent{
		{Type: domain.InputPointer, Phase: domain.PhaseDown, PointerID: 0, X: 100, Y: 100},
		{Type: domain.InputPointer, Phase: domain.PhaseDown, PointerID: 1, X: 300, Y: 300, Pressure: 0.5},
		{Type: domain.InputPointer, Phase: domain.PhaseMove, PointerID: 1, X: 350, Y: 320},
		{Type: domain.InputPointer, Phase: domain.PhaseUp, PointerID: 0, X: 100, Y: 100},
		{Type: domain.InputPointer, Phase: domain.PhaseCancel, PointerID: 1, X: 350, Y: 320},
		{Type: domain.InputPointer, Phase: domain.PhaseHover, PointerID: 2, X: 1, Y: 1}, // a finger cannot hover: nothing sent
	}
	for _, ev := range steps {
		if err := c.input(t.Context(), ev, 1000, 500); err != nil {
			t.Fatal(err)
		}
	}
	got := decodeTouches(t, rec.Bytes())
	want := []struct {
		action byte
		id     uint64
		x      int32
		p      uint16
	}{{motionDown, 0, 100, 0xffff}, {motionDown, 1, 300, 0x8000}, {motionMove, 1, 350, 0xffff}, {motionUp, 0, 100, 0}, {motionUp, 1, 350, 0}}
	if len(got) != len(want) {
		t.Fatalf("%d messages: %+v", len(got), got)
	}
	for i, w := range want {
		if g := got[i]; g.action != w.action || g.id != w.id || g.x != w.x || g.pressure != w.p || g.buttons != 0 || g.actionButton != 0 {
			t.Errorf("message %d: %+v, want %+v", i, g, w)
		}
	}
}

func TestScrcpyMouseButtons(t *testing.T) {
	c, rec := newTestCapture(1000, 500)
	for _, ev := range []domain.InputEvent{
		{Type: domain.InputPointer, PointerType: domain.PointerMouse, Phase: domain.PhaseHover, X: 5, Y: 5},
		{Type: domain.InputPointer, PointerType: domain.PointerMouse, Phase: domain.PhaseDown, Buttons: 2, X: 5, Y: 5},
		{Type: domain.InputPointer, PointerType: domain.PointerMouse, Phase: domain.PhaseUp, Buttons: 0, X: 5, Y: 5},
	} {
		if err := c.input(t.Context(), ev, 1000, 500); err != nil {
			t.Fatal(err)
		}
	}
	got := decodeTouches(t, rec.Bytes())
	if len(got) != 3 || got[0].action != motionHoverMove || got[0].buttons != 0 ||
		got[1].action != motionDown || got[1].actionButton != 2 || got[1].buttons != 2 || got[1].id != pointerIDMouse ||
		got[2].action != motionUp || got[2].actionButton != 2 || got[2].buttons != 0 {
		t.Fatalf("mouse: %+v", got)
	}
}

func TestScrcpyScrollKeysTextClipboard(t *testing.T) {
	c, rec := newTestCapture(1000, 500)
	be := binary.BigEndian
	if err := c.input(t.Context(), domain.InputEvent{Type: domain.InputScroll, X: 10, Y: 20, ScrollX: -16, ScrollY: 2}, 1000, 500); err != nil {
		t.Fatal(err)
	}
	b := rec.Bytes()
	// 3.3.x: i16 fixed point over [-16, 16]; deltaY 2 (down) is vscroll -2.
	if len(b) != 21 || b[0] != scrcpyMsgScroll || be.Uint32(b[1:]) != 10 || be.Uint32(b[5:]) != 20 || be.Uint16(b[9:]) != 1000 ||
		int16(be.Uint16(b[13:])) != -0x8000 || int16(be.Uint16(b[15:])) != -0x1000 {
		t.Fatalf("scroll: % x", b)
	}
	rec.Reset()
	if err := c.input(t.Context(), domain.InputEvent{Type: domain.InputKey, Key: "c", Phase: domain.PhaseDown, Repeat: 2, Ctrl: true, Shift: true}, 1000, 500); err != nil {
		t.Fatal(err)
	}
	b = rec.Bytes()
	if len(b) != 14 || b[0] != scrcpyMsgKeycode || b[1] != keyDown || be.Uint32(b[2:]) != 31 || be.Uint32(b[6:]) != 2 || be.Uint32(b[10:]) != metaCtrl|metaShift {
		t.Fatalf("key down: % x", b)
	}
	rec.Reset()
	if err := c.input(t.Context(), domain.InputEvent{Type: domain.InputHome}, 1000, 500); err != nil {
		t.Fatal(err)
	}
	if b := rec.Bytes(); len(b) != 28 || b[0] != scrcpyMsgKeycode || be.Uint32(b[2:]) != 3 || b[15] != keyUp {
		t.Fatalf("home: % x", b)
	}
	rec.Reset()
	// Typeable text (with a composed letter and a newline) goes as INJECT_TEXT.
	if err := c.input(t.Context(), domain.InputEvent{Type: domain.InputText, Text: "hé\nx"}, 1000, 500); err != nil {
		t.Fatal(err)
	}
	if b := rec.Bytes(); !bytes.Equal(b, append([]byte{scrcpyMsgText, 0, 0, 0, 5}, "hé\nx"...)) {
		t.Fatalf("text: % x", b)
	}
	rec.Reset()
	// What the server's virtual keyboard cannot type is pasted.
	if err := c.input(t.Context(), domain.InputEvent{Type: domain.InputText, Text: "世界🙂"}, 1000, 500); err != nil {
		t.Fatal(err)
	}
	b = rec.Bytes()
	if b[0] != scrcpyMsgSetClipboard || be.Uint64(b[1:]) != 0 || b[9] != 1 || string(b[14:]) != "世界🙂" {
		t.Fatalf("unicode text: % x", b)
	}
	rec.Reset()
	if err := c.input(t.Context(), domain.InputEvent{Type: domain.InputClipboard, Text: "copied"}, 1000, 500); err != nil {
		t.Fatal(err)
	}
	if b := rec.Bytes(); b[0] != scrcpyMsgSetClipboard || b[9] != 0 || string(b[14:]) != "copied" {
		t.Fatalf("clipboard: % x", b)
	}
	if err := c.input(t.Context(), domain.InputEvent{Type: domain.InputKey, Key: "nope"}, 1000, 500); !errors.Is(err, domain.ErrInvalidInput) {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestFixedPoint(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want int16
	}{{0, 0}, {1, 0x7fff}, {-1, -0x8000}, {0.5, 0x4000}, {2, 0x7fff}, {-0.25, -0x2000}} {
		if got := i16Fixed(tc.v); got != tc.want {
			t.Errorf("i16Fixed(%v) = %#x, want %#x", tc.v, got, tc.want)
		}
	}
	if u16Fixed(1) != 0xffff || u16Fixed(0) != 0 || u16Fixed(0.5) != 0x8000 {
		t.Errorf("u16Fixed")
	}
}

func TestReadDeviceMessage(t *testing.T) {
	var b bytes.Buffer
	b.Write([]byte{scrcpyDevClipboard, 0, 0, 0, 5})
	b.WriteString("héllo"[:5])
	b.Write([]byte{scrcpyDevAckClipboard, 0, 0, 0, 0, 0, 0, 0, 7})
	b.Write([]byte{scrcpyDevUHIDOutput, 0, 1, 0, 2, 9, 9})
	b.Write([]byte{scrcpyDevClipboard, 0, 0, 0, 0})
	want := []deviceMessage{{typ: scrcpyDevClipboard, text: "héll"}, {typ: scrcpyDevAckClipboard, seq: 7}, {typ: scrcpyDevUHIDOutput}, {typ: scrcpyDevClipboard}}
	for i, w := range want {
		m, err := readDeviceMessage(&b)
		if err != nil || m != w {
			t.Fatalf("message %d: %+v %v, want %+v", i, m, err, w)
		}
	}
	if _, err := readDeviceMessage(&b); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
	for name, bad := range map[string][]byte{
		"unknown type":   {9},
		"huge clipboard": {scrcpyDevClipboard, 0, 4, 0, 0},
		"not utf-8":      {scrcpyDevClipboard, 0, 0, 0, 1, 0xff},
	} {
		if _, err := readDeviceMessage(bytes.NewReader(bad)); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := readDeviceMessage(bytes.NewReader([]byte{scrcpyDevClipboard, 0, 0, 0, 9, 'a'})); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated: %v", err)
	}
}

// FuzzReadDeviceMessage: the device's control messages never panic and
// never yield a clipboard past the server's limit.
func FuzzReadDeviceMessage(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 2, 'h', 'i'})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{2, 0, 1, 0, 1, 0})
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for {
			m, err := readDeviceMessage(r)
			if err != nil {
				return
			}
			if len(m.text) > maxDeviceMessage {
				t.Fatalf("clipboard of %d bytes", len(m.text))
			}
		}
	})
}

func TestScrcpyCommand(t *testing.T) {
	o := Options{ScrcpyVersion: "3.3.4", ScrcpyAudio: true, Scrcpy: ScrcpyOptions{StayAwake: true, MaxFPS: 30, DisplayID: 2, VideoCodecOptions: "i-frame-interval=2", NoClipboardSync: true}}
	got := scrcpyCommand(o, "0000abcd", 1280, 2_000_000)
	for _, want := range []string{" 3.3.4 scid=0000abcd ", " log_level=warn ", " audio=true ", " max_size=1280", " video_bit_rate=2000000", " max_fps=30", " display_id=2",
		" stay_awake=true", " power_off_on_close=false", " clipboard_autosync=false", " video_codec_options=i-frame-interval=2"} {
		if !strings.Contains(got+" ", want) {
			t.Errorf("command %q lacks %q", got, want)
		}
	}
	if got := scrcpyCommand(Options{ScrcpyVersion: "3.3.4"}, "1", 0, 0); strings.Contains(got, "stay_awake") || strings.Contains(got, "max_fps") || strings.Contains(got, "clipboard_autosync") {
		t.Errorf("defaults: %q", got)
	}
}

func TestCheckCodecOptions(t *testing.T) {
	for in, ok := range map[string]bool{
		"":                         true,
		"i-frame-interval=2":       true,
		"profile=1,level:int=4096": true,
		"repeat-previous-frame-after:long=100000": true,
		"x:float=0.5,name:string=a\\,b":           true,
		"i-frame-interval":                        false,
		"=2":                                      false,
		"i-frame-interval=two":                    false,
		"k:bool=1":                                false,
		"k=1 k2=2":                                false,
		"k=1;reboot":                              false,
	} {
		if err := checkCodecOptions(in); (err == nil) != ok {
			t.Errorf("checkCodecOptions(%q) = %v, want ok=%v", in, err, ok)
		}
	}
}

func TestServerLogDrainsEverything(t *testing.T) {
	var out bytes.Buffer
	for i := range 10000 {
		out.WriteString("[server] INFO: Video capture reset ")
		out.WriteString(strings.Repeat("x", i%50))
		out.WriteString("\n")
	}
	out.WriteString(strings.Repeat("y", 10000) + "\n[server] ERROR: the last words\n")
	l := newServerLog(slog.New(slog.DiscardHandler))
	l.drain(&out)
	if out.Len() != 0 {
		t.Fatalf("%d bytes left unread", out.Len())
	}
	if s := l.said(); !strings.HasSuffix(s, "[server] ERROR: the last words") {
		t.Fatalf("tail %q", s)
	}
	err := l.explain(errors.New("boom"), time.Millisecond)
	if !strings.Contains(err.Error(), "the last words") {
		t.Fatalf("explain: %v", err)
	}
}
