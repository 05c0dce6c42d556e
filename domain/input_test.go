package domain

import (
	"errors"
	"strings"
	"testing"
)

func TestInputValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   InputEvent
		ok   bool
	}{
		{"tap inside", InputEvent{Type: InputTap, X: 10, Y: 10}, true},
		{"tap at edge", InputEvent{Type: InputTap, X: 1279, Y: 719}, true},
		{"tap outside", InputEvent{Type: InputTap, X: 1280, Y: 10}, false},
		{"tap negative", InputEvent{Type: InputTap, X: -1, Y: 10}, false},
		{"long press", InputEvent{Type: InputLongPress, X: 1, Y: 1, DurationMs: 800}, true},
		{"swipe", InputEvent{Type: InputSwipe, X: 1, Y: 1, X2: 100, Y2: 600, DurationMs: 300}, true},
		{"swipe end outside", InputEvent{Type: InputSwipe, X: 1, Y: 1, X2: 100, Y2: 6000}, false},
		{"swipe too long", InputEvent{Type: InputSwipe, X: 1, Y: 1, X2: 2, Y2: 2, DurationMs: 20000}, false},
		{"negative duration", InputEvent{Type: InputTap, X: 1, Y: 1, DurationMs: -1}, false},
		{"key", InputEvent{Type: InputKey, Key: "Enter"}, true},
		{"empty key", InputEvent{Type: InputKey}, false},
		{"text", InputEvent{Type: InputText, Text: "hello"}, true},
		{"text 300 bytes", InputEvent{Type: InputText, Text: strings.Repeat("a", 300)}, true},
		{"text 301 bytes", InputEvent{Type: InputText, Text: strings.Repeat("a", 301)}, false},
		{"empty text", InputEvent{Type: InputText}, false},
		{"back", InputEvent{Type: InputBack}, true},
		{"home", InputEvent{Type: InputHome}, true},
		{"recents", InputEvent{Type: InputRecents}, true},
		{"unknown", InputEvent{Type: "explode"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ev.Validate(1280, 720)
			if tc.ok != (err == nil) {
				t.Fatalf("Validate = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("error %v is not ErrInvalidInput", err)
			}
		})
	}
}
