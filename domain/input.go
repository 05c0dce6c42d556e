package domain

import (
	"fmt"
	"unicode/utf8"
)

// InputType is a kind of input event.
type InputType string

// Input types.
const (
	InputTap       InputType = "tap"
	InputSwipe     InputType = "swipe"
	InputLongPress InputType = "long_press"
	InputKey       InputType = "key"
	InputText      InputType = "text"
	InputBack      InputType = "back"
	InputHome      InputType = "home"
	InputRecents   InputType = "recents"
	// InputPointer is one Pointer Events step of one pointer (a finger, a
	// mouse, a pen): Phase down, move, up, cancel or hover.
	InputPointer InputType = "pointer"
	// InputScroll is a wheel step at X,Y: ScrollX and ScrollY in notches.
	InputScroll InputType = "scroll"
	// InputClipboard sets the device's clipboard to Text (and pastes it
	// when Paste is set).
	InputClipboard InputType = "clipboard"
)

// Pointer phases (Pointer Events: pointerdown, pointermove, pointerup,
// pointercancel; a move with no button held is a hover) and key phases
// (down, up; empty = a press, down then up).
const (
	PhaseDown   = "down"
	PhaseMove   = "move"
	PhaseUp     = "up"
	PhaseCancel = "cancel"
	PhaseHover  = "hover"
)

// Pointer kinds (PointerEvent.pointerType).
const (
	PointerTouch = "touch"
	PointerMouse = "mouse"
	PointerPen   = "pen"
)

// MaxPointers is how many pointers may be down at once (scrcpy's
// PointersState.MAX_POINTERS); pointer ids are 0..MaxPointers-1.
const MaxPointers = 10

// MaxScroll bounds one scroll step on each axis, in notches (scrcpy's
// fixed-point range).
const MaxScroll = 16

// MaxClipboardText is the largest clipboard text accepted, in bytes (the
// scrcpy server's control message limit, 256 KiB, less its header).
const MaxClipboardText = 1<<18 - 14

// MaxInputText is the longest text input accepted, in bytes: a limit of
// this API (scrcpy's server takes longer texts; the shell's command line
// and the input rate budget are why it stays).
const MaxInputText = 300

// Input integer bounds, checked before any arithmetic on them.
const (
	// MaxInputDurationMs is the longest swipe or press, in milliseconds.
	MaxInputDurationMs = 10_000
	// MaxInputCoordinate bounds every coordinate, whatever the video
	// size (no screen is larger).
	MaxInputCoordinate = 1 << 15
)

// InputEvent is a touch, key or text from a controller. X/Y are in video
// space (pixels of the stream the viewer sees), X2/Y2 the end of a swipe.
type InputEvent struct {
	Type       InputType `json:"action"`
	X          int       `json:"x,omitempty"`
	Y          int       `json:"y,omitempty"`
	X2         int       `json:"x2,omitempty"`
	Y2         int       `json:"y2,omitempty"`
	DurationMs int       `json:"duration_ms,omitempty"`
	Key        string    `json:"key,omitempty"`
	Text       string    `json:"text,omitempty"`

	// Phase is a pointer's or a key's step (Phase* constants); empty for a
	// key means a press (down then up).
	Phase string `json:"phase,omitempty"`
	// PointerID names the pointer (0..MaxPointers-1) across its steps;
	// PointerType is touch (default), mouse or pen.
	PointerID   int    `json:"pointer_id,omitempty"`
	PointerType string `json:"pointer_type,omitempty"`
	// Pressure is 0..1 (0 = the default: 1 while down).
	Pressure float64 `json:"pressure,omitempty"`
	// Buttons is the PointerEvent.buttons bitmask (1 primary, 2 secondary,
	// 4 middle, 8 back, 16 forward).
	Buttons int `json:"buttons,omitempty"`
	// ScrollX and ScrollY are a wheel step in notches (-MaxScroll..MaxScroll;
	// positive y scrolls down the page, as WheelEvent.deltaY).
	ScrollX float64 `json:"scroll_x,omitempty"`
	ScrollY float64 `json:"scroll_y,omitempty"`
	// Repeat is a held key's repeat count; Shift, Ctrl, Alt and Meta the
	// modifiers held (as KeyboardEvent's shiftKey, ctrlKey, altKey,
	// metaKey).
	Repeat int  `json:"repeat,omitempty"`
	Shift  bool `json:"shift,omitempty"`
	Ctrl   bool `json:"ctrl,omitempty"`
	Alt    bool `json:"alt,omitempty"`
	Meta   bool `json:"meta,omitempty"`
	// Paste pastes a clipboard text once set.
	Paste bool `json:"paste,omitempty"`
}

