package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
)

// Recordings of device streams. A recording is a viewer of the device's
// stream like any other (it keeps the capture running) whose frames come
// from the capture pump, as the viewers' fanout gets them, through a
// bounded queue to the recording's own goroutine, which writes them to
// the store. The pump never blocks on it: when the queue is full the
// recording drops frames up to the next keyframe (and asks for one). A
// capture that ends and is reopened (a device blip) goes on into the same
// file, its timestamps continuing on the stream's timeline.

// DefaultRecordingQueue is a recording's frame queue when none is set:
// about four seconds of 30 fps video with its audio.
const DefaultRecordingQueue = 256

// RecorderConfig configures recordings.
type RecorderConfig struct {
	Limits domain.RecordingLimits
	// Queue is the frames a recording may fall behind the pump before it
	// drops to the next keyframe (default DefaultRecordingQueue).
	Queue int
}

// Recorder starts, stops, lists and deletes recordings.
type Recorder struct {
	hub   *Hub
	store ports.RecordingStore
	cfg   RecorderConfig
	log   *slog.Logger

	// ctx is the recorder's life; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex // never held across I/O
	active map[domain.DeviceID]*recording
	closed bool
	wg     sync.WaitGroup
}

// recording is one running recording.
type recording struct {
	device domain.DeviceID
	w      ports.RecordingWriter // nil while starting
	sink   *recSink
	stop   chan string   // the reason to stop; buffered 1
	done   chan struct{} // closed when its goroutine ended
	final  domain.Recording
}

// recSink is a recording's tap on a stream.
type recSink struct {
	frames chan domain.Frame
	// skipping is the pump's own state: a frame was dropped, and nothing
	// goes in until the next video keyframe.
	skipping bool
}

// feedSinks hands f to every recording of the stream without blocking.
// It is called by the capture pump only.
func (st *stream) feedSinks(f domain.Frame) {
	ts := st.taps.Load()
	if ts == nil {
		return
	}
	for _, s := range *ts {
		if s.skipping {
			if f.Kind != domain.KindVideo || !f.Keyframe {
				continue
			}
			s.skipping = false
		}
		select {
		case s.frames <- f:
		default:
			s.skipping = true
			st.fanout.RequestKeyframe()
		}
	}
}

// addSink taps device id's stream, which the caller is attached to, and
// returns how to untap it.
func (h *Hub) addSink(id domain.DeviceID, s *recSink) (func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, ok := h.streams[id]
	if !ok || st.fanout == nil {
		return nil, fmt.Errorf("record %s: no capture runs: %w", id, domain.ErrDeviceUnavailable)
	}
	st.sinks = append(st.sinks, s)
	h.publishSinksLocked(st)
	st.fanout.RequestKeyframe() // the recording starts at a keyframe
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		st.sinks = slices.DeleteFunc(st.sinks, func(x *recSink) bool { return x == s })
		h.publishSinksLocked(st)
	}, nil
}

func (h *Hub) publishSinksLocked(st *stream) {
	ts := slices.Clone(st.sinks)
	st.taps.Store(&ts)
}

// NewRecorder returns the recorder of the service's streams over store.
// The service's Drain closes it before the captures stop.
func (s *Service) NewRecorder(store ports.RecordingStore, cfg RecorderConfig, log *slog.Logger) *Recorder {
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultRecordingQueue
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Recorder{hub: s.hub, store: store, cfg: cfg, log: log, ctx: ctx, cancel: cancel,
		active: make(map[domain.DeviceID]*recording)}
	s.recMu.Lock()
	s.recorder = r
	s.recMu.Unlock()
	return r
}

func newRecordingID() domain.RecordingID {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return domain.RecordingID(hex.EncodeToString(b[:]))
}

// Start starts recording device for owner and returns the recording. It
// returns domain.ErrConflict if the device is already recording,
// domain.ErrLimitExceeded at Limits.MaxConcurrent recordings,
// domain.ErrStorageFull when the store holds Limits.MaxTotalBytes,
// domain.ErrDraining after Close, and the errors of Hub.Attach when the
// capture cannot start.
func (r *Recorder) Start(ctx context.Context, device domain.DeviceID, owner string) (domain.Recording, error) {
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return domain.Recording{}, fmt.Errorf("record %s: %w", device, domain.ErrDraining)
	case r.active[device] != nil:
		r.mu.Unlock()
		return domain.Recording{}, fmt.Errorf("device %s is already recording: %w", device, domain.ErrConflict)
	case r.cfg.Limits.MaxConcurrent > 0 && len(r.active) >= r.cfg.Limits.MaxConcurrent:
		r.mu.Unlock()
		return domain.Recording{}, fmt.Errorf("%d recordings run already (recordings.max_concurrent): %w", len(r.active), domain.ErrLimitExceeded)
	}
	rec := &recording{device: device, stop: make(chan string, 1), done: make(chan struct{}),
		sink: &recSink{frames: make(chan domain.Frame, r.cfg.Queue)}}
	r.active[device] = rec // holds the place while it starts
	r.mu.Unlock()
	out, err := r.start(ctx, rec, owner)
	if err != nil {
		r.mu.Lock()
		delete(r.active, device)
		r.mu.Unlock()
		return domain.Recording{}, err
	}
	return out, nil
}

