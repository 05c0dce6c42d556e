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
		// 18446744073709 ms × 1e6 wraps int64 to a small value: once accepted.
		{"duration that overflows as a Duration", InputEvent{Type: InputSwipe, X: 1, Y: 1, X2: 2, Y2: 2, DurationMs: 18446744073709}, false},
		{"duration max int", InputEvent{Type: InputLongPress, X: 1, Y: 1, DurationMs: 1<<63 - 1}, false},
		{"duration 10001", InputEvent{Type: InputSwipe, X: 1, Y: 1, X2: 2, Y2: 2, DurationMs: 10001}, false},
		{"duration 10000", InputEvent{Type: InputSwipe, X: 1, Y: 1, X2: 2, Y2: 2, DurationMs: 10000}, true},
		{"huge coordinate, unknown size", InputEvent{Type: InputTap, X: 1 << 40, Y: 1}, false},
		{"negative x2 on a tap", InputEvent{Type: InputTap, X: 1, Y: 1, X2: -5}, false},
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

func TestMapToDevice(t *testing.T) {
	for _, tc := range []struct {
		name           string
		ev             InputEvent
		vw, vh, dw, dh int
		want           InputEvent
		bad            bool
	}{
		{"same size", InputEvent{Type: InputTap, X: 10, Y: 20}, 1280, 720, 1280, 720, InputEvent{Type: InputTap, X: 10, Y: 20}, false},
		{"unknown size", InputEvent{Type: InputTap, X: 10, Y: 20}, 0, 0, 1080, 1920, InputEvent{Type: InputTap, X: 10, Y: 20}, false},
		{"downscaled video", InputEvent{Type: InputTap, X: 320, Y: 180}, 640, 360, 1280, 720, InputEvent{Type: InputTap, X: 640, Y: 360}, false},
		{"video corner", InputEvent{Type: InputTap, X: 639, Y: 359}, 640, 360, 1280, 720, InputEvent{Type: InputTap, X: 1278, Y: 718}, false},
		// A portrait screen letterboxed into a landscape stream: the
		// picture is 405×720 centred, from x=437.5.
		{"rotated centre", InputEvent{Type: InputTap, X: 640, Y: 360}, 1280, 720, 720, 1280, InputEvent{Type: InputTap, X: 360, Y: 640}, false},
		{"rotated on the bar", InputEvent{Type: InputTap, X: 100, Y: 360}, 1280, 720, 720, 1280, InputEvent{}, true},
		{"rotated picture edge", InputEvent{Type: InputTap, X: 438, Y: 0}, 1280, 720, 720, 1280, InputEvent{Type: InputTap, X: 0, Y: 0}, false},
		{"swipe", InputEvent{Type: InputSwipe, X: 0, Y: 0, X2: 639, Y2: 359, DurationMs: 200}, 640, 360, 1280, 720,
			InputEvent{Type: InputSwipe, X: 0, Y: 0, X2: 1278, Y2: 718, DurationMs: 200}, false},
		{"swipe end on the bar", InputEvent{Type: InputSwipe, X: 640, Y: 360, X2: 1200, Y2: 360}, 1280, 720, 720, 1280, InputEvent{}, true},
		{"keys are not mapped", InputEvent{Type: InputKey, Key: "Enter"}, 640, 360, 1280, 720, InputEvent{Type: InputKey, Key: "Enter"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.ev.MapToDevice(tc.vw, tc.vh, tc.dw, tc.dh)
			if tc.bad {
				if !errors.Is(err, ErrInvalidInput) {
					t.Fatalf("err %v, want ErrInvalidInput", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("MapToDevice = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// With the video size unknown the integer bounds still hold.
func TestInputValidateUnknownSize(t *testing.T) {
	for _, ev := range []InputEvent{
		{Type: InputTap, X: 1 << 40, Y: 1},
		{Type: InputSwipe, X: 1, Y: 1, X2: MaxInputCoordinate, Y2: 1},
		{Type: InputSwipe, X: 1, Y: 1, X2: 2, Y2: 2, DurationMs: 18446744073709},
	} {
		if err := ev.Validate(0, 0); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("Validate(%+v) = %v", ev, err)
		}
	}
	if err := (InputEvent{Type: InputTap, X: MaxInputCoordinate - 1, Y: 0}).Validate(0, 0); err != nil {
		t.Error(err)
	}
}

func TestInputValidateRich(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   InputEvent
		ok   bool
	}{
		{"pointer down", InputEvent{Type: InputPointer, Phase: PhaseDown, PointerID: 3, X: 5, Y: 5, Pressure: 0.5}, true},
		{"pointer id 9", InputEvent{Type: InputPointer, Phase: PhaseMove, PointerID: 9, X: 5, Y: 5}, true},
		{"pointer id 10", InputEvent{Type: InputPointer, Phase: PhaseMove, PointerID: 10, X: 5, Y: 5}, false},
		{"pointer no phase", InputEvent{Type: InputPointer, X: 5, Y: 5}, false},
		{"pointer bad type", InputEvent{Type: InputPointer, Phase: PhaseDown, PointerType: "eye", X: 5, Y: 5}, false},
		{"pointer pressure 2", InputEvent{Type: InputPointer, Phase: PhaseDown, Pressure: 2}, false},
		{"pointer buttons", InputEvent{Type: InputPointer, Phase: PhaseDown, PointerType: PointerMouse, Buttons: 2}, true},
		{"pointer outside", InputEvent{Type: InputPointer, Phase: PhaseDown, X: 1280}, false},
		{"scroll", InputEvent{Type: InputScroll, X: 5, Y: 5, ScrollY: 1}, true},
		{"scroll zero", InputEvent{Type: InputScroll, X: 5, Y: 5}, false},
		{"scroll huge", InputEvent{Type: InputScroll, X: 5, Y: 5, ScrollY: 17}, false},
		{"key down meta", InputEvent{Type: InputKey, Key: "a", Phase: PhaseDown, Ctrl: true, Shift: true}, true},
		{"key bad phase", InputEvent{Type: InputKey, Key: "a", Phase: PhaseMove}, false},
		{"key repeat", InputEvent{Type: InputKey, Key: "a", Phase: PhaseDown, Repeat: 3}, true},
		{"text unicode", InputEvent{Type: InputText, Text: "héllo 世界 🙂"}, true},
		{"text not utf-8", InputEvent{Type: InputText, Text: "\xff"}, false},
		{"clipboard", InputEvent{Type: InputClipboard, Text: "copied", Paste: true}, true},
		{"clipboard empty", InputEvent{Type: InputClipboard}, true},
		{"clipboard huge", InputEvent{Type: InputClipboard, Text: strings.Repeat("a", MaxClipboardText+1)}, false},
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

func TestMapToDevicePointerClamps(t *testing.T) {
	// A 720x1280 screen letterboxed into a 1280x720 video: the picture is
	// 405 px wide, centred.
	down := InputEvent{Type: InputPointer, Phase: PhaseDown, X: 10, Y: 10}
	if _, err := down.MapToDevice(1280, 720, 720, 1280); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("down on the bar: %v", err)
	}
	up := InputEvent{Type: InputPointer, Phase: PhaseUp, X: 10, Y: 360}
	got, err := up.MapToDevice(1280, 720, 720, 1280)
	if err != nil || got.X != 0 || got.Y != 640 {
		t.Fatalf("up on the bar: %+v %v, want clamped to (0,640)", got, err)
	}
	sc := InputEvent{Type: InputScroll, X: 640, Y: 360, ScrollY: 1}
	if got, err := sc.MapToDevice(1280, 720, 720, 1280); err != nil || got.X != 360 || got.Y != 640 {
		t.Fatalf("scroll: %+v %v", got, err)
	}
}