// Validate checks e against a video of w×h pixels and returns
// ErrInvalidInput (wrapped) when it is malformed.
func (e InputEvent) Validate(w, h int) error {
	// Every integer is compared as it came, before any arithmetic, so no
	// value can overflow into range (duration_ms 18446744073709 once did).
	if e.DurationMs < 0 || e.DurationMs > MaxInputDurationMs {
		return fmt.Errorf("duration_ms must be 0..%d, got %d: %w", MaxInputDurationMs, e.DurationMs, ErrInvalidInput)
	}
	for _, v := range [...]int{e.X, e.Y, e.X2, e.Y2} {
		if v < 0 || v >= MaxInputCoordinate {
			return fmt.Errorf("coordinate %d outside 0..%d: %w", v, MaxInputCoordinate-1, ErrInvalidInput)
		}
	}
	in := func(x, y int) bool { return x >= 0 && y >= 0 && (w <= 0 || x < w) && (h <= 0 || y < h) }
	switch e.Type {
	case InputTap, InputLongPress:
		if !in(e.X, e.Y) {
			return fmt.Errorf("%s at (%d,%d) outside %dx%d: %w", e.Type, e.X, e.Y, w, h, ErrInvalidInput)
		}
	case InputSwipe:
		if !in(e.X, e.Y) || !in(e.X2, e.Y2) {
			return fmt.Errorf("swipe outside %dx%d: %w", w, h, ErrInvalidInput)
		}
	case InputKey:
		if e.Key == "" || len(e.Key) > 64 {
			return fmt.Errorf("key name must be 1..64 bytes: %w", ErrInvalidInput)
		}
		if e.Phase != "" && e.Phase != PhaseDown && e.Phase != PhaseUp {
			return fmt.Errorf("key phase %q: want down, up or none: %w", e.Phase, ErrInvalidInput)
		}
		if e.Repeat < 0 || e.Repeat > 1000 {
			return fmt.Errorf("key repeat must be 0..1000: %w", ErrInvalidInput)
		}
	case InputText:
		if e.Text == "" || len(e.Text) > MaxInputText {
			return fmt.Errorf("text must be 1..%d bytes: %w", MaxInputText, ErrInvalidInput)
		}
		if !utf8.ValidString(e.Text) {
			return fmt.Errorf("text is not UTF-8: %w", ErrInvalidInput)
		}
	case InputClipboard:
		if len(e.Text) > MaxClipboardText {
			return fmt.Errorf("clipboard text must be at most %d bytes: %w", MaxClipboardText, ErrInvalidInput)
		}
		if !utf8.ValidString(e.Text) {
			return fmt.Errorf("clipboard text is not UTF-8: %w", ErrInvalidInput)
		}
	case InputPointer:
		switch e.Phase {
		case PhaseDown, PhaseMove, PhaseUp, PhaseCancel, PhaseHover:
		default:
			return fmt.Errorf("pointer phase %q: want down, move, up, cancel or hover: %w", e.Phase, ErrInvalidInput)
		}
		switch e.PointerType {
		case "", PointerTouch, PointerMouse, PointerPen:
		default:
			return fmt.Errorf("pointer type %q: want touch, mouse or pen: %w", e.PointerType, ErrInvalidInput)
		}
		if e.PointerID < 0 || e.PointerID >= MaxPointers {
			return fmt.Errorf("pointer_id %d: want 0..%d: %w", e.PointerID, MaxPointers-1, ErrInvalidInput)
		}
		if !(e.Pressure >= 0 && e.Pressure <= 1) {
			return fmt.Errorf("pressure %v: want 0..1: %w", e.Pressure, ErrInvalidInput)
		}
		if e.Buttons < 0 || e.Buttons > 31 {
			return fmt.Errorf("buttons %d: want a 0..31 bitmask: %w", e.Buttons, ErrInvalidInput)
		}
		if !in(e.X, e.Y) {
			return fmt.Errorf("pointer at (%d,%d) outside %dx%d: %w", e.X, e.Y, w, h, ErrInvalidInput)
		}
	case InputScroll:
		if !in(e.X, e.Y) {
			return fmt.Errorf("scroll at (%d,%d) outside %dx%d: %w", e.X, e.Y, w, h, ErrInvalidInput)
		}
		if !(e.ScrollX >= -MaxScroll && e.ScrollX <= MaxScroll && e.ScrollY >= -MaxScroll && e.ScrollY <= MaxScroll) {
			return fmt.Errorf("scroll step (%v,%v): want each in -%d..%d: %w", e.ScrollX, e.ScrollY, MaxScroll, MaxScroll, ErrInvalidInput)
		}
		if e.ScrollX == 0 && e.ScrollY == 0 {
			return fmt.Errorf("scroll step of zero: %w", ErrInvalidInput)
		}
	case InputBack, InputHome, InputRecents:
	default:
		return fmt.Errorf("unknown input action %q: %w", e.Type, ErrInvalidInput)
	}
	return nil
}

