package domain

import (
	"fmt"
	"math"
)

// GroupInput is one input event for several devices at once: coordinates
// are fractions of each device's picture (0 ≤ x, y < 1), so the same
// gesture lands on the same spot of screens of different sizes.
type GroupInput struct {
	Type       InputType `json:"action"`
	X          float64   `json:"x,omitempty"`
	Y          float64   `json:"y,omitempty"`
	X2         float64   `json:"x2,omitempty"`
	Y2         float64   `json:"y2,omitempty"`
	DurationMs int       `json:"duration_ms,omitempty"`
	Key        string    `json:"key,omitempty"`
	Text       string    `json:"text,omitempty"`
}

// ToDevice returns g in the pixels of a w×h screen, validated. It returns
// ErrInvalidInput (wrapped) when a coordinate is not a fraction in [0, 1)
// or the event is malformed, and when a pointer event meets a screen of
// unknown size.
func (g GroupInput) ToDevice(w, h int) (InputEvent, error) {
	e := InputEvent{Type: g.Type, DurationMs: g.DurationMs, Key: g.Key, Text: g.Text}
	frac := func(v float64) bool { return !math.IsNaN(v) && v >= 0 && v < 1 }
	switch g.Type {
	case InputTap, InputLongPress, InputSwipe:
		if w <= 0 || h <= 0 {
			return e, fmt.Errorf("%s on a screen of unknown size: %w", g.Type, ErrInvalidInput)
		}
		if !frac(g.X) || !frac(g.Y) || (g.Type == InputSwipe && (!frac(g.X2) || !frac(g.Y2))) {
			return e, fmt.Errorf("%s coordinates must be fractions of the picture in [0, 1): %w", g.Type, ErrInvalidInput)
		}
		e.X, e.Y = int(g.X*float64(w)), int(g.Y*float64(h))
		if g.Type == InputSwipe {
			e.X2, e.Y2 = int(g.X2*float64(w)), int(g.Y2*float64(h))
		}
	}
	if err := e.Validate(w, h); err != nil {
		return e, err
	}
	return e, nil
}