func (r *Recorder) start(ctx context.Context, rec *recording, owner string) (domain.Recording, error) {
	stored, err := r.storedBytes()
	if err != nil {
		return domain.Recording{}, err
	}
	if limit := r.cfg.Limits.MaxTotalBytes; limit > 0 && stored >= limit {
		return domain.Recording{}, fmt.Errorf("recordings hold %d bytes of %d (recordings.max_total_bytes): %w", stored, limit, domain.ErrStorageFull)
	}
	_, info, release, err := r.hub.Attach(ctx, rec.device)
	if err != nil {
		return domain.Recording{}, err
	}
	if cur, ok := r.hub.CurrentInfo(rec.device); ok {
		info = cur
	}
	w, err := r.store.Create(domain.Recording{ID: newRecordingID(), Device: rec.device, Owner: owner,
		StartedAt: r.hub.clock.Now().UTC()}, info)
	if err != nil {
		release()
		return domain.Recording{}, fmt.Errorf("record %s: %w", rec.device, err)
	}
	untap, err := r.hub.addSink(rec.device, rec.sink)
	if err != nil {
		_, _ = w.Close("failed: " + err.Error())
		release()
		return domain.Recording{}, err
	}
	r.mu.Lock()
	rec.w = w
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(rec.done)
		defer release()
		defer untap()
		r.run(rec, stored)
	}()
	out := w.Recording()
	r.log.Info("recording started", "device_id", rec.device, "recording_id", out.ID)
	return out, nil
}

// storedBytes is what the store's recordings that are not running hold.
func (r *Recorder) storedBytes() (int64, error) {
	recs, err := r.store.List()
	if err != nil {
		return 0, fmt.Errorf("list recordings: %w", err)
	}
	var n int64
	for _, x := range recs {
		if x.State != domain.RecordingActive {
			n += x.Bytes
		}
	}
	return n, nil
}

// activeBytes is what the running recordings wrote so far.
func (r *Recorder) activeBytes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for _, x := range r.active {
		if x.w != nil {
			n += x.w.Recording().Bytes
		}
	}
	return n
}

// run writes the recording's frames until it is stopped, reaches a
// limit, fails or the recorder closes.
func (r *Recorder) run(rec *recording, stored int64) {
	lim := r.cfg.Limits
	var (
		t0      time.Duration
		started bool
		bytes   int64
		reason  string
	)
loop:
	for {
		select {
		case reason = <-rec.stop:
			break loop
		case <-r.ctx.Done():
			reason = "shutdown"
			break loop
		case f := <-rec.sink.frames:
			if !started && f.Kind == domain.KindVideo && f.Keyframe {
				started, t0 = true, f.PTS
			}
			if started && lim.MaxDuration > 0 && f.PTS-t0 >= lim.MaxDuration {
				reason = "max_duration"
				break loop
			}
			if err := rec.w.WriteFrame(f); err != nil {
				reason = "failed: " + err.Error()
				break loop
			}
			if b := rec.w.Recording().Bytes; b != bytes {
				bytes = b
				if lim.MaxTotalBytes > 0 && stored+r.activeBytes() >= lim.MaxTotalBytes {
					reason = "storage_full"
					break loop
				}
			}
		}
	}
	final, err := rec.w.Close(reason)
	if err != nil {
		r.log.Warn("recording ended with an error", "device_id", rec.device, "recording_id", final.ID, "err", err)
	} else {
		r.log.Info("recording ended", "device_id", rec.device, "recording_id", final.ID, "reason", reason, "bytes", final.Bytes)
	}
	r.mu.Lock()
	rec.final = final
	if r.active[rec.device] == rec {
		delete(r.active, rec.device)
	}
	r.mu.Unlock()
}

// Stop ends the device's running recording and returns it finished.
// domain.ErrRecordingNotFound when the device is not recording.
func (r *Recorder) Stop(ctx context.Context, device domain.DeviceID) (domain.Recording, error) {
	r.mu.Lock()
	rec := r.active[device]
	if rec != nil && rec.w == nil {
		rec = nil // still starting: nothing to stop yet
	}
	r.mu.Unlock()
	if rec == nil {
		return domain.Recording{}, fmt.Errorf("device %s is not recording: %w", device, domain.ErrRecordingNotFound)
	}
	select {
	case rec.stop <- "stopped":
	default:
	}
	select {
	case <-rec.done:
	case <-ctx.Done():
		return domain.Recording{}, fmt.Errorf("stop recording of %s: %w", device, ctx.Err())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return rec.final, nil
}

// List returns every recording, oldest first.
func (r *Recorder) List(context.Context) ([]domain.Recording, error) { return r.store.List() }

// Get returns one recording or domain.ErrRecordingNotFound.
func (r *Recorder) Get(_ context.Context, id domain.RecordingID) (domain.Recording, error) {
	return r.store.Get(id)
}

// Open returns a recording's bytes; the caller must Close them.
func (r *Recorder) Open(_ context.Context, id domain.RecordingID) (io.ReadSeekCloser, domain.Recording, error) {
	return r.store.Open(id)
}

// Delete removes a recording that is not running (domain.ErrConflict
// while it is).
func (r *Recorder) Delete(_ context.Context, id domain.RecordingID) error {
	return r.store.Delete(id)
}

// Close stops every recording (reason "shutdown") and waits for their
// files to be closed. Start fails with domain.ErrDraining afterwards.
func (r *Recorder) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}
