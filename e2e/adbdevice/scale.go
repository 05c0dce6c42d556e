package adbdevice

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// screenrecord --size: the real one has the encoder make pictures of the
// asked size from the display. The emulated device makes the same: its
// clip scaled to that size and encoded at the asked --bit-rate with
// Debian's ffmpeg (libx264, Constrained Baseline as a device's AVC encoder
// gives by default, ultrafast: the first screenrecord of a size waits for it), once per clip, size and bit rate for the whole
// process, so a farm of emulated devices encodes each size once.

// scaledPictures is how many pictures of the clip a scaled clip has: 2 s
// at 30 fps.
const scaledPictures = 60

// maxEncoderSide is the largest side the emulated AVC encoder configures
// (a phone's is 4096 or less).
const maxEncoderSide = 4096

type scaleKey struct {
	c       *clip
	w, h    int
	bitrate int64
}

type scaleEntry struct {
	once sync.Once
	c    *clip
	err  error
}

var scaled struct {
	mu sync.Mutex
	m  map[scaleKey]*scaleEntry
}

// encoderTakes reports whether the emulated AVC encoder configures a
// w×h picture: even sides (4:2:0) no larger than maxEncoderSide.
func encoderTakes(w, h int) bool {
	return w%2 == 0 && h%2 == 0 && w <= maxEncoderSide && h <= maxEncoderSide
}

// scaledClip returns c at w×h encoded at bitrate (0: 4 Mbit/s, the real
// screenrecord's default), making it on first use.
func scaledClip(c *clip, w, h int, bitrate int64) (*clip, error) {
	if w == c.width && h == c.height {
		return c, nil
	}
	if bitrate <= 0 {
		bitrate = 4_000_000
	}
	k := scaleKey{c: c, w: w, h: h, bitrate: bitrate}
	scaled.mu.Lock()
	if scaled.m == nil {
		scaled.m = make(map[scaleKey]*scaleEntry)
	}
	e, ok := scaled.m[k]
	if !ok {
		e = &scaleEntry{}
		scaled.m[k] = e
	}
	scaled.mu.Unlock()
	e.once.Do(func() {
		e.c, e.err = encodeScaled(c, w, h, bitrate)
		if e.err != nil {
			// Not cached: the next screenrecord tries again.
			scaled.mu.Lock()
			delete(scaled.m, k)
			scaled.mu.Unlock()
		}
	})
	if e.err != nil {
		return nil, e.err
	}
	return e.c, nil
}

// encodeScaled runs ffmpeg over c's pictures.
func encodeScaled(c *clip, w, h int, bitrate int64) (*clip, error) {
	// The first scaledPictures pictures only (a couple of GOPs, looped
	// like the whole clip): the first screenrecord of a size waits for
	// the encode, which must stay well within a capture's keyframe
	// timeout on a loaded machine.
	pics := c.pics
	if len(pics) > scaledPictures {
		pics = pics[:scaledPictures]
	}
	var in bytes.Buffer
	for i, p := range pics {
		if p.key && i > 0 {
			in.Write(c.params)
		}
		if i == 0 {
			in.Write(p.full)
			continue
		}
		in.Write(p.bare)
	}
	kbps := strconv.FormatInt(bitrate/1000, 10) + "k"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-f", "h264", "-i", "pipe:0", "-an",
		"-vf", fmt.Sprintf("scale=%d:%d", w, h),
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-profile:v", "baseline",
		"-pix_fmt", "yuv420p", "-b:v", kbps, "-maxrate", kbps, "-bufsize", kbps, "-bf", "0",
		"-g", "30", "-threads", "2", "-x264-params", "repeat-headers=1",
		"-f", "h264", "pipe:1")
	cmd.Stdin = &in
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("scale clip to %dx%d: %v: %s", w, h, err, bytes.TrimSpace(stderr.Bytes()))
	}
	sc, err := parseClip(out.Bytes())
	if err != nil {
		return nil, fmt.Errorf("scale clip to %dx%d: %w", w, h, err)
	}
	return sc, nil
}
