package demo

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
)

var _ ports.Capture = (*Capture)(nil)

const (
	// maxLag is how far behind the wall clock ReadFrame may fall (its
	// caller stalled) before pacing restarts from now instead of bursting
	// the backlog.
	maxLag = time.Second
	// minKeyframeGap is the fewest video frames between a keyframe and one
	// forced by RequestKeyframe (about 333 ms at 30 fps), so a storm of
	// requests costs at most three extra IDR frames a second.
	minKeyframeGap = 10
	// seiLen is the size of the SEI timestamp NAL unit with its start code.
	seiLen = 4 + 1 + 2 + 16 + 8 + 1 + 4 // the last 4: room for emulation prevention
)

// Capture is one running playback of the demo clip. It starts no goroutine:
// ReadFrame does the work, waiting on a timer. ReadFrame is called from one
// goroutine; RequestKeyframe, SetBitrate, Info and Close from any.
type Capture struct {
	clip    *clip
	speed   float64
	unpaced bool

	closed    chan struct{}
	closeOnce sync.Once
	keyReq    atomic.Bool
	lastKey   *atomic.Int64 // the source's latest keyframe index; nil for none

	// Owned by the ReadFrame goroutine.
	timer    *time.Timer
	anchor   time.Time // wall-clock time of PTS 0
	started  bool
	vIdx     int           // next picture of the clip
	aIdx     int           // next audio packet of the clip
	vCount   int64         // video frames emitted
	aPTS     time.Duration // PTS of the next audio packet
	sinceKey int           // video frames since the last keyframe
}

func newCapture(c *clip, speed float64) *Capture {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &Capture{clip: c, speed: speed, unpaced: unpaced(speed), closed: make(chan struct{}), timer: t}
}

// Info describes the demo stream: H.264 1280x720 at 30 fps with the
// profile-level-id of the clip's SPS, and Opus audio.
func (c *Capture) Info() domain.StreamInfo { return c.clip.info }

// ReadFrame waits until the next frame is due and returns it. Video and
// audio frames come interleaved in PTS order (video first on a tie), the clip
// looping forever with PTS that keep growing: loop n adds n times the clip's
// 10 s, audio and video alike. The first frame is the clip's first keyframe;
// pacing starts at the first call. Each video frame is a new slice holding
// the access unit with an SEI timestamp NAL unit (domain.AppendSEITimestamp)
// inserted before its first slice; the timestamp and Frame.Ingest are the
// time ReadFrame returns. Audio frames share the clip's packet bytes, which
// nothing ever changes.
//
// If the caller falls more than a second behind, pacing restarts from now
// rather than bursting the backlog (PTS stay continuous). ReadFrame returns
// ctx.Err() when ctx is done and an error wrapping io.EOF once the capture
// is closed, including when Close is called while it waits.
func (c *Capture) ReadFrame(ctx context.Context) (domain.Frame, error) {
	select {
	case <-c.closed:
		return domain.Frame{}, fmt.Errorf("read demo frame: capture closed: %w", io.EOF)
	default:
	}
	if err := ctx.Err(); err != nil {
		return domain.Frame{}, err
	}
	vPTS := videoPTS(c.vCount)
	video := vPTS <= c.aPTS
	pts := c.aPTS
	if video {
		pts = vPTS
	}
	if err := c.wait(ctx, pts); err != nil {
		return domain.Frame{}, err
	}
	now := time.Now()
	if !video {
		p := c.clip.audio[c.aIdx]
		c.aIdx = (c.aIdx + 1) % len(c.clip.audio)
		c.aPTS += p.dur
		return domain.Frame{Kind: domain.KindAudio, Data: p.data, PTS: pts, Duration: p.dur, Ingest: now}, nil
	}
	if c.keyReq.Load() && !c.clip.video[c.vIdx].key && c.sinceKey >= minKeyframeGap {
		// Skip ahead to the next GOP, and the audio with it; PTS go on.
		c.vIdx = c.clip.nextKey[c.vIdx]
		c.aIdx = c.clip.audioIndexAt(videoPTS(int64(c.vIdx)))
	}
	au := &c.clip.video[c.vIdx]
	if au.key {
		c.keyReq.Store(false)
		c.sinceKey = 0
		if c.lastKey != nil {
			c.lastKey.Store(int64(c.vIdx))
		}
	}
	data := make([]byte, 0, len(au.data)+seiLen)
	data = append(data, au.data[:au.split]...)
	data = append(data, domain.AnnexBStartCode...)
	data = domain.AppendSEITimestamp(data, now)
	data = append(data, au.data[au.split:]...)
	c.vIdx = (c.vIdx + 1) % len(c.clip.video)
	c.vCount++
	c.sinceKey++
	return domain.Frame{
		Kind: domain.KindVideo, Data: data, PTS: pts, Duration: time.Second / clipFPS,
		Keyframe: au.key, Ingest: now,
	}, nil
}

// wait blocks until the frame at pts is due by the wall clock.
func (c *Capture) wait(ctx context.Context, pts time.Duration) error {
	if c.unpaced {
		return nil
	}
	rel := time.Duration(float64(pts) / c.speed)
	if !c.started {
		c.anchor, c.started = time.Now().Add(-rel), true
		return nil
	}
	d := time.Until(c.anchor.Add(rel))
	if d < -maxLag {
		c.anchor = time.Now().Add(-rel)
		return nil
	}
	if d <= 0 {
		return nil
	}
	c.timer.Reset(d)
	select {
	case <-c.timer.C:
		return nil
	case <-ctx.Done():
		c.timer.Stop()
		return ctx.Err()
	case <-c.closed:
		c.timer.Stop()
		return fmt.Errorf("read demo frame: capture closed: %w", io.EOF)
	}
}

// RequestKeyframe makes the next video frame a keyframe, at least
// minKeyframeGap (10) frames after the last one: the clip is pre-encoded, so
// playback skips ahead to the start of its next GOP (at most 1 s of content,
// audio skipping with it) while PTS go on without a gap. Re-sending the
// current GOP's IDR instead would break the P-frames after it that reference
// earlier pictures. A request made while a keyframe is due anyway is served
// by that one. It never blocks.
func (c *Capture) RequestKeyframe() { c.keyReq.Store(true) }

// SetBitrate does nothing: the clip is pre-encoded at about 2 Mbps.
func (c *Capture) SetBitrate(int) {}

// Close stops the capture; a ReadFrame waiting returns at once and later
// ones fail with an error wrapping io.EOF. It is safe to call more than once
// and concurrently with ReadFrame, and always returns nil.
func (c *Capture) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}
