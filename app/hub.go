package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"mediasvc/domain"
	"mediasvc/ports"
)

// Hub runs one capture per device however many viewers watch it. The first
// viewer starts the capture, and it stops Grace after the last one leaves.
// A capture that ends or fails is reopened with backoff while viewers remain;
// they are told "device_unavailable" meanwhile and keep their sessions.
type Hub struct {
	sources   *sourceSet
	transport ports.Transport
	log       *slog.Logger
	cfg       HubConfig
	m         *metrics

	// notify delivers stream conditions ("device_unavailable",
	// "device_available") to a device's viewers. It must not block.
	notify func(domain.DeviceID, string)

	mu      sync.Mutex
	streams map[domain.DeviceID]*stream
	closed  bool
	wg      sync.WaitGroup
}

// HubConfig tunes the hub.
type HubConfig struct {
	// Grace is how long a capture outlives its last viewer.
	Grace time.Duration
	// Capture is what each capture is asked for.
	Capture domain.CaptureOptions
	// Bitrate drives the capture bitrate from the viewers' quality.
	Bitrate domain.BitratePolicy
	// RetryMin and RetryMax bound the backoff between capture reopen attempts.
	RetryMin, RetryMax time.Duration
}

// stream is one device's running capture and its fanout.
type stream struct {
	device domain.DeviceID
	attrs  metric.MeasurementOption // device_id, for the per-device instruments
	ready  chan struct{}            // closed when open finished (err set on failure)
	err    error

	fanout ports.Fanout
	info   domain.StreamInfo
	// current is the running capture's info (its size may differ from
	// info after a reopen, e.g. a rotated device); guarded by Hub.mu.
	current domain.StreamInfo

	viewers int
	stopT   *time.Timer
	cancel  context.CancelFunc
	done    chan struct{}
}

func newHub(sources *sourceSet, t ports.Transport, cfg HubConfig, notify func(domain.DeviceID, string), log *slog.Logger) *Hub {
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 250 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Second
	}
	return &Hub{sources: sources, transport: t, cfg: cfg, notify: notify, log: log, m: newMetrics(nil), streams: make(map[domain.DeviceID]*stream)}
}

// Attach adds a viewer to the device's stream, starting the capture if it is
// the first, and returns the fanout to build a peer on and the stream's info.
// release must be called exactly once when the viewer leaves. It returns
// domain.ErrDeviceNotFound or domain.ErrDeviceUnavailable (wrapped) when the
// capture cannot start, and domain.ErrDraining after Close.
func (h *Hub) Attach(ctx context.Context, id domain.DeviceID) (ports.Fanout, domain.StreamInfo, func(), error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, domain.StreamInfo{}, nil, fmt.Errorf("attach to %s: %w", id, domain.ErrDraining)
	}
	st, ok := h.streams[id]
	if ok {
		st.viewers++
		if st.stopT != nil {
			st.stopT.Stop()
			st.stopT = nil
		}
		h.mu.Unlock()
		select {
		case <-st.ready:
		case <-ctx.Done():
			h.release(st)
			return nil, domain.StreamInfo{}, nil, ctx.Err()
		}
		if st.err != nil {
			h.release(st)
			return nil, domain.StreamInfo{}, nil, st.err
		}
		return st.fanout, st.info, h.releaseOnce(st), nil
	}
	st = &stream{device: id, ready: make(chan struct{}), viewers: 1, done: make(chan struct{}),
		attrs: metric.WithAttributes(attribute.String("device_id", string(id)))}
	h.streams[id] = st
	h.mu.Unlock()

	if err := h.start(ctx, st); err != nil {
		st.err = err
		close(st.ready)
		close(st.done)
		h.mu.Lock()
		if h.streams[id] == st {
			delete(h.streams, id)
		}
		h.mu.Unlock()
		return nil, domain.StreamInfo{}, nil, err
	}
	close(st.ready)
	return st.fanout, st.info, h.releaseOnce(st), nil
}

// start opens the first capture and the fanout and launches the pump.
func (h *Hub) start(ctx context.Context, st *stream) error {
	src, err := h.sources.lookup(ctx, st.device)
	if err != nil {
		return err
	}
	capt, err := src.Screen.Open(ctx, st.device, h.cfg.Capture)
	if err != nil {
		h.m.captureFailures.Add(ctx, 1, st.attrs)
		return fmt.Errorf("open capture on %s: %w", st.device, err)
	}
	st.info = capt.Info()
	h.mu.Lock()
	st.current = st.info
	h.mu.Unlock()
	fan, err := h.transport.NewFanout(st.device, st.info)
	if err != nil {
		_ = capt.Close()
		return fmt.Errorf("fanout for %s: %w", st.device, err)
	}
	st.fanout = fan
	runCtx, cancel := context.WithCancel(context.Background())
	st.cancel = cancel
	h.m.captures.Add(ctx, 1, st.attrs)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer close(st.done)
		defer h.m.captures.Add(context.Background(), -1, st.attrs)
		h.run(runCtx, st, src, capt)
	}()
	return nil
}

func (h *Hub) releaseOnce(st *stream) func() {
	var once sync.Once
	return func() { once.Do(func() { h.release(st) }) }
}

