// Package portstest holds function-field fakes of the ports, for testing
// app without a network. A nil function field gives a harmless default.
package portstest

import (
	"context"
	"io"
	"sync"
	"sync/atomic"

	"mediasvc/domain"
	"mediasvc/ports"
)

// Source is a fake ports.ScreenSource and ports.DeviceInput.
type Source struct {
	DevicesFunc func(ctx context.Context) ([]domain.Device, error)
	DeviceFunc  func(ctx context.Context, id domain.DeviceID) (domain.Device, error)
	OpenFunc    func(ctx context.Context, id domain.DeviceID, opts domain.CaptureOptions) (ports.Capture, error)
	InputFunc   func(ctx context.Context, id domain.DeviceID, ev domain.InputEvent) error
}

var (
	_ ports.ScreenSource = (*Source)(nil)
	_ ports.DeviceInput  = (*Source)(nil)
)

// Devices calls DevicesFunc.
func (s *Source) Devices(ctx context.Context) ([]domain.Device, error) {
	if s.DevicesFunc == nil {
		return nil, nil
	}
	return s.DevicesFunc(ctx)
}

// Device calls DeviceFunc; without it every device is unknown.
func (s *Source) Device(ctx context.Context, id domain.DeviceID) (domain.Device, error) {
	if s.DeviceFunc == nil {
		return domain.Device{}, domain.ErrDeviceNotFound
	}
	return s.DeviceFunc(ctx, id)
}

// Open calls OpenFunc.
func (s *Source) Open(ctx context.Context, id domain.DeviceID, opts domain.CaptureOptions) (ports.Capture, error) {
	if s.OpenFunc == nil {
		return nil, domain.ErrDeviceUnavailable
	}
	return s.OpenFunc(ctx, id, opts)
}

// Input calls InputFunc.
func (s *Source) Input(ctx context.Context, id domain.DeviceID, ev domain.InputEvent) error {
	if s.InputFunc == nil {
		return nil
	}
	return s.InputFunc(ctx, id, ev)
}

// Capture is a fake ports.Capture fed through a channel: each frame sent on
// Frames is returned by ReadFrame; closing Frames ends the capture (io.EOF).
type Capture struct {
	// StreamInfo is what Info returns until SetInfo changes it.
	StreamInfo domain.StreamInfo
	infoMu     sync.Mutex
	Frames     chan domain.Frame
	Keyframes  atomic.Int64
	Bitrate    atomic.Int64
	closeOnce  sync.Once
	done       chan struct{}
	Closed     atomic.Bool
}

var _ ports.Capture = (*Capture)(nil)

// NewCapture returns a capture with an unbuffered frame channel.
func NewCapture(info domain.StreamInfo) *Capture {
	return &Capture{StreamInfo: info, Frames: make(chan domain.Frame), done: make(chan struct{})}
}

// Info returns StreamInfo.
func (c *Capture) Info() domain.StreamInfo {
	c.infoMu.Lock()
	defer c.infoMu.Unlock()
	return c.StreamInfo
}

// SetInfo changes what Info returns, as a rotated device's capture does
// from its next keyframe.
func (c *Capture) SetInfo(info domain.StreamInfo) {
	c.infoMu.Lock()
	defer c.infoMu.Unlock()
	c.StreamInfo = info
}

// ReadFrame returns the next frame sent on Frames.
func (c *Capture) ReadFrame(ctx context.Context) (domain.Frame, error) {
	select {
	case f, ok := <-c.Frames:
		if !ok {
			return domain.Frame{}, io.EOF
		}
		return f, nil
	case <-c.done:
		return domain.Frame{}, io.ErrClosedPipe
	case <-ctx.Done():
		return domain.Frame{}, ctx.Err()
	}
}

// RequestKeyframe counts the request.
func (c *Capture) RequestKeyframe() { c.Keyframes.Add(1) }

// SetBitrate records bps.
func (c *Capture) SetBitrate(bps int) { c.Bitrate.Store(int64(bps)) }

