package httpapi

import (
	"testing"

	"mediasvc/domain"
)

func TestDecodeRichInput(t *testing.T) {
	m, err := decodeMessage([]byte(`{"type":"input","action":"pointer","phase":"down","pointer_id":3,"pointer_type":"pen","pressure":0.5,"buttons":1,"x":10,"y":20}`))
	if err != nil {
		t.Fatal(err)
	}
	want := domain.InputEvent{Type: domain.InputPointer, Phase: domain.PhaseDown, PointerID: 3, PointerType: domain.PointerPen, Pressure: 0.5, Buttons: 1, X: 10, Y: 20}
	if got := m.InputEvent(); got != want {
		t.Fatalf("pointer: %+v", got)
	}
	m, err = decodeMessage([]byte(`{"type":"input","action":"key","key":"c","phase":"down","repeat":1,"ctrl":true,"shift":true,"alt":true,"meta":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.InputEvent(); !got.Ctrl || !got.Shift || !got.Alt || !got.Meta || got.Repeat != 1 || got.Phase != "down" {
		t.Fatalf("key: %+v", got)
	}
	m, err = decodeMessage([]byte(`{"type":"input","action":"scroll","x":1,"y":2,"scroll_x":-1,"scroll_y":3.5}`))
	if err != nil || m.InputEvent().ScrollY != 3.5 || m.InputEvent().ScrollX != -1 {
		t.Fatalf("scroll: %+v %v", m, err)
	}
	m, err = decodeMessage([]byte(`{"type":"input","action":"clipboard","text":"x","paste":true}`))
	if err != nil || !m.InputEvent().Paste {
		t.Fatalf("clipboard: %+v %v", m, err)
	}
	if _, err := decodeMessage([]byte(`{"type":"input","action":"pointer","fingers":2}`)); err == nil {
		t.Fatal("unknown field accepted")
	}
}
