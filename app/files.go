package app

import (
	"context"
	"fmt"
	"io"

	"mediasvc/domain"
)

// files returns the file port of the source holding device id on this
// instance: domain.ErrDeviceNotFound when no local source has it, and
// domain.ErrForbidden when its source takes no files.
func (s *Service) files(ctx context.Context, id domain.DeviceID) (Source, error) {
	src, err := s.src.lookup(ctx, id)
	if err != nil {
		return Source{}, err
	}
	if src.Files == nil {
		return Source{}, fmt.Errorf("device %s takes no files and gives no screenshots: %w", id, domain.ErrForbidden)
	}
	return src, nil
}

// PushFile streams a file to device id's Download folder (see
// ports.DeviceFiles). The caller has checked the principal may control
// the device. Errors as files and the port's.
func (s *Service) PushFile(ctx context.Context, id domain.DeviceID, name string, r io.Reader, size int64) (string, error) {
	src, err := s.files(ctx, id)
	if err != nil {
		return "", err
	}
	return src.Files.PushFile(ctx, id, name, r, size)
}

// InstallAPK streams an APK to device id's package manager.
func (s *Service) InstallAPK(ctx context.Context, id domain.DeviceID, r io.Reader, size int64) error {
	src, err := s.files(ctx, id)
	if err != nil {
		return err
	}
	return src.Files.InstallAPK(ctx, id, r, size)
}

// Screenshot returns a PNG of device id's screen: the device's own (see
// ports.DeviceFiles), or for a source without files but with keyframes
// (the demo) its latest keyframe decoded by Deps.Stills —
// domain.ErrUnavailable without a decoder (no ffmpeg), ErrForbidden for a
// source with neither.
func (s *Service) Screenshot(ctx context.Context, id domain.DeviceID) ([]byte, error) {
	src, err := s.src.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	switch {
	case src.Files != nil:
		return src.Files.Screenshot(ctx, id)
	case src.Keyframes == nil:
		return nil, fmt.Errorf("device %s gives no screenshots: %w", id, domain.ErrForbidden)
	case s.deps.Stills == nil:
		return nil, fmt.Errorf("screenshot of %s: no decoder (ffmpeg) configured: %w", id, domain.ErrUnavailable)
	}
	au, err := src.Keyframes.Keyframe(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("screenshot of %s: %w", id, err)
	}
	png, err := s.deps.Stills.DecodeStill(ctx, au)
	if err != nil {
		return nil, fmt.Errorf("screenshot of %s: %w", id, err)
	}
	return png, nil
}
