package app

import (
	"context"
	"fmt"

	"mediasvc/domain"
)

// inputLocal delivers a controller's input to the device of a session held
// here. Errors: domain.ErrForbidden for viewers (and devices that take no
// input), ErrRateLimited past the session's input rate, ErrInvalidInput
// when malformed or outside the picture, ErrConflict before the stream
// started, and the device's own errors.
func (s *Service) inputLocal(ctx context.Context, l *live, ev domain.InputEvent) error {
	if l.role != domain.RoleController {
		return fmt.Errorf("input on session %s: viewers may not send input: %w", l.id, domain.ErrForbidden)
	}
	if r := l.input.Reserve(); r.Delay() > 0 {
		d := r.Delay()
		r.Cancel()
		err := &domain.RateLimitError{Limit: "input", RetryAfter: d}
		s.rateLimited(ctx, err, "input")
		return err
	}
	l.mu.Lock()
	info := l.info
	started := l.peer != nil
	l.mu.Unlock()
	if !started {
		return fmt.Errorf("input before offer on session %s: %w", l.id, domain.ErrConflict)
	}
	// The viewer clicks on the picture it sees now: a capture reopened
	// since it joined (a rotated device) may have another size.
	if cur, ok := s.hub.CurrentInfo(l.device); ok && cur.Width > 0 && cur.Height > 0 {
		info = cur
	}
	if err := ev.Validate(info.Width, info.Height); err != nil {
		return err
	}
	d, src, err := s.src.device(ctx, l.device)
	if err != nil {
		return err
	}
	if src.Input == nil {
		return fmt.Errorf("device %s takes no input: %w", l.device, domain.ErrForbidden)
	}
	if ev, err = ev.MapToDevice(info.Width, info.Height, d.Width, d.Height); err != nil {
		return err
	}
	if err := src.Input.Input(ctx, l.device, ev); err != nil {
		return fmt.Errorf("input to %s: %w", l.device, err)
	}
	return nil
}