// Close unblocks ReadFrame.
func (c *Capture) Close() error {
	c.closeOnce.Do(func() { c.Closed.Store(true); close(c.done) })
	return nil
}

// Transport is a fake ports.Transport.
type Transport struct {
	NewFanoutFunc func(device domain.DeviceID, info domain.StreamInfo) (ports.Fanout, error)
	NewPeerFunc   func(ctx context.Context, f ports.Fanout, opts ports.PeerOptions) (ports.Peer, error)
	// NegotiateFunc decides a viewer's rendition; nil: the original.
	NegotiateFunc func(offer string, info domain.StreamInfo, renditions []domain.Rendition) (domain.Rendition, error)
	Servers       []domain.ICEServer
}

var _ ports.Transport = (*Transport)(nil)

// NewFanout calls NewFanoutFunc, or returns a new Fanout.
func (t *Transport) NewFanout(device domain.DeviceID, info domain.StreamInfo) (ports.Fanout, error) {
	if t.NewFanoutFunc == nil {
		return NewFanout(), nil
	}
	return t.NewFanoutFunc(device, info)
}

// NewPeer calls NewPeerFunc, or returns a Peer that answers "answer".
func (t *Transport) NewPeer(ctx context.Context, f ports.Fanout, opts ports.PeerOptions) (ports.Peer, error) {
	if t.NewPeerFunc == nil {
		return &Peer{}, nil
	}
	return t.NewPeerFunc(ctx, f, opts)
}

// ICEServers returns Servers.
func (t *Transport) ICEServers() []domain.ICEServer { return t.Servers }

// Negotiate calls NegotiateFunc, or chooses the original.
func (t *Transport) Negotiate(offer string, info domain.StreamInfo, renditions []domain.Rendition) (domain.Rendition, error) {
	if t.NegotiateFunc == nil {
		return domain.RenditionOriginal, nil
	}
	return t.NegotiateFunc(offer, info, renditions)
}

// Transcoders is a fake ports.Transcoders whose transcoders "encode" by
// passing each video frame written on to ReadFrame, with their rendition's
// codec in Info.
type Transcoders struct {
	Made []domain.Rendition
	// StartFunc, when set, replaces the default Start.
	StartFunc func(r domain.Rendition, in domain.StreamInfo) (ports.Transcoder, error)
	mu        sync.Mutex
	started   []*Transcoder
}

var _ ports.Transcoders = (*Transcoders)(nil)

// Renditions returns Made.
func (t *Transcoders) Renditions() []domain.Rendition { return t.Made }

// Start returns a new Transcoder (or calls StartFunc).
func (t *Transcoders) Start(r domain.Rendition, in domain.StreamInfo) (ports.Transcoder, error) {
	if t.StartFunc != nil {
		return t.StartFunc(r, in)
	}
	info := in
	info.Video = r.Codec()
	tc := &Transcoder{Rendition: r, Capture: NewCapture(info)}
	tc.Capture.Frames = make(chan domain.Frame, 64)
	t.mu.Lock()
	t.started = append(t.started, tc)
	t.mu.Unlock()
	return tc, nil
}

// Started returns the transcoders Start made, in order.
func (t *Transcoders) Started() []*Transcoder {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]*Transcoder(nil), t.started...)
}

// Transcoder is a fake ports.Transcoder: Write queues each video frame
// for ReadFrame (dropping when 64 wait); RequestKeyframe is counted by
// the embedded Capture; NeedSource is what NeedsSourceKeyframe reports.
type Transcoder struct {
	Rendition domain.Rendition
	*Capture
	Written    atomic.Int64
	NeedSource atomic.Bool
	wmu        sync.Mutex
}

// NeedsSourceKeyframe returns NeedSource.
func (t *Transcoder) NeedsSourceKeyframe() bool { return t.NeedSource.Load() }

var _ ports.Transcoder = (*Transcoder)(nil)

// Write passes a video frame on to ReadFrame; it fails after Close.
func (t *Transcoder) Write(f domain.Frame) error {
	if f.Kind != domain.KindVideo {
		return nil
	}
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.Closed.Load() {
		return io.ErrClosedPipe
	}
	t.Written.Add(1)
	select {
	case t.Frames <- f:
	default:
	}
	return nil
}

