package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"mediasvc/domain"
	"mediasvc/ports"
)

// Hub runs one capture per device however many viewers watch it. The first
// viewer starts the capture, and it stops Grace after the last one leaves.
// A capture belongs to the hub, not to the request of the viewer that
// started it: a joiner that gives up only detaches itself. A capture that
// ends, fails or whose pump panics is reopened with backoff while viewers
// remain; they are told "device_unavailable" meanwhile and keep their
// sessions, and timestamps after a reopen follow wall time.
type Hub struct {
	sources   *sourceSet
	transport ports.Transport
	// transcoders make the renditions; nil serves the original only.
	transcoders ports.Transcoders
	clock       ports.Clock
	log         *slog.Logger
	cfg         HubConfig
	m           *metrics
	// bitrate is the policy in force (cfg.Bitrate until a Reconfigure).
	bitrate atomic.Pointer[domain.BitratePolicy]

	// notify delivers stream conditions ("device_unavailable",
	// "device_available") to a device's viewers. It must not block.
	notify func(domain.DeviceID, string)

	// ctx is the hub's own life: every capture runs under it, and Close
	// cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	streams map[domain.DeviceID]*stream
	// walls are the devices' second, small captures for wall tiles
	// (sources with Secondary captures only; wall.go).
	walls  map[domain.DeviceID]*stream
	closed bool
	wg     sync.WaitGroup
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
	// wall marks a wall tile's secondary capture (in Hub.walls): opened
	// with the wall's options, outside the bitrate policy, its outages
	// told to no session.
	wall   bool
	attrs  metric.MeasurementOption // device_id, for the per-device instruments
	ctx    context.Context          // the capture's life, a child of the hub's
	cancel context.CancelFunc
	ready  chan struct{} // closed when the first open finished (err set on failure)
	err    error
	done   chan struct{} // closed when the stream's goroutine ended

	fanout ports.Fanout
	info   domain.StreamInfo
	// current is the running capture's info (its size may differ from
	// info after a reopen, e.g. a rotated device); guarded by Hub.mu.
	current domain.StreamInfo

	viewers int         // guarded by Hub.mu
	stopT   ports.Timer // guarded by Hub.mu

	// renditions are the transcoded encodings running for this stream's
	// viewers; guarded by Hub.mu. rends is the same set, once each has
	// its fanout, for the capture pump to read without the lock.
	renditions map[domain.Rendition]*rendition
	rends      atomic.Pointer[[]*rendition]

	// sinks are the recordings tapping this stream; guarded by Hub.mu,
	// published in taps for the capture pump to read without the lock.
	sinks []*recSink
	taps  atomic.Pointer[[]*recSink]
}

func newHub(sources *sourceSet, t ports.Transport, tc ports.Transcoders, clock ports.Clock, cfg HubConfig, notify func(domain.DeviceID, string), log *slog.Logger) *Hub {
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 250 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{sources: sources, transport: t, transcoders: tc, clock: clock, cfg: cfg, notify: notify, log: log, m: newMetrics(nil),
		ctx: ctx, cancel: cancel, streams: make(map[domain.DeviceID]*stream), walls: make(map[domain.DeviceID]*stream)}
	h.bitrate.Store(&cfg.Bitrate)
	return h
}

// Attach adds a viewer to the device's stream, starting the capture if it is
// the first, and returns the fanout to build a peer on and the stream's info.
// release must be called exactly once when the viewer leaves. It returns
// domain.ErrDeviceNotFound or domain.ErrDeviceUnavailable (wrapped) when the
// capture cannot start, domain.ErrDraining after Close, and ctx's error when
// ctx ends first: then only this viewer is detached, the capture goes on
// opening for the others.
func (h *Hub) Attach(ctx context.Context, id domain.DeviceID) (ports.Fanout, domain.StreamInfo, func(), error) {
	return h.attach(ctx, id, false)
}

// streamsOf is the map st lives in; h.mu is held.
func (h *Hub) streamsOf(wall bool) map[domain.DeviceID]*stream {
	if wall {
		return h.walls
	}
	return h.streams
}

// captureOptions is what st's capture is opened with.
func (h *Hub) captureOptions(st *stream) domain.CaptureOptions {
	if st.wall {
		return domain.CaptureOptions{MaxWidth: domain.WallMaxSize, MaxHeight: domain.WallMaxSize, BitrateBps: domain.WallBitrateBps, Secondary: true}
	}
	return h.cfg.Capture
}

