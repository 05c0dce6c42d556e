package domain

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrReserved is returned when a device is reserved for another subject.
// The error that carries it is a *ReservedError naming who and until when.
var ErrReserved = errors.New("device reserved")

// ReservedError says a device is reserved for another subject. It matches
// ErrReserved with errors.Is.
type ReservedError struct {
	Device  DeviceID
	Subject string
	Until   time.Time
}

func (e *ReservedError) Error() string {
	return fmt.Sprintf("device %s is reserved for %s until %s", e.Device, e.Subject, e.Until.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrReserved) true.
func (e *ReservedError) Is(target error) bool { return target == ErrReserved }

// ReservationPolicy bounds reservations.
type ReservationPolicy struct {
	// MaxDuration is the longest a reservation may last from its start;
	// zero means no bound.
	MaxDuration time.Duration
	// MaxAhead is how far in the future a reservation may start; zero
	// means only reservations that start now.
	MaxAhead time.Duration
	// Hide makes a device reserved for someone else invisible to every
	// other subject, not only uncontrollable.
	Hide bool
}

// Reservation books a device for one subject from Start until Until.
type Reservation struct {
	ID      string   `json:"id"`
	Device  DeviceID `json:"device_id"`
	Subject string   `json:"subject"`
	// CreatedBy is who made the reservation: the subject itself or an
	// admin booking for someone.
	CreatedBy string    `json:"created_by"`
	Start     time.Time `json:"start"`
	Until     time.Time `json:"until"`
	CreatedAt time.Time `json:"created_at"`
}

// ActiveAt reports whether r holds at t: Start ≤ t < Until.
func (r Reservation) ActiveAt(t time.Time) bool { return !t.Before(r.Start) && t.Before(r.Until) }

// Reservations are one device's reservations, ordered by Start, none
// overlapping another. Their methods are pure and leave the list
// unchanged when they return an error.
type Reservations struct {
	Device DeviceID      `json:"device_id"`
	List   []Reservation `json:"reservations"`
	// Version counts changes; stores use it to detect concurrent writers.
	Version int64 `json:"version"`
}

// Prune drops the reservations that ended by now and returns them.
func (rs *Reservations) Prune(now time.Time) []Reservation {
	var gone []Reservation
	rs.List = slices.DeleteFunc(rs.List, func(r Reservation) bool {
		if !now.Before(r.Until) {
			gone = append(gone, r)
			return true
		}
		return false
	})
	if len(gone) > 0 {
		rs.Version++
	}
	return gone
}

// Active returns the reservation holding at now, if any.
func (rs *Reservations) Active(now time.Time) (Reservation, bool) {
	for _, r := range rs.List {
		if r.ActiveAt(now) {
			return r, true
		}
	}
	return Reservation{}, false
}

// Allows returns nil when subject may control the device at now, and a
// *ReservedError when a reservation for another subject holds.
func (rs *Reservations) Allows(subject string, now time.Time) error {
	if r, ok := rs.Active(now); ok && r.Subject != subject {
		return &ReservedError{Device: rs.Device, Subject: r.Subject, Until: r.Until}
	}
	return nil
}

// Visible reports whether subject may see the device at now under p: a
// device is hidden only when p.Hide is set and a reservation for another
// subject holds.
func (rs *Reservations) Visible(subject string, p ReservationPolicy, now time.Time) bool {
	return !p.Hide || rs.Allows(subject, now) == nil
}

// Find returns the reservation with id, or false.
func (rs *Reservations) Find(id string) (Reservation, bool) {
	i := slices.IndexFunc(rs.List, func(r Reservation) bool { return r.ID == id })
	if i < 0 {
		return Reservation{}, false
	}
	return rs.List[i], true
}

// Add books r. A zero Start means now. It returns an error wrapping
// ErrInvalidRequest when r names no subject or id, ends before it starts
// or before now, starts in the past (before now less a second of clock
// slack) or further ahead than p.MaxAhead, or lasts longer than
// p.MaxDuration; ErrConflict when its id is taken; and a *ReservedError
// (ErrReserved) when it overlaps another reservation, naming that one.
func (rs *Reservations) Add(r Reservation, p ReservationPolicy, now time.Time) (Reservation, error) {
	rs.Prune(now)
	if r.ID == "" || r.Subject == "" {
		return Reservation{}, fmt.Errorf("reserve %s: id and subject are required: %w", rs.Device, ErrInvalidRequest)
	}
	if _, ok := rs.Find(r.ID); ok {
		return Reservation{}, fmt.Errorf("reserve %s: reservation %s exists: %w", rs.Device, r.ID, ErrConflict)
	}
	r.Device = rs.Device
	if r.Start.IsZero() || (r.Start.Before(now) && !r.Start.Before(now.Add(-time.Second))) {
		r.Start = now
	}
	if r.Start.Before(now) {
		return Reservation{}, fmt.Errorf("reserve %s: start %s is in the past: %w", rs.Device, r.Start.UTC().Format(time.RFC3339), ErrInvalidRequest)
	}
	if ahead := r.Start.Sub(now); ahead > p.MaxAhead {
		return Reservation{}, fmt.Errorf("reserve %s: start is %s ahead, more than %s: %w", rs.Device, ahead.Round(time.Second), p.MaxAhead, ErrInvalidRequest)
	}
	if err := rs.checkSpan(r, p); err != nil {
		return Reservation{}, err
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	rs.List = append(rs.List, r)
	slices.SortFunc(rs.List, func(a, b Reservation) int { return a.Start.Compare(b.Start) })
	rs.Version++
	return r, nil
}

// Extend moves the end of reservation id to until, later or earlier. It
// returns an error wrapping ErrReservationNotFound when there is no such
// reservation; ErrInvalidRequest when until is not after now and its
// start, or lies more than p.MaxDuration after its start; and a
// *ReservedError when the new span overlaps the next reservation.
func (rs *Reservations) Extend(id string, until time.Time, p ReservationPolicy, now time.Time) (Reservation, error) {
	rs.Prune(now)
	i := slices.IndexFunc(rs.List, func(r Reservation) bool { return r.ID == id })
	if i < 0 {
		return Reservation{}, fmt.Errorf("extend reservation %s of %s: %w", id, rs.Device, ErrReservationNotFound)
	}
	r := rs.List[i]
	r.Until = until
	if !until.After(now) {
		return Reservation{}, fmt.Errorf("extend reservation %s of %s: until %s is not in the future: %w", id, rs.Device, until.UTC().Format(time.RFC3339), ErrInvalidRequest)
	}
	if err := rs.checkSpan(r, p); err != nil {
		return Reservation{}, err
	}
	rs.List[i] = r
	rs.Version++
	return r, nil
}

// Cancel removes reservation id and returns it; ErrReservationNotFound
// when there is none.
func (rs *Reservations) Cancel(id string, now time.Time) (Reservation, error) {
	rs.Prune(now)
	i := slices.IndexFunc(rs.List, func(r Reservation) bool { return r.ID == id })
	if i < 0 {
		return Reservation{}, fmt.Errorf("cancel reservation %s of %s: %w", id, rs.Device, ErrReservationNotFound)
	}
	r := rs.List[i]
	rs.List = slices.Delete(rs.List, i, i+1)
	rs.Version++
	return r, nil
}

// LastUntil returns the latest end of any reservation, zero when none.
func (rs *Reservations) LastUntil() time.Time {
	var last time.Time
	for _, r := range rs.List {
		if r.Until.After(last) {
			last = r.Until
		}
	}
	return last
}

// Clone returns a copy of rs that shares no slice with it.
func (rs Reservations) Clone() Reservations {
	rs.List = slices.Clone(rs.List)
	return rs
}

// checkSpan validates r's span against p and the other reservations.
func (rs *Reservations) checkSpan(r Reservation, p ReservationPolicy) error {
	if !r.Until.After(r.Start) {
		return fmt.Errorf("reserve %s: until %s is not after start %s: %w", rs.Device,
			r.Until.UTC().Format(time.RFC3339), r.Start.UTC().Format(time.RFC3339), ErrInvalidRequest)
	}
	if d := r.Until.Sub(r.Start); p.MaxDuration > 0 && d > p.MaxDuration {
		return fmt.Errorf("reserve %s: %s is longer than the %s allowed: %w", rs.Device, d.Round(time.Second), p.MaxDuration, ErrInvalidRequest)
	}
	for _, o := range rs.List {
		if o.ID != r.ID && r.Start.Before(o.Until) && o.Start.Before(r.Until) {
			return &ReservedError{Device: rs.Device, Subject: o.Subject, Until: o.Until}
		}
	}
	return nil
}
