package app

import (
	"context"
	"fmt"
	"time"

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

// UseFarm makes the service tell f when a session ends (closed here, or
// found expired in the store whoever held it), so its control passes on.
// Call it before Run.
func (s *Service) UseFarm(f *Farm) { s.farm = f }

// farmClosed releases whatever control sess held or waited for.
func (s *Service) farmClosed(sess domain.Session) {
	if s.farm == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.farm.Closed(ctx, Actor{Subject: sess.Owner, Session: sess.ID}, sess.DeviceID)
}
