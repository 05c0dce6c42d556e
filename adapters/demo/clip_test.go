package demo

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"mediasvc/domain"
)

func nalTypes(au []byte) []uint8 {
	var ts []uint8
	for _, n := range domain.SplitAnnexB(au) {
		ts = append(ts, domain.NALType(n))
	}
	return ts
}

// TestClip checks the embedded clip against what media/generate.sh promises
// and what the capture relies on.
func TestClip(t *testing.T) {
	c, err := parseClip(clipH264, clipOgg)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.video) != 300 {
		t.Fatalf("%d access units, want 300 (10 s at 30 fps)", len(c.video))
	}
	if c.duration != 10*time.Second {
		t.Fatalf("duration %v, want 10s", c.duration)
	}
	if c.info.ProfileLevelID != "42e01f" {
		t.Fatalf("profile-level-id %q, want 42e01f", c.info.ProfileLevelID)
	}
	for i, au := range c.video {
		if want := i%30 == 0; au.key != want {
			t.Fatalf("access unit %d: keyframe %v, want %v (GOP 30)", i, au.key, want)
		}
		head, slices := nalTypes(au.data[:au.split]), nalTypes(au.data[au.split:])
		for _, s := range slices {
			if s != domain.NALTypeSlice && s != domain.NALTypeIDR {
				t.Fatalf("access unit %d: NAL type %d after the first slice", i, s)
			}
		}
		if au.key {
			if len(head) < 2 || head[0] != domain.NALTypeSPS || head[1] != domain.NALTypePPS || slices[0] != domain.NALTypeIDR {
				t.Fatalf("keyframe %d: NAL types %v then %v, want SPS, PPS, …, IDR", i, head, slices)
			}
			if !domain.IsKeyframe(au.data) {
				t.Fatalf("keyframe %d: IsKeyframe false", i)
			}
		} else if len(head) != 0 || slices[0] != domain.NALTypeSlice {
			t.Fatalf("access unit %d: NAL types %v then %v, want one slice", i, head, slices)
		}
		if want := (i/30 + 1) * 30 % 300; c.nextKey[i] != want {
			t.Fatalf("nextKey[%d] = %d, want %d", i, c.nextKey[i], want)
		}
	}
	if len(c.audio) != 500 {
		t.Fatalf("%d audio packets, want 500", len(c.audio))
	}
	for i, p := range c.audio {
		if p.dur != 20*time.Millisecond || p.at != time.Duration(i)*20*time.Millisecond {
			t.Fatalf("audio packet %d: %v at %v", i, p.dur, p.at)
		}
	}
	if got := c.audioIndexAt(time.Second); got != 50 {
		t.Fatalf("audioIndexAt(1s) = %d, want 50", got)
	}
}

func TestParseClipRejects(t *testing.T) {
	noIDR := bytes.Clone(clipH264)
	// Cut the stream just after the first keyframe so only P-frames remain.
	c, _ := parseClip(clipH264, clipOgg)
	noIDR = noIDR[len(c.video[0].data)+200:]
	tests := []struct {
		name      string
		h264, ogg []byte
	}{
		{"empty video", nil, clipOgg},
		{"starts without keyframe", noIDR, clipOgg},
		{"no audio", clipH264, nil},
		{"short video", clipH264[:len(clipH264)/2], clipOgg},
	}
	for _, tt := range tests {
		if _, err := parseClip(tt.h264, tt.ogg); !errors.Is(err, errBadClip) && !errors.Is(err, errBadOgg) {
			t.Errorf("%s: err = %v, want errBadClip or errBadOgg", tt.name, err)
		}
	}
}
