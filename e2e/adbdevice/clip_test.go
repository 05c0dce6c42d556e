package adbdevice

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"mediasvc/domain"
)

func TestClips(t *testing.T) {
	demo, err := os.ReadFile(DefaultClipPath())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		data       []byte
		pics, keys int
	}{
		{"demo", demo, 300, 10},
		{"gop10", ClipGOP10(), 300, 1},
		{"portrait", ClipPortrait(), 300, 10},
	}
	for _, tt := range tests {
		c, err := parseClip(tt.data)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		keys := 0
		for i, p := range c.pics {
			if p.key {
				keys++
			}
			for _, n := range domain.SplitAnnexB(p.bare) {
				if typ := domain.NALType(n); typ == domain.NALTypeSPS || typ == domain.NALTypePPS {
					t.Fatalf("%s: picture %d keeps a parameter set without them", tt.name, i)
				}
			}
		}
		if len(c.pics) != tt.pics || keys != tt.keys || !bytes.HasPrefix(c.params, domain.AnnexBStartCode) {
			t.Errorf("%s: %d pictures, %d keyframes; want %d, %d", tt.name, len(c.pics), keys, tt.pics, tt.keys)
		}
	}
	if _, err := parseClip([]byte("\x00\x00\x01\x41\x9a")); !errors.Is(err, errBadClip) {
		t.Errorf("a clip without SPS: %v", err)
	}
	if _, err := New(Options{Clip: []byte("junk")}); err == nil {
		t.Error("New accepted a junk clip")
	}
}
