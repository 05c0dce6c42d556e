package transcode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
)

var _ ports.StillDecoder = (*Stills)(nil)

// Still decoding bounds: how long one ffmpeg run may take, how big a PNG
// it may write and how big a keyframe it is given.
const (
	DefaultStillTimeout = 5 * time.Second
	MaxStillPNG         = 32 << 20
	MaxStillInput       = 8 << 20
)

// Stills decodes H.264 keyframes to PNG with an ffmpeg subprocess per
// picture.
type Stills struct {
	ffmpeg  string
	timeout time.Duration
}

// NewStills returns a decoder running ffmpeg (a path or a name looked up
// in PATH when it runs; "" = DefaultFFmpeg), each run bounded by timeout
// (0 = DefaultStillTimeout).
func NewStills(ffmpeg string, timeout time.Duration) *Stills {
	if ffmpeg == "" {
		ffmpeg = DefaultFFmpeg
	}
	if timeout <= 0 {
		timeout = DefaultStillTimeout
	}
	return &Stills{ffmpeg: ffmpeg, timeout: timeout}
}

// DecodeStill decodes the first picture of au (an Annex-B H.264 keyframe
// with its SPS and PPS) to PNG. ErrUnavailable (domain.ErrUnavailable)
// when ffmpeg is missing, takes longer than the timeout or writes more
// than MaxStillPNG; domain.ErrInvalidRequest when au is empty or past
// MaxStillInput, or ffmpeg decodes no picture from it.
func (s *Stills) DecodeStill(ctx context.Context, au []byte) ([]byte, error) {
	if len(au) == 0 || len(au) > MaxStillInput {
		return nil, fmt.Errorf("decode still: keyframe of %d bytes (want 1..%d): %w", len(au), MaxStillInput, domain.ErrInvalidRequest)
	}
	path, err := exec.LookPath(s.ffmpeg)
	if err != nil {
		return nil, fmt.Errorf("decode still: ffmpeg is missing (%s: %v): %w", s.ffmpeg, err, ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "h264", "-i", "pipe:0", "-frames:v", "1", "-f", "image2pipe", "-c:v", "png", "pipe:1")
	cmd.Stdin = bytes.NewReader(au)
	var stderr bytes.Buffer
	cmd.Stderr = &limited{w: &stderr, n: 2048}
	out := &limited{w: &bytes.Buffer{}, n: MaxStillPNG + 1, stop: true}
	cmd.Stdout = out
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	png := out.w.(*bytes.Buffer).Bytes()
	switch {
	case out.over:
		return nil, fmt.Errorf("decode still: PNG past %d bytes: %w", MaxStillPNG, ErrUnavailable)
	case ctx.Err() != nil:
		return nil, fmt.Errorf("decode still: ffmpeg took longer than %v: %w", s.timeout, ErrUnavailable)
	case err != nil:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return nil, fmt.Errorf("decode still: ffmpeg: %s: %w", strings.TrimSpace(stderr.String()), domain.ErrInvalidRequest)
		}
		return nil, fmt.Errorf("decode still: run ffmpeg: %v: %w", err, ErrUnavailable)
	case len(png) == 0:
		return nil, fmt.Errorf("decode still: ffmpeg decoded no picture: %w", domain.ErrInvalidRequest)
	}
	return png, nil
}

// limited writes up to n bytes to w and notes when more came. Past them it
// drops the rest, or with stop fails the write, so exec stops copying and
// closes the pipe: the process gets EPIPE instead of being drained to its
// end or to the timeout.
type limited struct {
	w    io.Writer
	n    int
	stop bool
	over bool
}

var errPastLimit = errors.New("output past its limit")

func (l *limited) Write(p []byte) (int, error) {
	if len(p) > l.n {
		l.over = true
		n, _ := l.w.Write(p[:l.n])
		l.n = 0
		if l.stop {
			return n, errPastLimit
		}
		return len(p), nil
	}
	l.n -= len(p)
	return l.w.Write(p)
}
