package adb

import (
	"errors"
	"testing"

	"mediasvc/domain"
)

func TestInputCommand(t *testing.T) {
	tests := []struct {
		ev   domain.InputEvent
		want string
		bad  bool
	}{
		{ev: domain.InputEvent{Type: domain.InputTap, X: 10, Y: 20}, want: "input tap 10 20"},
		{ev: domain.InputEvent{Type: domain.InputSwipe, X: 1, Y: 2, X2: 3, Y2: 4}, want: "input swipe 1 2 3 4 300"},
		{ev: domain.InputEvent{Type: domain.InputSwipe, X: 1, Y: 2, X2: 3, Y2: 4, DurationMs: 50}, want: "input swipe 1 2 3 4 50"},
		{ev: domain.InputEvent{Type: domain.InputLongPress, X: 5, Y: 6}, want: "input swipe 5 6 5 6 800"},
		{ev: domain.InputEvent{Type: domain.InputBack}, want: "input keyevent 4"},
		{ev: domain.InputEvent{Type: domain.InputHome}, want: "input keyevent 3"},
		{ev: domain.InputEvent{Type: domain.InputRecents}, want: "input keyevent 187"},
		{ev: domain.InputEvent{Type: domain.InputKey, Key: "Enter"}, want: "input keyevent 66"},
		{ev: domain.InputEvent{Type: domain.InputKey, Key: "Backspace"}, want: "input keyevent 67"},
		{ev: domain.InputEvent{Type: domain.InputKey, Key: "ArrowLeft"}, want: "input keyevent 21"},
		{ev: domain.InputEvent{Type: domain.InputKey, Key: "KEYCODE_APP_SWITCH"}, want: "input keyevent 187"},
		{ev: domain.InputEvent{Type: domain.InputKey, Key: "HOME"}, want: "input keyevent 3"},
		{ev: domain.InputEvent{Type: domain.InputKey, Key: "Home"}, want: "input keyevent 122"},
		{ev: domain.InputEvent{Type: domain.InputKey, Key: "back"}, want: "input keyevent 4"},
		{ev: domain.InputEvent{Type: domain.InputKey, Key: "a"}, want: "input keyevent 29"},
		{ev: domain.InputEvent{Type: domain.InputKey, Key: "7"}, want: "input keyevent 7"},
		{ev: domain.InputEvent{Type: domain.InputKey, Key: "F13"}, bad: true},
		{ev: domain.InputEvent{Type: domain.InputText, Text: "hello world"}, want: "input text 'hello%sworld'"},
		{ev: domain.InputEvent{Type: domain.InputText, Text: `it's $(rm -rf /); "x" ` + "`id`"}, want: `input text 'it'\''s%s$(rm%s-rf%s/);%s"x"%s` + "`id`'"},
		{ev: domain.InputEvent{Type: domain.InputText, Text: "line\nrm -rf /"}, bad: true},
		{ev: domain.InputEvent{Type: domain.InputText, Text: "héllo"}, bad: true},
		{ev: domain.InputEvent{Type: "jump"}, bad: true},
		{ev: domain.InputEvent{Type: domain.InputKey, Key: "c", Ctrl: true}, want: "input keycombination 113 31"},
		{ev: domain.InputEvent{Type: domain.InputKey, Key: "Tab", Phase: domain.PhaseDown, Shift: true, Alt: true}, want: "input keycombination 59 57 61"},
		{ev: domain.InputEvent{Type: domain.InputKey, Key: "Tab", Phase: domain.PhaseUp}, want: ""},
		{ev: domain.InputEvent{Type: domain.InputKey, Key: "a", Phase: domain.PhaseDown, Repeat: 1}, want: ""},
		{ev: domain.InputEvent{Type: domain.InputPointer, Phase: domain.PhaseDown, X: 1, Y: 2}, want: "input touchscreen motionevent DOWN 1 2"},
		{ev: domain.InputEvent{Type: domain.InputPointer, Phase: domain.PhaseMove, X: 3, Y: 4}, want: "input touchscreen motionevent MOVE 3 4"},
		{ev: domain.InputEvent{Type: domain.InputPointer, Phase: domain.PhaseUp, X: 3, Y: 4}, want: "input touchscreen motionevent UP 3 4"},
		{ev: domain.InputEvent{Type: domain.InputPointer, Phase: domain.PhaseCancel, X: 3, Y: 4}, want: "input touchscreen motionevent CANCEL 3 4"},
		{ev: domain.InputEvent{Type: domain.InputPointer, Phase: domain.PhaseDown, PointerID: 1, X: 3, Y: 4}, bad: true},
		{ev: domain.InputEvent{Type: domain.InputPointer, Phase: domain.PhaseHover, PointerType: domain.PointerMouse, X: 3, Y: 4}, bad: true},
		{ev: domain.InputEvent{Type: domain.InputPointer, Phase: domain.PhaseDown, PointerType: domain.PointerMouse, Buttons: 2}, bad: true},
		{ev: domain.InputEvent{Type: domain.InputScroll, X: 5, Y: 6, ScrollY: 2}, want: "input mouse scroll 5 6 --axis VSCROLL,-2"},
		{ev: domain.InputEvent{Type: domain.InputScroll, X: 5, Y: 6, ScrollX: -0.5, ScrollY: -1}, want: "input mouse scroll 5 6 --axis VSCROLL,1 --axis HSCROLL,-0.5"},
		{ev: domain.InputEvent{Type: domain.InputClipboard, Text: "x"}, bad: true},
	}
	for _, tt := range tests {
		got, err := inputCommand(tt.ev)
		if tt.bad {
			if !errors.Is(err, domain.ErrInvalidInput) {
				t.Errorf("%+v: got %q, %v; want ErrInvalidInput", tt.ev, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%+v: got %q, %v; want %q", tt.ev, got, err, tt.want)
		}
	}
}
