package app

import (
	"context"
	"errors"
	"fmt"

	"mediasvc/domain"
)

// The audit trail: every input-like action and control change, with its
// outcome.

// Record adds an input-like action (input, text, clipboard, file push,
// install) to the audit trail and the structured log, with its outcome.
func (f *Farm) Record(ctx context.Context, who Actor, d domain.DeviceID, action domain.AuditAction, err error, detail string) {
	f.record(ctx, who, d, action, err, detail)
}

// ClipboardSent records that the device's clipboard text went to who's
// client: its length only, unless the operator records text.
func (f *Farm) ClipboardSent(ctx context.Context, who Actor, d domain.DeviceID, text string) {
	f.record(ctx, who, d, domain.AuditDeviceClipboard, nil, domain.TextDetail(text, f.cfg.RecordText))
}

// InputDetail is the audit detail of an input event: its kind, and for
// text its length (its contents only when the operator records text).
func (f *Farm) InputDetail(ev domain.InputEvent) (domain.AuditAction, string) {
	switch ev.Type {
	case domain.InputText:
		return domain.AuditText, domain.TextDetail(ev.Text, f.cfg.RecordText)
	case domain.InputClipboard:
		return domain.AuditClipboard, domain.TextDetail(ev.Text, f.cfg.RecordText)
	case domain.InputKey:
		return domain.AuditInput, "key " + ev.Key
	}
	return domain.AuditInput, string(ev.Type)
}

// Audit returns the audit events f selects, oldest first.
func (f *Farm) Audit(ctx context.Context, filter domain.AuditFilter) ([]domain.AuditEvent, error) {
	es, err := f.audit.Query(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("query audit trail: %w", err)
	}
	return es, nil
}

func (f *Farm) record(ctx context.Context, who Actor, d domain.DeviceID, action domain.AuditAction, err error, detail string) {
	f.recordOutcome(ctx, who, d, action, outcomeOf(err), detail)
}

func (f *Farm) recordOutcome(ctx context.Context, who Actor, d domain.DeviceID, action domain.AuditAction, outcome, detail string) {
	e := domain.AuditEvent{
		Time: f.clock.Now(), Action: action, Subject: who.Subject, Session: who.Session,
		Device: d, Outcome: outcome, Detail: detail, Instance: f.cfg.Instance,
	}
	f.log.Info("audit", "action", e.Action, "subject", e.Subject, "session_id", e.Session, "device_id", e.Device, "outcome", e.Outcome, "detail", e.Detail)
	if err := f.audit.Record(context.WithoutCancel(ctx), e); err != nil {
		f.log.Warn("audit trail: record failed", "action", e.Action, "device_id", e.Device, "err", err)
	}
}

// outcomeOf names an error for the audit trail by the domain error it
// wraps.
func outcomeOf(err error) string {
	switch {
	case err == nil:
		return domain.OutcomeOK
	case errors.Is(err, domain.ErrReserved):
		return "reserved"
	case errors.Is(err, domain.ErrForbidden):
		return "forbidden"
	case errors.Is(err, domain.ErrRateLimited):
		return "rate_limited"
	case errors.Is(err, domain.ErrInvalidInput), errors.Is(err, domain.ErrInvalidRequest):
		return "invalid"
	case errors.Is(err, domain.ErrReservationNotFound), errors.Is(err, domain.ErrDeviceNotFound), errors.Is(err, domain.ErrSessionNotFound):
		return "not_found"
	case errors.Is(err, domain.ErrConflict):
		return "conflict"
	case errors.Is(err, domain.ErrDeviceUnavailable):
		return "device_unavailable"
	case errors.Is(err, domain.ErrUnavailable):
		return "unavailable"
	}
	return "error"
}
