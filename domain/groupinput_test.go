package domain

import (
	"errors"
	"math"
	"testing"
)

func TestGroupInputToDevice(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    GroupInput
		w, h int
		want InputEvent
		err  bool
	}{
		{"tap centre", GroupInput{Type: InputTap, X: 0.5, Y: 0.5}, 1080, 1920, InputEvent{Type: InputTap, X: 540, Y: 960}, false},
		{"tap other size", GroupInput{Type: InputTap, X: 0.5, Y: 0.5}, 720, 1280, InputEvent{Type: InputTap, X: 360, Y: 640}, false},
		{"swipe", GroupInput{Type: InputSwipe, X: 0.1, Y: 0.9, X2: 0.1, Y2: 0.1, DurationMs: 200}, 1000, 1000, InputEvent{Type: InputSwipe, X: 100, Y: 900, X2: 100, Y2: 100, DurationMs: 200}, false},
		{"key", GroupInput{Type: InputKey, Key: "ENTER"}, 0, 0, InputEvent{Type: InputKey, Key: "ENTER"}, false},
		{"home", GroupInput{Type: InputHome}, 100, 100, InputEvent{Type: InputHome}, false},
		{"x is one", GroupInput{Type: InputTap, X: 1, Y: 0.5}, 100, 100, InputEvent{}, true},
		{"negative", GroupInput{Type: InputTap, X: -0.1, Y: 0.5}, 100, 100, InputEvent{}, true},
		{"nan", GroupInput{Type: InputTap, X: math.NaN(), Y: 0.5}, 100, 100, InputEvent{}, true},
		{"swipe end out", GroupInput{Type: InputSwipe, X: 0.1, Y: 0.1, X2: 2}, 100, 100, InputEvent{}, true},
		{"unknown size", GroupInput{Type: InputTap, X: 0.5, Y: 0.5}, 0, 0, InputEvent{}, true},
		{"unknown action", GroupInput{Type: "jump"}, 100, 100, InputEvent{}, true},
		{"empty text", GroupInput{Type: InputText}, 100, 100, InputEvent{}, true},
	} {
		got, err := tc.g.ToDevice(tc.w, tc.h)
		if tc.err {
			if !errors.Is(err, ErrInvalidInput) {
				t.Errorf("%s: err = %v, want ErrInvalidInput", tc.name, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: ToDevice = %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}
