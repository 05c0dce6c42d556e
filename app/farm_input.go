package app

import (
	"context"
	"fmt"
	"sync"

	"mediasvc/domain"
)

// Input under the farm rules: one guarded action, and group input to
// many devices at once.

// Guard runs do, an input-like action on device d, when who may send
// input there (MayInput), and records it in the audit trail with its
// outcome either way. It returns MayInput's refusal or do's error.
func (f *Farm) Guard(ctx context.Context, who Actor, d domain.DeviceID, action domain.AuditAction, detail string, do func() error) error {
	err := f.MayInput(ctx, who, d)
	if err == nil {
		err = do()
	}
	f.record(ctx, who, d, action, err, detail)
	return err
}

// GuardUse runs do, an action on device d outside a session (a file
// push, an install), when who may use d (MayUse), and records it in the
// audit trail with its outcome either way.
func (f *Farm) GuardUse(ctx context.Context, who Actor, d domain.DeviceID, action domain.AuditAction, detail string, do func() error) error {
	err := f.MayUse(ctx, who, d)
	if err == nil {
		err = do()
	}
	f.record(ctx, who, d, action, err, detail)
	return err
}

// GroupInput sends g to every device in devices (at most maxGroup, each
// once), mapped to each device's screen (size returns it; send delivers
// the event in those pixels). A device where who
// holds no control is refused with domain.ErrForbidden (or a
// *domain.ReservedError) and the others still get the input; each
// attempt is audited. The errors returned are one per device, in order,
// nil where the input was delivered. It returns domain.ErrInvalidRequest
// for an empty, oversized or repeating list, and the GroupLimit's
// refusal (nothing sent) when who calls too often.
func (f *Farm) GroupInput(ctx context.Context, who Actor, devices []domain.DeviceID, g domain.GroupInput,
	size func(context.Context, domain.DeviceID) (w, h int, err error),
	send func(context.Context, domain.DeviceID, domain.InputEvent) error,
) ([]error, error) {
	if f.cfg.GroupLimit != nil {
		if err := f.cfg.GroupLimit.Allow(ctx, who.Subject); err != nil {
			return nil, fmt.Errorf("group input by %q: %w", who.Subject, err)
		}
	}
	if len(devices) == 0 || len(devices) > maxGroup {
		return nil, fmt.Errorf("group input: 1..%d devices, got %d: %w", maxGroup, len(devices), domain.ErrInvalidRequest)
	}
	seen := make(map[domain.DeviceID]bool, len(devices))
	for _, d := range devices {
		if d == "" || seen[d] {
			return nil, fmt.Errorf("group input: device %q empty or listed twice: %w", d, domain.ErrInvalidRequest)
		}
		seen[d] = true
	}
	out := make([]error, len(devices))
	var wg sync.WaitGroup
	for i, d := range devices {
		wg.Go(func() { out[i] = f.groupOne(ctx, who, d, g, size, send) })
	}
	wg.Wait()
	return out, nil
}

// maxGroup bounds the devices of one group input.
const maxGroup = 100

func (f *Farm) groupOne(ctx context.Context, who Actor, d domain.DeviceID, g domain.GroupInput,
	size func(context.Context, domain.DeviceID) (int, int, error),
	send func(context.Context, domain.DeviceID, domain.InputEvent) error,
) error {
	ev := domain.InputEvent{Type: g.Type, Text: g.Text, Key: g.Key}
	action, detail := f.InputDetail(ev)
	detail += " (group)"
	return f.Guard(ctx, Actor{Subject: who.Subject, Admin: who.Admin}, d, action, detail, func() error {
		w, h, err := size(ctx, d)
		if err != nil {
			return err
		}
		ev, err := g.ToDevice(w, h)
		if err != nil {
			return err
		}
		return send(ctx, d, ev)
	})
}
