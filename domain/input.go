package domain

import "fmt"

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
)

// MaxInputText is the longest text input accepted, in bytes.
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
	in := func(x, y int) bool { return (w <= 0 || x < w) && (h <= 0 || y < h) }
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
	case InputText:
		if e.Text == "" || len(e.Text) > MaxInputText {
			return fmt.Errorf("text must be 1..%d bytes: %w", MaxInputText, ErrInvalidInput)
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
	switch e.Type {
	case InputTap, InputLongPress, InputSwipe:
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
