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
		{"high", ClipHigh(), 90, 3},
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

func TestOggPackets(t *testing.T) {
	b, err := os.ReadFile(DefaultAudioPath())
	if err != nil {
		t.Fatal(err)
	}
	p, err := oggPackets(b)
	if err != nil {
		t.Fatal(err)
	}
	// OpusHead, OpusTags and the 501 audio packets of the demo clip.
	if len(p) != 503 || !bytes.HasPrefix(p[0], []byte("OpusHead")) || !bytes.HasPrefix(p[1], []byte("OpusTags")) {
		t.Fatalf("%d packets, first %q", len(p), p[0][:8])
	}
	for _, bad := range [][]byte{[]byte("OggS"), append([]byte(nil), b[:40]...), []byte("not ogg at all, not at all")} {
		if _, err := oggPackets(bad); !errors.Is(err, errBadOgg) {
			t.Errorf("oggPackets(%q…): %v", bad[:4], err)
		}
	}
}