// release drops one viewer and schedules the stop after the grace period.
func (h *Hub) release(st *stream) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st.viewers--
	if st.viewers > 0 || h.streams[st.device] != st {
		return
	}
	if h.cfg.Grace <= 0 {
		h.stopLocked(st)
		return
	}
	st.stopT = time.AfterFunc(h.cfg.Grace, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if st.viewers == 0 && h.streams[st.device] == st {
			h.stopLocked(st)
		}
	})
}

// stopLocked removes st from the hub and stops its capture; h.mu is held.
// The stop itself (waiting for the pump) runs on its own goroutine so no
// lock is held while a capture closes.
func (h *Hub) stopLocked(st *stream) {
	delete(h.streams, st.device)
	if st.cancel != nil {
		st.cancel()
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		<-st.done
		if st.fanout != nil {
			_ = st.fanout.Close()
		}
		h.log.Info("capture stopped", "device_id", st.device)
	}()
}

// CurrentInfo returns what the device's running capture yields now (its
// size can change when a capture is reopened), and false when this
// instance runs no capture of it.
func (h *Hub) CurrentInfo(id domain.DeviceID) (domain.StreamInfo, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, ok := h.streams[id]
	if !ok {
		return domain.StreamInfo{}, false
	}
	return st.current, true
}

// Viewers returns how many viewers watch device id on this instance.
func (h *Hub) Viewers(id domain.DeviceID) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st, ok := h.streams[id]; ok {
		return st.viewers
	}
	return 0
}

// Close stops every stream and waits for their goroutines.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	for _, st := range h.streams {
		if st.stopT != nil {
			st.stopT.Stop()
		}
		select {
		case <-st.ready:
			h.stopLocked(st)
		default:
			// Still opening: its Attach fails or finishes; stop it anyway
			// once ready.
			delete(h.streams, st.device)
			h.wg.Add(1)
			go func(st *stream) {
				defer h.wg.Done()
				<-st.ready
				if st.cancel != nil {
					st.cancel()
				}
				<-st.done
				if st.fanout != nil {
					_ = st.fanout.Close()
				}
			}(st)
		}
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// run pumps frames from the capture into the fanout, serves keyframe
// requests and the bitrate policy, and reopens the capture when it ends,
// until ctx is cancelled.
func (h *Hub) run(ctx context.Context, st *stream, src Source, capt ports.Capture) {
	log := h.log.With("device_id", st.device)
	defer func() {
		if r := recover(); r != nil {
			log.Error("capture pump panicked", "panic", r)
			h.notify(st.device, "device_unavailable")
		}
	}()
	var ptsBase, lastPTS time.Duration
	backoff := h.cfg.RetryMin
	bitrate := h.cfg.Capture.BitrateBps
	for {
		err := h.pump(ctx, st, capt, ptsBase, &lastPTS, &bitrate)
		_ = capt.Close()
		if ctx.Err() != nil {
			return
		}
		h.m.captureRestarts.Add(ctx, 1, st.attrs)
		if errors.Is(err, io.EOF) {
			log.Info("capture ended; reopening")
		} else {
			log.Warn("capture failed; reopening", "err", err)
		}
		// Continue timestamps where the last capture stopped.
		ptsBase = lastPTS + 33*time.Millisecond
		unavailable := false
		for {
			opts := h.cfg.Capture
			opts.BitrateBps = bitrate
			capt, err = src.Screen.Open(ctx, st.device, opts)
			if err == nil {
				if capt.Info().Video != st.info.Video {
					_ = capt.Close()
					err = fmt.Errorf("capture codec changed from %s to %s: %w", st.info.Video, capt.Info().Video, domain.ErrDeviceUnavailable)
				}
			}
			if err == nil {
				h.mu.Lock()
				st.current = capt.Info()
				h.mu.Unlock()
				break
			}
			h.m.captureFailures.Add(ctx, 1, st.attrs)
			if !unavailable {
				h.notify(st.device, "device_unavailable")
				unavailable = true
			}
			log.Warn("reopen capture failed", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, h.cfg.RetryMax)
		}
		backoff = h.cfg.RetryMin
		if unavailable {
			h.notify(st.device, "device_available")
		}
	}
}

// pump moves frames until the capture ends or ctx is done.
func (h *Hub) pump(ctx context.Context, st *stream, capt ports.Capture, ptsBase time.Duration, lastPTS *time.Duration, bitrate *int) error {
	ctrlCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.control(ctrlCtx, st, capt, bitrate)
	}()
	defer func() {
		stop()
		wg.Wait()
	}()
	for {
		f, err := capt.ReadFrame(ctx)
		if err != nil {
			return err
		}
		f.PTS += ptsBase
		*lastPTS = f.PTS
		if f.Keyframe {
			// A rotation may have changed the size (scrcpy restarts its
			// encoder); input maps to the picture from this keyframe on.
			info := capt.Info()
			h.mu.Lock()
			if info.Width != st.current.Width || info.Height != st.current.Height {
				st.current = info
			}
			h.mu.Unlock()
		}
		if err := st.fanout.WriteFrame(f); err != nil {
			return fmt.Errorf("write frame: %w", err)
		}
	}
}

// control forwards coalesced keyframe requests to the capture and applies
// the bitrate policy once a second.
func (h *Hub) control(ctx context.Context, st *stream, capt ports.Capture, bitrate *int) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastChange := time.Now()
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
		case now := <-tick.C:
			if current <= 0 || st.fanout.Viewers() == 0 {
				continue
			}
			next, changed := h.cfg.Bitrate.Next(current, st.fanout.Stats(), lastChange, now)
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