// MapToDevice maps e from a video of vw×vh pixels to a screen of dw×dh. The
// screen is taken as fitted into the video with its aspect ratio kept and
// centred, the way screenrecord letterboxes a rotated screen into a stream
// whose size was fixed at its start; when the aspect ratios match this is a
// plain scale. A point on the bars outside the picture is
// ErrInvalidInput (wrapped). Unknown sizes (≤ 0) leave e unchanged.
func (e InputEvent) MapToDevice(vw, vh, dw, dh int) (InputEvent, error) {
	if vw <= 0 || vh <= 0 || dw <= 0 || dh <= 0 || (vw == dw && vh == dh) {
		return e, nil
	}
	// The picture's size inside the video: the larger scale that fits.
	s := min(float64(vw)/float64(dw), float64(vh)/float64(dh))
	pw, ph := float64(dw)*s, float64(dh)*s
	ox, oy := (float64(vw)-pw)/2, (float64(vh)-ph)/2
	point := func(x, y int) (int, int, bool) {
		fx, fy := (float64(x)-ox)/s, (float64(y)-oy)/s
		if fx < 0 || fy < 0 || fx >= float64(dw) || fy >= float64(dh) {
			return 0, 0, false
		}
		return int(fx), int(fy), true
	}
	var ok bool
	if e.Type == InputPointer && e.Phase != PhaseDown && e.Phase != PhaseHover {
		// A finger that slides onto a bar still has to move and lift on
		// the device: clamp it to the picture's edge.
		fx := min(max((float64(e.X)-ox)/s, 0), float64(dw-1))
		fy := min(max((float64(e.Y)-oy)/s, 0), float64(dh-1))
		e.X, e.Y = int(fx), int(fy)
		return e, nil
	}
	switch e.Type {
	case InputTap, InputLongPress, InputSwipe, InputPointer, InputScroll:
		if e.X, e.Y, ok = point(e.X, e.Y); !ok {
			return e, fmt.Errorf("%s outside the device's picture in the %dx%d video: %w", e.Type, vw, vh, ErrInvalidInput)
		}
		if e.Type == InputSwipe {
			if e.X2, e.Y2, ok = point(e.X2, e.Y2); !ok {
				return e, fmt.Errorf("swipe end outside the device's picture in the %dx%d video: %w", vw, vh, ErrInvalidInput)
			}
		}
	}
	return e, nil
}

// ClipText cuts text to at most max bytes at a UTF-8 boundary and reports
// whether it cut.
func ClipText(text string, max int) (string, bool) {
	if len(text) <= max {
		return text, false
	}
	n := max
	for n > 0 && !utf8.RuneStart(text[n]) {
		n--
	}
	return text[:n], true
}