func (h *Hub) attach(ctx context.Context, id domain.DeviceID, wall bool) (ports.Fanout, domain.StreamInfo, func(), error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, domain.StreamInfo{}, nil, fmt.Errorf("attach to %s: %w", id, domain.ErrDraining)
	}
	streams := h.streamsOf(wall)
	st, ok := streams[id]
	if !ok {
		st = &stream{device: id, wall: wall, ready: make(chan struct{}), done: make(chan struct{}),
			attrs: metric.WithAttributes(attribute.String("device_id", string(id)))}
		st.ctx, st.cancel = context.WithCancel(h.ctx)
		streams[id] = st
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			defer close(st.done)
			h.open(st)
		}()
	}
	st.viewers++
	if st.stopT != nil {
		st.stopT.Stop()
		st.stopT = nil
	}
	h.mu.Unlock()
	select {
	case <-st.ready:
	case <-ctx.Done():
	}
	if err := ctx.Err(); err != nil {
		h.release(st)
		return nil, domain.StreamInfo{}, nil, fmt.Errorf("attach to %s: %w", id, err)
	}
	if st.err != nil {
		h.release(st)
		return nil, domain.StreamInfo{}, nil, st.err
	}
	return st.fanout, st.info, h.releaseOnce(st), nil
}

// open opens the first capture and the fanout under the stream's own
// context, then pumps until the stream stops.
func (h *Hub) open(st *stream) {
	src, capt, err := h.openFirst(st)
	if err != nil {
		st.err = err
		h.mu.Lock()
		if streams := h.streamsOf(st.wall); streams[st.device] == st {
			delete(streams, st.device)
		}
		h.mu.Unlock()
		close(st.ready)
		return
	}
	// Counted before the viewers are let in: whoever Attach returned to
	// sees the capture as running.
	active := h.m.captures
	if st.wall {
		active = h.m.wallCaptures
	}
	active.Add(st.ctx, 1, st.attrs)
	defer active.Add(context.Background(), -1, st.attrs)
	close(st.ready)
	h.run(st, src, capt)
}

func (h *Hub) openFirst(st *stream) (Source, ports.Capture, error) {
	src, err := h.sources.lookup(st.ctx, st.device)
	if err != nil {
		return Source{}, nil, err
	}
	capt, err := src.Screen.Open(st.ctx, st.device, h.captureOptions(st))
	if err != nil {
		h.m.captureFailures.Add(context.Background(), 1, st.attrs)
		return Source{}, nil, fmt.Errorf("open capture on %s: %w", st.device, err)
	}
	st.info = capt.Info()
	h.mu.Lock()
	st.current = st.info
	h.mu.Unlock()
	fan, err := h.transport.NewFanout(st.device, st.info)
	if err != nil {
		_ = capt.Close()
		return Source{}, nil, fmt.Errorf("fanout for %s: %w", st.device, err)
	}
	st.fanout = fan
	return src, capt, nil
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
	if st.viewers > 0 || h.streamsOf(st.wall)[st.device] != st {
		return
	}
	if h.cfg.Grace <= 0 {
		h.stopLocked(st)
		return
	}
	st.stopT = h.clock.AfterFunc(h.cfg.Grace, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if st.viewers == 0 && h.streamsOf(st.wall)[st.device] == st {
			h.stopLocked(st)
		}
	})
}

// stopLocked removes st from the hub and stops its capture; h.mu is held.
// Waiting for the pump and closing the fanout run on their own goroutine
// so no lock is held while a capture closes.
func (h *Hub) stopLocked(st *stream) {
	delete(h.streamsOf(st.wall), st.device)
	if st.stopT != nil {
		st.stopT.Stop()
		st.stopT = nil
	}
	for _, rd := range st.renditions {
		h.stopRenditionLocked(rd)
	}
	st.cancel()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		<-st.done
		if st.fanout != nil {
			_ = st.fanout.Close()
			h.log.Info("capture stopped", "device_id", st.device, "wall", st.wall)
		}
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

// Close stops every stream and waits for their goroutines. Attach fails
// with domain.ErrDraining afterwards.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	for _, st := range h.streams {
		h.stopLocked(st)
	}
	for _, st := range h.walls {
		h.stopLocked(st)
	}
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
}
