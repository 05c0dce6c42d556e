package app

import (
	"context"
	"fmt"

	"mediasvc/domain"
)

// DeviceInput delivers ev, in the device's own screen pixels, to device
// id straight through its source, outside any session: group input from
// the farm, whose caller has checked control. It validates ev against the
// device's screen. Errors: domain.ErrDeviceNotFound when no source here
// has the device, ErrForbidden when it takes no input, ErrInvalidInput,
// and the device's own errors.
func (s *Service) DeviceInput(ctx context.Context, id domain.DeviceID, ev domain.InputEvent) error {
	d, src, err := s.src.device(ctx, id)
	if err != nil {
		return err
	}
	if src.Input == nil {
		return fmt.Errorf("device %s takes no input: %w", id, domain.ErrForbidden)
	}
	if err := ev.Validate(d.Width, d.Height); err != nil {
		return err
	}
	if err := src.Input.Input(ctx, id, ev); err != nil {
		return fmt.Errorf("input to %s: %w", id, err)
	}
	return nil
}
