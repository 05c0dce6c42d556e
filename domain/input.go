package domain

import (
	"fmt"
	"time"
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
)

// MaxInputText is the longest text input accepted, in bytes.
const MaxInputText = 300

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
	case InputText:
		if e.Text == "" || len(e.Text) > MaxInputText {
			return fmt.Errorf("text must be 1..%d bytes: %w", MaxInputText, ErrInvalidInput)
		}
	case InputBack, InputHome, InputRecents:
	default:
		return fmt.Errorf("unknown input action %q: %w", e.Type, ErrInvalidInput)
	}
	if e.DurationMs < 0 || time.Duration(e.DurationMs)*time.Millisecond > 10*time.Second {
		return fmt.Errorf("duration_ms must be 0..10000: %w", ErrInvalidInput)
	}
	return nil
}
