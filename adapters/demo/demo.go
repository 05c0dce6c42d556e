// Package demo is mediasvc's built-in screen source: one device, "demo",
// whose screen is an embedded 10 s H.264 + Opus clip of a phone-like UI,
// looped forever in real time. It needs no phone, so the service, its viewer
// page and the e2e tests have something to play anywhere.
//
// The clip is made by media/generate.sh (see media/README.md).
package demo

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"mediasvc/domain"
	"mediasvc/ports"
)

// DeviceID is the id of the demo device.
const DeviceID domain.DeviceID = "demo"

var (
	_ ports.ScreenSource = (*Source)(nil)
	_ ports.DeviceInput  = (*Source)(nil)
	_ ports.Keyframes    = (*Source)(nil)
)

// Options configures a Source. The zero value plays in real time.
type Options struct {
	// Speed scales pacing: 0 or 1 is real time, 2 twice as fast, +Inf
	// disables pacing (ReadFrame returns at once; for tests and
	// benchmarks). PTS values are the same at any speed.
	Speed float64
}

// Source is the demo screen source and its input sink. It is safe for
// concurrent use.
type Source struct {
	clip  *clip
	speed float64

	mu     sync.Mutex
	inputs map[domain.InputType]uint64

	// lastKey is the clip index of the latest keyframe any capture handed
	// out (0, the first, before any).
	lastKey atomic.Int64
}

// New parses the embedded clip once and returns a Source that serves it.
// It returns an error when opts.Speed is negative or NaN, or when the
// embedded media is malformed (a build defect).
func New(opts Options) (*Source, error) {
	speed := opts.Speed
	if speed == 0 {
		speed = 1
	}
	if !(speed > 0) {
		return nil, fmt.Errorf("new demo source: speed %v must be positive", opts.Speed)
	}
	c, err := parseClip(clipH264, clipOgg)
	if err != nil {
		return nil, fmt.Errorf("new demo source: %w", err)
	}
	return &Source{clip: c, speed: speed, inputs: make(map[domain.InputType]uint64)}, nil
}

func (s *Source) device() domain.Device {
	return domain.Device{
		ID:      DeviceID,
		Name:    "Demo device",
		Model:   "mediasvc demo",
		State:   domain.DeviceOnline,
		Width:   clipWidth,
		Height:  clipHeight,
		Backend: "demo",
		Breaker: domain.BreakerClosed,
		Audio:   true,
	}
}

// Devices returns the one demo device. It never fails.
func (s *Source) Devices(context.Context) ([]domain.Device, error) {
	return []domain.Device{s.device()}, nil
}

// Device returns the demo device, or domain.ErrDeviceNotFound (wrapped) for
// any other id.
func (s *Source) Device(_ context.Context, id domain.DeviceID) (domain.Device, error) {
	if id != DeviceID {
		return domain.Device{}, fmt.Errorf("demo device %q: %w", id, domain.ErrDeviceNotFound)
	}
	return s.device(), nil
}

// Open starts a capture of the demo device at the beginning of the clip, so
// its first video frame is a keyframe. opts is ignored: the clip is always
// 1280x720 at about 2 Mbps. It returns domain.ErrDeviceNotFound (wrapped) for
// any other id, and ctx.Err() when ctx is already done. Open is cheap: the
// clip was parsed by New and is shared. The caller must Close the capture.
func (s *Source) Open(ctx context.Context, id domain.DeviceID, _ domain.CaptureOptions) (ports.Capture, error) {
	if id != DeviceID {
		return nil, fmt.Errorf("open capture on %q: %w", id, domain.ErrDeviceNotFound)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open capture on %q: %w", id, err)
	}
	c := newCapture(s.clip, s.speed)
	c.lastKey = &s.lastKey
	return c, nil
}

// Keyframe returns the demo's latest keyframe: the one its captures
// handed out last (the clip's first before any), Annex-B with SPS and
// PPS. domain.ErrDeviceNotFound (wrapped) for any other id.
func (s *Source) Keyframe(_ context.Context, id domain.DeviceID) ([]byte, error) {
	if id != DeviceID {
		return nil, fmt.Errorf("demo keyframe of %q: %w", id, domain.ErrDeviceNotFound)
	}
	return s.clip.video[s.lastKey.Load()].data, nil
}

// Input counts ev for the demo device (see Inputs) and does nothing else.
// It returns domain.ErrDeviceNotFound (wrapped) for any other id, and
// domain.ErrInvalidInput (wrapped) when ev does not validate against the
// 1280x720 screen, so unknown types never grow the counters.
func (s *Source) Input(_ context.Context, id domain.DeviceID, ev domain.InputEvent) error {
	if id != DeviceID {
		return fmt.Errorf("input to %q: %w", id, domain.ErrDeviceNotFound)
	}
	if err := ev.Validate(clipWidth, clipHeight); err != nil {
		return fmt.Errorf("input to %q: %w", id, err)
	}
	s.mu.Lock()
	s.inputs[ev.Type]++
	s.mu.Unlock()
	return nil
}

// Inputs returns how many input events of each type the demo device has
// received, as a copy.
func (s *Source) Inputs() map[domain.InputType]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[domain.InputType]uint64, len(s.inputs))
	for k, v := range s.inputs {
		out[k] = v
	}
	return out
}

// unpaced reports whether speed disables pacing.
func unpaced(speed float64) bool { return math.IsInf(speed, 1) }
