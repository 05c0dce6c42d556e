package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"mediasvc/domain"
	"mediasvc/ports"
)

// Renditions of a device's stream: when a viewer's offer cannot take what
// the device sends (Firefox without OpenH264 offers VP8 only; a
// Baseline-only decoder and a High-profile phone), the hub runs one
// transcoder per device and rendition, fed the capture's access units by
// the capture pump, with its own fanout shared by every viewer of that
// rendition. It stops Grace after the last of them leaves. The source's
// audio is written to the rendition's fanout as it is.

// rendition is one transcoded encoding of a device's stream.
type rendition struct {
	st     *stream
	r      domain.Rendition
	attrs  metric.MeasurementOption // device_id and rendition
	ctx    context.Context          // its life, a child of the stream's
	cancel context.CancelFunc
	ready  chan struct{} // closed when the first start finished (err set on failure)
	err    error
	done   chan struct{} // closed when its goroutine ended

	fanout ports.Fanout
	info   domain.StreamInfo

	// mu serializes writes to the fanout (video from the rendition's
	// pump, audio from the capture pump) and guards tc, which is nil
	// while the transcoder restarts. Nothing under it blocks.
	mu sync.Mutex
	tc ports.Transcoder
	// runCancel ends the current transcoder's run; inW, inH is the
	// source size it was started for; resized says the capture pump
	// ended it because the source's size changed. Guarded by mu.
	runCancel context.CancelFunc
	inW, inH  int
	resized   bool

	viewers int         // guarded by Hub.mu
	stopT   ports.Timer // guarded by Hub.mu
}

// Renditions returns the renditions the hub can make (none without a
// transcoder).
func (h *Hub) Renditions() []domain.Rendition {
	if h.transcoders == nil {
		return nil
	}
	// The wall rendition is for wall tiles, never a device's own viewers.
	return slices.DeleteFunc(h.transcoders.Renditions(), func(r domain.Rendition) bool { return r == domain.RenditionWall })
}

// AttachRendition adds a viewer to rendition r of the device's stream,
// starting its transcoder if it is the first, and returns the rendition's
// fanout and info. The caller must already be attached to the device's
// stream (Attach) and stay so while it watches the rendition; release
// must be called exactly once when the viewer leaves. Errors wrap
// domain.ErrDeviceUnavailable when there is no such stream or the
// transcoder cannot start, domain.ErrDraining after Close, and ctx's
// error when ctx ends first.
func (h *Hub) AttachRendition(ctx context.Context, id domain.DeviceID, r domain.Rendition) (ports.Fanout, domain.StreamInfo, func(), error) {
	if h.transcoders == nil || !slices.Contains(h.transcoders.Renditions(), r) {
		return nil, domain.StreamInfo{}, nil, fmt.Errorf("rendition %s of %s: no transcoder makes it: %w", r, id, domain.ErrDeviceUnavailable)
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, domain.StreamInfo{}, nil, fmt.Errorf("attach to %s: %w", id, domain.ErrDraining)
	}
	st, ok := h.streams[id]
	if !ok {
		h.mu.Unlock()
		return nil, domain.StreamInfo{}, nil, fmt.Errorf("rendition %s of %s: no capture runs: %w", r, id, domain.ErrDeviceUnavailable)
	}
	rd, ok := st.renditions[r]
	if !ok {
		rd = &rendition{st: st, r: r, ready: make(chan struct{}), done: make(chan struct{}),
			attrs: metric.WithAttributes(attribute.String("device_id", string(id)), attribute.String("rendition", string(r)))}
		rd.ctx, rd.cancel = context.WithCancel(st.ctx)
		if st.renditions == nil {
			st.renditions = make(map[domain.Rendition]*rendition)
		}
		st.renditions[r] = rd
		in := st.current
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			defer close(rd.done)
			h.runRendition(rd, in)
		}()
	}
	rd.viewers++
	if rd.stopT != nil {
		rd.stopT.Stop()
		rd.stopT = nil
	}
	h.mu.Unlock()
	select {
	case <-rd.ready:
	case <-ctx.Done():
	}
	if err := ctx.Err(); err != nil {
		h.releaseRendition(rd)
		return nil, domain.StreamInfo{}, nil, fmt.Errorf("attach to %s of %s: %w", r, id, err)
	}
	if rd.err != nil {
		h.releaseRendition(rd)
		return nil, domain.StreamInfo{}, nil, rd.err
	}
	var once sync.Once
	return rd.fanout, rd.info, func() { once.Do(func() { h.releaseRendition(rd) }) }, nil
}

