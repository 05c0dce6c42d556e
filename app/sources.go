package app

import (
	"context"
	"errors"
	"fmt"

	"mediasvc/domain"
	"mediasvc/ports"
)

// Source is one screen source and the input path to its devices.
type Source struct {
	Screen ports.ScreenSource
	// Input may be nil for a source whose devices take no input.
	Input ports.DeviceInput
	// Files may be nil for a source whose devices take no files and give
	// no screenshots.
	Files ports.DeviceFiles
	// Keyframes, for a source without Files, gives the latest keyframe
	// that Deps.Stills decodes into a screenshot (the demo); may be nil.
	Keyframes ports.Keyframes
	// Clipboard may be nil for a source whose devices never tell of
	// their clipboard.
	Clipboard ports.DeviceClipboard
	// Claim lets this instance take the leases of the source's devices
	// (Deps.Leases): it can capture them and may be their owner.
	Claim bool
	// Secondary says the source's Open takes CaptureOptions.Secondary: a
	// second, small capture of a device beside its main one (adb's
	// screenrecord --size), which a device wall's tiles watch. Without it
	// tiles watch the wall rendition of the device's capture.
	Secondary bool
}

// sourceSet routes a device id to the source that has it.
type sourceSet struct{ list []Source }

// lookup returns the source that knows device id, or
// domain.ErrDeviceNotFound.
func (s *sourceSet) lookup(ctx context.Context, id domain.DeviceID) (Source, error) {
	for _, src := range s.list {
		if _, err := src.Screen.Device(ctx, id); err == nil {
			return src, nil
		} else if !errors.Is(err, domain.ErrDeviceNotFound) {
			return Source{}, fmt.Errorf("look up device %s: %w", id, err)
		}
	}
	return Source{}, fmt.Errorf("device %q: %w", id, domain.ErrDeviceNotFound)
}

// device returns the device with id from whichever source has it.
func (s *sourceSet) device(ctx context.Context, id domain.DeviceID) (domain.Device, Source, error) {
	for _, src := range s.list {
		d, err := src.Screen.Device(ctx, id)
		if err == nil {
			return d, src, nil
		}
		if !errors.Is(err, domain.ErrDeviceNotFound) {
			return domain.Device{}, Source{}, fmt.Errorf("look up device %s: %w", id, err)
		}
	}
	return domain.Device{}, Source{}, fmt.Errorf("device %q: %w", id, domain.ErrDeviceNotFound)
}

// devices lists every source's devices; a failing source is skipped so one
// broken backend does not hide the others.
func (s *sourceSet) devices(ctx context.Context) ([]domain.Device, error) {
	var all []domain.Device
	var errs []error
	for _, src := range s.list {
		ds, err := src.Screen.Devices(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		all = append(all, ds...)
	}
	if len(all) == 0 && len(errs) > 0 {
		return nil, fmt.Errorf("list devices: %w", errors.Join(errs...))
	}
	return all, nil
}
