package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"mediasvc/domain"
	"mediasvc/ports"
)

// The capture pump of one device's stream: frames into the fanout,
// keyframe requests and the bitrate policy out to the capture, reopening
// the capture whenever it ends, fails or panics.

// timeline maps each capture's timestamps onto the stream's: PTS only
// grows, and after a reopen it resumes at the wall time that passed, so
// the RTP clock the viewers see keeps pace with the sender reports' NTP
// clock across outages.
type timeline struct {
	base     time.Duration // added to the current capture's PTS
	last     time.Duration // the last PTS written
	lastAt   time.Time     // when it was written
	rebase   bool          // the next frame starts a new capture
	anyFrame bool
}

// next returns frame PTS pts of the current capture on the stream's timeline.
func (t *timeline) next(pts time.Duration, now time.Time) time.Duration {
	if t.rebase {
		t.rebase = false
		if t.anyFrame {
			gap := max(now.Sub(t.lastAt), minFrameGap)
			t.base = t.last + gap - pts
		}
	}
	out := pts + t.base
	if t.anyFrame && out < t.last {
		out = t.last
	}
	t.last, t.lastAt, t.anyFrame = out, now, true
	return out
}

// bitrateCheck is how often the bitrate policy looks at the viewers'
// quality (it changes the bitrate at most every BitratePolicy.Interval).
const bitrateCheck = time.Second

// minFrameGap separates the last frame of a capture from the first of the
// next when hardly any time passed between them.
const minFrameGap = 33 * time.Millisecond

// run pumps frames from the capture into the fanout, serves keyframe
// requests and the bitrate policy, and reopens the capture when it ends,
// fails or panics, until the stream's context is cancelled.
func (h *Hub) run(st *stream, src Source, capt ports.Capture) {
	ctx := st.ctx
	log := h.log.With("device_id", st.device)
	var tl timeline
	backoff := h.cfg.RetryMin
	bitrate := h.captureOptions(st).BitrateBps
	for {
		panicked, err := h.pumpSafely(ctx, st, capt, &tl, &bitrate)
		_ = capt.Close()
		if ctx.Err() != nil {
			return
		}
		tl.rebase = true
		h.m.captureRestarts.Add(ctx, 1, st.attrs)
		unavailable := false
		wait := time.Duration(0)
		switch {
		case panicked:
			h.m.capturePanics.Add(ctx, 1, st.attrs)
			h.m.panicked(panicHubPump)
			log.Error("capture pump panicked; reopening", "err", err, "retry_in", backoff)
			h.notifyStream(st, "device_unavailable")
			unavailable = true
			wait = backoff
		case errors.Is(err, io.EOF):
			log.Info("capture ended; reopening")
		default:
			log.Warn("capture failed; reopening", "err", err)
		}
		for {
			if wait > 0 {
				t := h.clock.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C():
				}
				backoff = min(backoff*2, h.cfg.RetryMax)
			}
			var err error
			capt, err = h.reopen(ctx, st, src, bitrate)
			if err == nil {
				break
			}
			h.m.captureFailures.Add(ctx, 1, st.attrs)
			if !unavailable {
				h.notifyStream(st, "device_unavailable")
				unavailable = true
			}
			log.Warn("reopen capture failed", "err", err, "retry_in", backoff)
			wait = backoff
		}
		backoff = h.cfg.RetryMin
		if unavailable {
			h.notifyStream(st, "device_available")
		}
	}
}

// reopen opens the device's capture again; a capture of another codec is
// refused (the viewers' peers negotiated the first one).
func (h *Hub) reopen(ctx context.Context, st *stream, src Source, bitrate int) (ports.Capture, error) {
	opts := h.captureOptions(st)
	opts.BitrateBps = bitrate
	capt, err := src.Screen.Open(ctx, st.device, opts)
	if err != nil {
		return nil, err
	}
	if capt.Info().Video != st.info.Video {
		_ = capt.Close()
		return nil, fmt.Errorf("capture codec changed from %s to %s: %w", st.info.Video, capt.Info().Video, domain.ErrDeviceUnavailable)
	}
	h.mu.Lock()
	st.current = capt.Info()
	h.mu.Unlock()
	return capt, nil
}

// pumpSafely is pump with a panic turned into its error.
func (h *Hub) pumpSafely(ctx context.Context, st *stream, capt ports.Capture, tl *timeline, bitrate *int) (panicked bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			panicked, err = true, fmt.Errorf("capture pump of %s panicked: %v", st.device, r)
		}
	}()
	return false, h.pump(ctx, st, capt, tl, bitrate)
}

// pump moves frames until the capture ends or ctx is done.
func (h *Hub) pump(ctx context.Context, st *stream, capt ports.Capture, tl *timeline, bitrate *int) error {
	ctrlCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { h.control(ctrlCtx, st, capt, bitrate) })
	defer func() {
		stop()
		wg.Wait()
	}()
	for {
		f, err := capt.ReadFrame(ctx)
		if err != nil {
			return err
		}
		f.PTS = tl.next(f.PTS, h.clock.Now())
		var cur domain.StreamInfo
		if f.Keyframe {
			// A rotation may have changed the size (scrcpy restarts its
			// encoder); input maps to the picture from this keyframe on.
			info := capt.Info()
			h.mu.Lock()
			if info.Width != st.current.Width || info.Height != st.current.Height {
				st.current = info
			}
			cur = st.current
			h.mu.Unlock()
		}
		if err := st.fanout.WriteFrame(f); err != nil {
			return fmt.Errorf("write frame: %w", err)
		}
		st.feedRenditions(f, cur)
		st.feedSinks(f)
	}
}

// notifyStream tells a device's viewers about their stream; a wall
// capture's outages concern its tiles only (their wall sees no frames).
func (h *Hub) notifyStream(st *stream, what string) {
	if !st.wall {
		h.notify(st.device, what)
	}
}

// control forwards coalesced keyframe requests to the capture and applies
// the bitrate policy every bitrateCheck.
func (h *Hub) control(ctx context.Context, st *stream, capt ports.Capture, bitrate *int) {
	defer func() {
		if r := recover(); r != nil {
			h.m.panicked(panicHubControl)
			h.log.Error("capture control panicked", "device_id", st.device, "panic", r)
		}
	}()
	tick := h.clock.NewTimer(bitrateCheck)
	defer tick.Stop()
	lastChange := h.clock.Now()
	current := *bitrate
	if current > 0 {
		h.m.bitrateTarget.Record(ctx, int64(current), st.attrs)
	}
	for {
		select {
		case <-ctx.Done():
			*bitrate = current
			return
		case <-st.fanout.KeyframeRequests():
			h.m.sourceKeyframes.Add(ctx, 1, st.attrs)
			capt.RequestKeyframe()
		case <-tick.C():
			tick.Reset(bitrateCheck)
			now := h.clock.Now()
			if current <= 0 || st.wall || st.fanout.Viewers() == 0 {
				continue
			}
			next, changed := h.bitrate.Load().Next(current, st.fanout.Stats(), lastChange, now)
			if changed {
				h.log.Info("capture bitrate changed", "device_id", st.device, "from", current, "to", next)
				capt.SetBitrate(next)
				dir := "up"
				if next < current {
					dir = "down"
				}
				h.m.bitrateChanges.Add(ctx, 1, metric.WithAttributes(attribute.String("device_id", string(st.device)), attribute.String("direction", dir)))
				h.m.bitrateTarget.Record(ctx, int64(next), st.attrs)
				current, lastChange = next, now
			}
		}
	}
}