// releaseRendition drops one viewer of rd and schedules its stop after
// the grace period.
func (h *Hub) releaseRendition(rd *rendition) {
	h.mu.Lock()
	defer h.mu.Unlock()
	rd.viewers--
	if rd.viewers > 0 || rd.st.renditions[rd.r] != rd {
		return
	}
	if h.cfg.Grace <= 0 {
		h.stopRenditionLocked(rd)
		return
	}
	rd.stopT = h.clock.AfterFunc(h.cfg.Grace, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if rd.viewers == 0 && rd.st.renditions[rd.r] == rd {
			h.stopRenditionLocked(rd)
		}
	})
}

// stopRenditionLocked removes rd from its stream and stops it; h.mu is
// held. Its own goroutine closes the transcoder and the fanout.
func (h *Hub) stopRenditionLocked(rd *rendition) {
	st := rd.st
	delete(st.renditions, rd.r)
	h.publishRenditionsLocked(st)
	if rd.stopT != nil {
		rd.stopT.Stop()
		rd.stopT = nil
	}
	rd.cancel()
}

// publishRenditionsLocked hands the capture pump the renditions it feeds
// now; h.mu is held.
func (h *Hub) publishRenditionsLocked(st *stream) {
	var rs []*rendition
	for _, rd := range st.renditions {
		if rd.fanout != nil {
			rs = append(rs, rd)
		}
	}
	st.rends.Store(&rs)
}

// feedRenditions hands one frame of the capture to every running
// rendition: video to its transcoder, audio to its fanout as it is. At a
// keyframe whose picture size (cur, the capture's now) differs from the
// one a transcoder was started for, that transcoder is ended (its
// rendition starts a new one for the new size). It is called by the
// capture pump only and never blocks.
func (st *stream) feedRenditions(f domain.Frame, cur domain.StreamInfo) {
	rs := st.rends.Load()
	if rs == nil {
		return
	}
	for _, rd := range *rs {
		rd.mu.Lock()
		switch {
		case f.Kind != domain.KindVideo:
			_ = rd.fanout.WriteFrame(f)
		case rd.tc == nil:
		case f.Keyframe && cur.Width != 0 && (cur.Width != rd.inW || cur.Height != rd.inH):
			rd.tc, rd.resized = nil, true
			rd.runCancel() // closes the transcoder on its own goroutine
		default:
			_ = rd.tc.Write(f) // fails only once closed, on its way out
		}
		rd.mu.Unlock()
	}
}

// runRendition starts the transcoder and the fanout, lets the viewers
// in, then pumps the transcoder's output into the fanout, restarting a
// transcoder that ends or fails with backoff, until rd.ctx is done.
func (h *Hub) runRendition(rd *rendition, in domain.StreamInfo) {
	log := h.log.With("device_id", rd.st.device, "rendition", string(rd.r))
	tc, err := h.transcoders.Start(rd.r, in)
	if err != nil {
		h.m.transcoderFailures.Add(context.Background(), 1, rd.attrs)
		h.failRendition(rd, fmt.Errorf("start %s transcoder for %s: %w", rd.r, rd.st.device, errors.Join(err, domain.ErrDeviceUnavailable)))
		return
	}
	rd.info = tc.Info()
	fan, err := h.transport.NewFanout(rd.st.device, rd.info)
	if err != nil {
		_ = tc.Close()
		h.failRendition(rd, fmt.Errorf("fanout for %s of %s: %w", rd.r, rd.st.device, err))
		return
	}
	rd.fanout = fan
	runCtx := rd.setTranscoder(tc, in)
	h.mu.Lock()
	if rd.st.renditions[rd.r] == rd {
		h.publishRenditionsLocked(rd.st)
	}
	h.mu.Unlock()
	// The capture's next keyframe starts the transcoder at once.
	rd.st.fanout.RequestKeyframe()
	h.m.transcoders.Add(rd.ctx, 1, rd.attrs)
	defer h.m.transcoders.Add(context.Background(), -1, rd.attrs)
	log.Info("transcoder started")
	close(rd.ready)

	var wg sync.WaitGroup
	wg.Go(func() { h.renditionKeyframes(rd) })
	defer func() {
		wg.Wait()
		_ = fan.Close()
		log.Info("transcoder stopped")
	}()
	backoff := h.cfg.RetryMin
	for {
		started := h.clock.Now()
		err := h.pumpRendition(runCtx, rd, tc)
		resized := rd.clearTranscoder()
		_ = tc.Close()
		if rd.ctx.Err() != nil {
			return
		}
		h.m.transcoderRestarts.Add(rd.ctx, 1, rd.attrs)
		wait := backoff
		if resized {
			// The source's picture changed size (a rotated device): a
			// new ffmpeg for the new size, at once.
			log.Info("source size changed; restarting the transcoder")
			wait = 0
		} else {
			if h.clock.Now().Sub(started) > h.cfg.RetryMax {
				wait = h.cfg.RetryMin // it ran well for a while
			}
			log.Warn("transcoder ended; restarting", "err", err, "retry_in", wait)
		}
		for {
			if wait > 0 {
				t := h.clock.NewTimer(wait)
				select {
				case <-rd.ctx.Done():
					t.Stop()
					return
				case <-t.C():
				}
				backoff = min(wait*2, h.cfg.RetryMax)
			}
			h.mu.Lock()
			in = rd.st.current
			h.mu.Unlock()
			if tc, err = h.transcoders.Start(rd.r, in); err == nil {
				break
			}
			h.m.transcoderFailures.Add(rd.ctx, 1, rd.attrs)
			wait = max(backoff, h.cfg.RetryMin)
			log.Warn("transcoder restart failed", "err", err, "retry_in", wait)
		}
		runCtx = rd.setTranscoder(tc, in)
		rd.st.fanout.RequestKeyframe()
	}
}

