package transcode

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mediasvc/domain"
)

// keyframe encodes one 320x240 H.264 IDR (Annex-B, SPS and PPS in front)
// with the real ffmpeg.
func keyframe(t *testing.T) []byte {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30",
		"-frames:v", "1", "-c:v", "libx264", "-bsf:v", "h264_mp4toannexb", "-f", "h264", "pipe:1").Output()
	if err != nil {
		t.Fatalf("encode a keyframe with ffmpeg: %v", err)
	}
	return out
}

// TestDecodeStillRealFFmpeg: a keyframe decodes to a PNG of its size.
func TestDecodeStillRealFFmpeg(t *testing.T) {
	got, err := NewStills("", 0).DecodeStill(context.Background(), keyframe(t))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(got, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("no PNG signature: % x", got[:min(8, len(got))])
	}
	img, err := png.Decode(bytes.NewReader(got))
	if err != nil || img.Bounds().Dx() != 320 || img.Bounds().Dy() != 240 {
		t.Fatalf("png %v %v", img.Bounds(), err)
	}
}

// fakeFFmpeg writes a shell script standing in for ffmpeg.
func fakeFFmpeg(t *testing.T, script string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ffmpeg")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDecodeStillErrors: every way a decode fails has its error.
func TestDecodeStillErrors(t *testing.T) {
	au := keyframe(t)
	cases := []struct {
		name    string
		s       *Stills
		au      []byte
		want    error
		message string
	}{
		{"ffmpeg missing", NewStills("/nonexistent/ffmpeg", 0), au, domain.ErrUnavailable, "ffmpeg is missing"},
		{"empty keyframe", NewStills("", 0), nil, domain.ErrInvalidRequest, "keyframe of 0 bytes"},
		{"keyframe too big", NewStills("", 0), make([]byte, MaxStillInput+1), domain.ErrInvalidRequest, "want 1..8388608"},
		{"not H.264", NewStills("", 0), []byte("\x00\x00\x00\x01garbage that is no picture"), domain.ErrInvalidRequest, "decode still"},
		{"too slow", NewStills(fakeFFmpeg(t, "exec sleep 30"), 300*time.Millisecond), au, domain.ErrUnavailable, "took longer than 300ms"},
		// Only the size limit may end it: under -race, gathering 32 MiB
		// alone can take seconds on a loaded machine.
		{"too much output", NewStills(fakeFFmpeg(t, "cat >/dev/null; exec head -c 40000000 /dev/zero"), time.Minute), au, domain.ErrUnavailable, "PNG past"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.s.DecodeStill(context.Background(), c.au)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.message) {
				t.Fatalf("err %v, want %v with %q", err, c.want, c.message)
			}
		})
	}
}
