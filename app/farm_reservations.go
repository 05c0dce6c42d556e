package app

import (
	"context"
	"fmt"
	"time"

	"mediasvc/domain"
)

// Reservations: booking a device for a subject, and noticing when a
// booking starts or ends.

// Reserve books device d for subject (the actor's own when empty) from
// start (now when zero) until until. Booking for another subject takes an
// admin (domain.ErrForbidden). Errors as domain.Reservations.Add: a
// *domain.ReservedError when it overlaps another, ErrInvalidRequest when
// out of the policy's bounds. When the reservation holds at once, the
// controllers and queued sessions of other subjects lose control.
func (f *Farm) Reserve(ctx context.Context, who Actor, d domain.DeviceID, subject string, start, until time.Time) (domain.Reservation, error) {
	if subject == "" {
		subject = who.Subject
	}
	detail := fmt.Sprintf("for %s until %s", subject, until.UTC().Format(time.RFC3339))
	if subject != who.Subject && !who.Admin {
		err := fmt.Errorf("reserve %s for %s: only an admin may book for another subject: %w", d, subject, domain.ErrForbidden)
		f.record(ctx, who, d, domain.AuditReservationCreate, err, detail)
		return domain.Reservation{}, err
	}
	now := f.clock.Now()
	var r domain.Reservation
	_, err := f.store.UpdateReservations(ctx, d, func(rs *domain.Reservations) error {
		var err error
		r, err = rs.Add(domain.Reservation{ID: randomID(12), Subject: subject, CreatedBy: who.Subject, Start: start, Until: until}, f.cfg.Reservations, now)
		return err
	})
	f.record(ctx, who, d, domain.AuditReservationCreate, err, detail)
	if err != nil {
		return domain.Reservation{}, fmt.Errorf("reserve %s: %w", d, err)
	}
	if r.ActiveAt(now) {
		f.started(ctx, r)
	}
	return r, nil
}

// started enforces a reservation that holds now: other subjects' sessions
// lose control; and tells the notifier.
func (f *Farm) started(ctx context.Context, r domain.Reservation) {
	f.mu.Lock()
	if f.active[r.Device] == r.ID {
		f.mu.Unlock()
		return
	}
	f.active[r.Device] = r.ID
	f.mu.Unlock()
	now := f.clock.Now()
	var before domain.Control
	var gone []domain.ControlHolder
	c, err := f.store.UpdateControl(ctx, r.Device, func(c *domain.Control) error {
		before = c.Clone()
		gone = c.Retain(func(s string) bool { return s == r.Subject }, f.cfg.Control, now)
		return nil
	})
	if err != nil {
		f.log.Warn("farm: enforce a reservation", "device_id", r.Device, "reservation", r.ID, "err", err)
	} else {
		for _, h := range gone {
			f.record(ctx, Actor{Subject: h.Subject, Session: h.Session}, r.Device, domain.AuditControlLost, nil, "reserved for "+r.Subject)
		}
		f.changed(ctx, c, before, "", "reserved")
	}
	f.notify(domain.Notice{ID: r.ID + ":started", Type: domain.NoticeReservationStart, Device: r.Device, Reservation: &r})
}

// ExtendReservation moves the end of reservation id on device d. Only its
// subject, its creator or an admin may (domain.ErrForbidden). Errors as
// domain.Reservations.Extend.
func (f *Farm) ExtendReservation(ctx context.Context, who Actor, d domain.DeviceID, id string, until time.Time) (domain.Reservation, error) {
	now := f.clock.Now()
	var r domain.Reservation
	_, err := f.store.UpdateReservations(ctx, d, func(rs *domain.Reservations) error {
		cur, ok := rs.Find(id)
		if ok && !mayChange(who, cur) {
			return fmt.Errorf("extend reservation %s: it is %s's: %w", id, cur.Subject, domain.ErrForbidden)
		}
		var err error
		r, err = rs.Extend(id, until, f.cfg.Reservations, now)
		return err
	})
	f.record(ctx, who, d, domain.AuditReservationExtend, err, "reservation "+id+" until "+until.UTC().Format(time.RFC3339))
	if err != nil {
		return domain.Reservation{}, fmt.Errorf("extend reservation of %s: %w", d, err)
	}
	return r, nil
}

// CancelReservation removes reservation id on device d. Only its
// subject, its creator or an admin may (domain.ErrForbidden);
// domain.ErrReservationNotFound when there is none.
func (f *Farm) CancelReservation(ctx context.Context, who Actor, d domain.DeviceID, id string) (domain.Reservation, error) {
	now := f.clock.Now()
	var r domain.Reservation
	_, err := f.store.UpdateReservations(ctx, d, func(rs *domain.Reservations) error {
		cur, ok := rs.Find(id)
		if ok && !mayChange(who, cur) {
			return fmt.Errorf("cancel reservation %s: it is %s's: %w", id, cur.Subject, domain.ErrForbidden)
		}
		var err error
		r, err = rs.Cancel(id, now)
		return err
	})
	f.record(ctx, who, d, domain.AuditReservationCancel, err, "reservation "+id)
	if err != nil {
		return domain.Reservation{}, fmt.Errorf("cancel reservation of %s: %w", d, err)
	}
	if r.ActiveAt(now) {
		f.ended(r, "cancelled")
	}
	return r, nil
}

func (f *Farm) ended(r domain.Reservation, why string) {
	f.mu.Lock()
	if f.active[r.Device] == r.ID {
		delete(f.active, r.Device)
	}
	f.mu.Unlock()
	f.notify(domain.Notice{ID: r.ID + ":ended", Type: domain.NoticeReservationEnd, Device: r.Device, Reservation: &r, Reason: why})
}

func mayChange(who Actor, r domain.Reservation) bool {
	return who.Admin || r.Subject == who.Subject || r.CreatedBy == who.Subject
}

// Reservations lists device d's reservations that have not ended.
func (f *Farm) Reservations(ctx context.Context, d domain.DeviceID) ([]domain.Reservation, error) {
	rs, err := f.store.Reservations(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("list reservations of %s: %w", d, err)
	}
	rs.Prune(f.clock.Now())
	if rs.List == nil {
		rs.List = []domain.Reservation{}
	}
	return rs.List, nil
}

// AllReservations lists every device's reservations that have not ended.
func (f *Farm) AllReservations(ctx context.Context) ([]domain.Reservation, error) {
	ds, err := f.store.ReservedDevices(ctx)
	if err != nil {
		return nil, fmt.Errorf("list reserved devices: %w", err)
	}
	out := []domain.Reservation{}
	for _, d := range ds {
		rs, err := f.Reservations(ctx, d)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// pollReservations notices a reservation of d that started or ended since
// the last poll.
func (f *Farm) pollReservations(ctx context.Context, d domain.DeviceID, now time.Time) {
	rs, err := f.store.Reservations(ctx, d)
	if err != nil {
		f.log.Warn("farm: read reservations", "device_id", d, "err", err)
		return
	}
	f.mu.Lock()
	last, had := f.active[d]
	f.mu.Unlock()
	cur, ok := rs.Active(now)
	if had && (!ok || cur.ID != last) {
		r, found := rs.Find(last)
		if !found {
			r = domain.Reservation{ID: last, Device: d}
		}
		f.ended(r, "ended")
	}
	if ok && cur.ID != last {
		f.started(ctx, cur)
	}
}