// setTranscoder makes tc, started for a source of in's size, the one the
// capture pump feeds, and returns the context of its run: cancelled when
// the rendition stops or the source's size changes.
func (rd *rendition) setTranscoder(tc ports.Transcoder, in domain.StreamInfo) context.Context {
	ctx, cancel := context.WithCancel(rd.ctx)
	rd.mu.Lock()
	rd.tc, rd.runCancel, rd.inW, rd.inH, rd.resized = tc, cancel, in.Width, in.Height, false
	rd.mu.Unlock()
	return ctx
}

// clearTranscoder stops feeding the current transcoder and reports
// whether it was stopped for a change of the source's size.
func (rd *rendition) clearTranscoder() bool {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	rd.tc = nil
	if rd.runCancel != nil {
		rd.runCancel()
		rd.runCancel = nil
	}
	return rd.resized
}

// failRendition records a failed first start: the waiting viewers get
// err, and the next viewer tries again.
func (h *Hub) failRendition(rd *rendition, err error) {
	rd.err = err
	h.mu.Lock()
	if rd.st.renditions[rd.r] == rd {
		delete(rd.st.renditions, rd.r)
	}
	h.mu.Unlock()
	close(rd.ready)
}

// pumpRendition moves the transcoder's frames into the rendition's fanout
// until it ends or ctx (its run's) is done, which closes it: its ReadFrame
// does not watch a context.
func (h *Hub) pumpRendition(ctx context.Context, rd *rendition, tc ports.Transcoder) (err error) {
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(closed)
		_ = tc.Close()
	})
	defer func() {
		if !stop() {
			<-closed
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			h.m.panicked(panicHubPump)
			err = fmt.Errorf("rendition pump of %s panicked: %v", rd.st.device, r)
		}
	}()
	for {
		f, err := tc.ReadFrame(ctx)
		if err != nil {
			return err
		}
		rd.mu.Lock()
		err = rd.fanout.WriteFrame(f)
		rd.mu.Unlock()
		if err != nil {
			return fmt.Errorf("write frame: %w", err)
		}
	}
}

// renditionKeyframes forwards the rendition's viewers' coalesced keyframe
// requests to its transcoder, which makes one of its own; to the capture
// only when the transcoder cannot (none runs, or it waits for a source
// keyframe), so that a PLI costs one keyframe, not two.
func (h *Hub) renditionKeyframes(rd *rendition) {
	for {
		select {
		case <-rd.ctx.Done():
			return
		case <-rd.fanout.KeyframeRequests():
			h.m.transcoderKeyReqs.Add(rd.ctx, 1, rd.attrs)
			rd.mu.Lock()
			tc := rd.tc
			rd.mu.Unlock()
			if tc != nil {
				tc.RequestKeyframe()
			}
			if tc == nil || tc.NeedsSourceKeyframe() {
				rd.st.fanout.RequestKeyframe()
			}
		}
	}
}

// RenditionViewers returns how many viewers watch rendition r of device
// id on this instance.
func (h *Hub) RenditionViewers(id domain.DeviceID, r domain.Rendition) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st, ok := h.streams[id]; ok {
		if rd, ok := st.renditions[r]; ok {
			return rd.viewers
		}
	}
	return 0
}