// Fanout is a fake ports.Fanout that records frames.
type Fanout struct {
	mu       sync.Mutex
	frames   []domain.Frame
	Requests chan struct{}
	Quality  domain.QualityStats
	viewers  atomic.Int64
	Closed   atomic.Bool
}

var _ ports.Fanout = (*Fanout)(nil)

// NewFanout returns an empty fanout.
func NewFanout() *Fanout { return &Fanout{Requests: make(chan struct{}, 1)} }

// WriteFrame records f.
func (f *Fanout) WriteFrame(fr domain.Frame) error {
	f.mu.Lock()
	f.frames = append(f.frames, fr)
	f.mu.Unlock()
	return nil
}

// Frames returns the frames written so far.
func (f *Fanout) Frames() []domain.Frame {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]domain.Frame(nil), f.frames...)
}

// KeyframeRequests returns Requests.
func (f *Fanout) KeyframeRequests() <-chan struct{} { return f.Requests }

// RequestKeyframe adds a coalesced request.
func (f *Fanout) RequestKeyframe() {
	select {
	case f.Requests <- struct{}{}:
	default:
	}
}

// ProfileLevelID returns "" (the StreamInfo's profile stands).
func (f *Fanout) ProfileLevelID() string { return "" }

// SetViewers sets what Viewers reports.
func (f *Fanout) SetViewers(n int) { f.viewers.Store(int64(n)) }

// Viewers returns the count set by SetViewers.
func (f *Fanout) Viewers() int { return int(f.viewers.Load()) }

// Stats returns Quality.
func (f *Fanout) Stats() domain.QualityStats { return f.Quality }

// Close marks the fanout closed.
func (f *Fanout) Close() error { f.Closed.Store(true); return nil }

// Peer is a fake ports.Peer.
type Peer struct {
	AnswerFunc       func(ctx context.Context, offer string) (string, error)
	AddCandidateFunc func(c domain.Candidate) error
	StatsFunc        func() domain.QualityStats
	Closed           atomic.Int64
}

var _ ports.Peer = (*Peer)(nil)

// Answer calls AnswerFunc or returns "answer".
func (p *Peer) Answer(ctx context.Context, offer string) (string, error) {
	if p.AnswerFunc == nil {
		return "answer", nil
	}
	return p.AnswerFunc(ctx, offer)
}

// AddCandidate calls AddCandidateFunc.
func (p *Peer) AddCandidate(c domain.Candidate) error {
	if p.AddCandidateFunc == nil {
		return nil
	}
	return p.AddCandidateFunc(c)
}

// Stats calls StatsFunc.
func (p *Peer) Stats() domain.QualityStats {
	if p.StatsFunc == nil {
		return domain.QualityStats{}
	}
	return p.StatsFunc()
}

// Close counts closes.
func (p *Peer) Close() error { p.Closed.Add(1); return nil }

// Clipboard is a ports.DeviceClipboard whose Push plays a device's
// clipboard change.
type Clipboard struct {
	mu       sync.Mutex
	watchers map[int]func(domain.DeviceID, string)
	next     int
}

// WatchClipboard implements ports.DeviceClipboard.
func (c *Clipboard) WatchClipboard(fn func(domain.DeviceID, string)) func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watchers == nil {
		c.watchers = map[int]func(domain.DeviceID, string){}
	}
	k := c.next
	c.next++
	c.watchers[k] = fn
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.watchers, k)
	}
}

// Watchers returns how many watch the clipboard now.
func (c *Clipboard) Watchers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.watchers)
}

// Push tells every watcher device id's clipboard is now text.
func (c *Clipboard) Push(id domain.DeviceID, text string) {
	c.mu.Lock()
	fns := make([]func(domain.DeviceID, string), 0, len(c.watchers))
	for _, fn := range c.watchers {
		fns = append(fns, fn)
	}
	c.mu.Unlock()
	for _, fn := range fns {
		fn(id, text)
	}
}
