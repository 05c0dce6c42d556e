package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
)

// FarmConfig tunes the device-farm rules.
type FarmConfig struct {
	// Instance is this instance's id, recorded on audit events.
	Instance     string
	Control      domain.ControlPolicy
	Reservations domain.ReservationPolicy
	// RecordText records typed and pasted text in the audit trail; by
	// default only its length is.
	RecordText bool
	// PollInterval is how often the control state of the devices watched
	// here is read back from the store, so a change made by another
	// instance (or a grace that ran out there) reaches this instance's
	// viewers; 1 s when zero.
	PollInterval time.Duration
}

// Actor is who asks; see domain.Actor.
type Actor = domain.Actor

// Farm holds the device-farm use cases: control handoff, reservations,
// the audit trail and farm notices. The state lives in a ports.FarmStore
// shared by every instance; Farm keeps only who watches which device here
// and which grace periods it must end.
//
// Make it with NewFarm and run Run; its methods are safe for concurrent
// use.
type Farm struct {
	cfg      FarmConfig
	store    ports.FarmStore
	audit    ports.AuditLog
	notifier ports.Notifier
	clock    ports.Clock
	log      *slog.Logger

	mu       sync.Mutex // guards the maps below; never held across I/O or a callback
	watchers map[domain.DeviceID]*deviceWatch
	nextID   int
	grace    map[domain.DeviceID]bool   // devices with a disconnected controller
	active   map[domain.DeviceID]string // the reservation last seen active, per watched device
}

type deviceWatch struct {
	version int64 // of the last state delivered
	fns     map[int]func(domain.Control)
}

// NewFarm returns a Farm. notifier may be nil; a nil clock is the system's.
func NewFarm(cfg FarmConfig, store ports.FarmStore, audit ports.AuditLog, notifier ports.Notifier, clock ports.Clock, log *slog.Logger) *Farm {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if clock == nil {
		clock = systemClock{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Farm{
		cfg: cfg, store: store, audit: audit, notifier: notifier, clock: clock, log: log,
		watchers: map[domain.DeviceID]*deviceWatch{}, grace: map[domain.DeviceID]bool{}, active: map[domain.DeviceID]string{},
	}
}

// Policy returns the control policy in force.
func (f *Farm) Policy() domain.ControlPolicy { return f.cfg.Control }

// Control returns the device's control state now, with the controllers
// whose grace has passed released (and that release stored).
func (f *Farm) Control(ctx context.Context, d domain.DeviceID) (domain.Control, error) {
	c, err := f.store.Control(ctx, d)
	if err != nil {
		return domain.Control{}, err
	}
	if next, ok := c.NextGrace(); ok && !f.clock.Now().Before(next) {
		return f.expire(ctx, d)
	}
	return c, nil
}

// RequestControl asks control of device d for the actor's session. The
// session becomes a controller, or waits in the queue. It returns a
// *domain.ReservedError (423) when the device is reserved for another
// subject, and domain.ErrInvalidRequest without a session.
func (f *Farm) RequestControl(ctx context.Context, who Actor, d domain.DeviceID) (domain.Control, domain.ControlOutcome, error) {
	now := f.clock.Now()
	if err := f.allows(ctx, who, d, now); err != nil {
		f.record(ctx, who, d, domain.AuditControlRequest, err, "")
		return domain.Control{}, "", err
	}
	var outcome domain.ControlOutcome
	var before domain.Control
	c, err := f.store.UpdateControl(ctx, d, func(c *domain.Control) error {
		before = c.Clone()
		var err error
		outcome, err = c.Request(domain.ControlHolder{Session: who.Session, Subject: who.Subject}, f.cfg.Control, now)
		return err
	})
	if err != nil {
		f.record(ctx, who, d, domain.AuditControlRequest, err, "")
		return domain.Control{}, "", fmt.Errorf("request control of %s: %w", d, err)
	}
	f.mu.Lock()
	delete(f.grace, d)
	f.mu.Unlock()
	f.recordOutcome(ctx, who, d, domain.AuditControlRequest, string(outcome), "")
	f.changed(ctx, c, before, who.Session, "requested")
	return c, outcome, nil
}

// ReleaseControl gives up the actor's session's control or place in the
// queue. Releasing what one does not hold changes nothing and is no error.
func (f *Farm) ReleaseControl(ctx context.Context, who Actor, d domain.DeviceID) (domain.Control, error) {
	return f.release(ctx, who, d, "released")
}

// TakeControl gives the actor's session control at once, displacing the
// longest-serving controller when every place is taken. Only an admin
// may (domain.ErrForbidden otherwise); a reservation does not stop an
// admin.
func (f *Farm) TakeControl(ctx context.Context, who Actor, d domain.DeviceID) (domain.Control, error) {
	if !who.Admin {
		err := fmt.Errorf("take control of %s: only an admin may: %w", d, domain.ErrForbidden)
		f.record(ctx, who, d, domain.AuditControlTake, err, "")
		return domain.Control{}, err
	}
	now := f.clock.Now()
	var displaced []domain.ControlHolder
	var before domain.Control
	c, err := f.store.UpdateControl(ctx, d, func(c *domain.Control) error {
		before = c.Clone()
		var err error
		displaced, err = c.Take(domain.ControlHolder{Session: who.Session, Subject: who.Subject}, f.cfg.Control, now)
		return err
	})
	if err != nil {
		f.record(ctx, who, d, domain.AuditControlTake, err, "")
		return domain.Control{}, fmt.Errorf("take control of %s: %w", d, err)
	}
	f.record(ctx, who, d, domain.AuditControlTake, nil, "")
	for _, h := range displaced {
		f.record(ctx, Actor{Subject: h.Subject, Session: h.Session}, d, domain.AuditControlLost, nil, "taken by "+who.Subject)
	}
	f.changed(ctx, c, before, who.Session, "taken")
	return c, nil
}

// Disconnected tells the farm that session s's client went away: a
// controller keeps control for the grace period, a queued session leaves
// the queue.
func (f *Farm) Disconnected(ctx context.Context, who Actor, d domain.DeviceID) {
	now := f.clock.Now()
	var before domain.Control
	c, err := f.store.UpdateControl(ctx, d, func(c *domain.Control) error {
		before = c.Clone()
		c.Disconnect(who.Session, f.cfg.Control, now)
		return nil
	})
	if err != nil {
		f.log.Warn("farm: record a disconnected controller", "device_id", d, "session_id", who.Session, "err", err)
		return
	}
	if _, ok := c.NextGrace(); ok {
		f.mu.Lock()
		f.grace[d] = true
		f.mu.Unlock()
	}
	if c.Version != before.Version && !c.Controls(who.Session) {
		f.record(ctx, who, d, domain.AuditControlRelease, nil, "disconnected")
	}
	f.changed(ctx, c, before, "", "disconnected")
}

// Closed tells the farm that session s ended: whatever it held or waited
// for is released at once.
func (f *Farm) Closed(ctx context.Context, who Actor, d domain.DeviceID) {
	if _, err := f.release(ctx, who, d, "closed"); err != nil {
		f.log.Warn("farm: release a closed session's control", "device_id", d, "session_id", who.Session, "err", err)
	}
}

func (f *Farm) release(ctx context.Context, who Actor, d domain.DeviceID, why string) (domain.Control, error) {
	now := f.clock.Now()
	var before domain.Control
	held := false
	c, err := f.store.UpdateControl(ctx, d, func(c *domain.Control) error {
		before = c.Clone()
		held = c.Release(who.Session, f.cfg.Control, now)
		return nil
	})
	if err != nil {
		return domain.Control{}, fmt.Errorf("release control of %s: %w", d, err)
	}
	if held {
		f.record(ctx, who, d, domain.AuditControlRelease, nil, why)
	}
	f.changed(ctx, c, before, "", why)
	return c, nil
}

// MayInput returns nil when the actor may send input to device d now: its
// session controls the device or, for a call outside a session, one of
// its subject's sessions does; and no reservation for another subject
// holds. Otherwise a *domain.ReservedError, or domain.ErrForbidden ("not
// in control").
func (f *Farm) MayInput(ctx context.Context, who Actor, d domain.DeviceID) error {
	now := f.clock.Now()
	if err := f.allows(ctx, who, d, now); err != nil {
		return err
	}
	c, err := f.Control(ctx, d)
	if err != nil {
		return err
	}
	for _, h := range c.Controllers {
		if (who.Session != "" && h.Session == who.Session) || (who.Session == "" && h.Subject == who.Subject) {
			return nil
		}
	}
	return fmt.Errorf("input to %s: not in control: %w", d, domain.ErrForbidden)
}

// allows returns the *domain.ReservedError that keeps who from device d,
// if any. Admins are not kept out.
func (f *Farm) allows(ctx context.Context, who Actor, d domain.DeviceID, now time.Time) error {
	if who.Admin {
		return nil
	}
	rs, err := f.store.Reservations(ctx, d)
	if err != nil {
		return err
	}
	return rs.Allows(who.Subject, now)
}

// Admit decides whether who may open a session on device d: a controller
// needs the device not reserved for another subject; a viewer too when
// reservations hide devices. Errors: *domain.ReservedError.
func (f *Farm) Admit(ctx context.Context, who Actor, d domain.DeviceID, role domain.Role) error {
	if role != domain.RoleController && !f.cfg.Reservations.Hide {
		return nil
	}
	return f.allows(ctx, who, d, f.clock.Now())
}

// Visible reports whether who may see device d in listings.
func (f *Farm) Visible(ctx context.Context, who Actor, d domain.DeviceID) bool {
	if !f.cfg.Reservations.Hide || who.Admin {
		return true
	}
	return f.allows(ctx, who, d, f.clock.Now()) == nil
}

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

// Record adds an input-like action (input, text, clipboard, file push,
// install) to the audit trail and the structured log, with its outcome.
func (f *Farm) Record(ctx context.Context, who Actor, d domain.DeviceID, action domain.AuditAction, err error, detail string) {
	f.record(ctx, who, d, action, err, detail)
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

// DeviceOnline and DeviceOffline tell the notifier a device came or went.
func (f *Farm) DeviceOnline(d domain.DeviceID) {
	f.notify(domain.Notice{ID: randomID(12), Type: domain.NoticeDeviceOnline, Device: d})
}

// DeviceOffline: see DeviceOnline.
func (f *Farm) DeviceOffline(d domain.DeviceID) {
	f.notify(domain.Notice{ID: randomID(12), Type: domain.NoticeDeviceOffline, Device: d})
}

func (f *Farm) notify(n domain.Notice) {
	if f.notifier == nil {
		return
	}
	n.Time = f.clock.Now()
	f.notifier.Notify(n)
}

// Watch calls fn with device d's control state whenever it changes, from
// this instance's changes at once and from others' within PollInterval,
// until the returned cancel is called. fn must not block.
func (f *Farm) Watch(d domain.DeviceID, fn func(domain.Control)) (cancel func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.watchers[d]
	if w == nil {
		w = &deviceWatch{version: -1, fns: map[int]func(domain.Control){}}
		f.watchers[d] = w
	}
	f.nextID++
	id := f.nextID
	w.fns[id] = fn
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if w := f.watchers[d]; w != nil {
			delete(w.fns, id)
			if len(w.fns) == 0 {
				delete(f.watchers, d)
			}
		}
	}
}

// changed delivers c to the device's watchers and the notifier when its
// version moved past before's, and audits the sessions that came into
// control with it (promoted from the queue), except self, whose own
// request or take is audited by its caller.
func (f *Farm) changed(ctx context.Context, c, before domain.Control, self domain.SessionID, why string) {
	if c.Version == before.Version {
		return
	}
	for _, h := range c.Controllers {
		if h.Session != self && !before.Controls(h.Session) {
			f.record(ctx, Actor{Subject: h.Subject, Session: h.Session}, c.Device, domain.AuditControlGranted, nil, "from the queue: "+why)
		}
	}
	f.deliver(c)
	cc := c.Clone()
	f.notify(domain.Notice{ID: fmt.Sprintf("%s:control:%d:%s", c.Device, c.Version, randomID(6)), Type: domain.NoticeControlChanged, Device: c.Device, Control: &cc, Reason: why})
}

// deliver hands c to the watchers of its device unless the last state
// they got had the same version. (Versions restart when a device's state
// empties and is deleted, so only equality means "seen".)
func (f *Farm) deliver(c domain.Control) {
	f.mu.Lock()
	w := f.watchers[c.Device]
	if w == nil || c.Version == w.version {
		f.mu.Unlock()
		return
	}
	w.version = c.Version
	fns := make([]func(domain.Control), 0, len(w.fns))
	for _, fn := range w.fns {
		fns = append(fns, fn)
	}
	f.mu.Unlock()
	for _, fn := range fns {
		fn(c.Clone())
	}
}

// Run polls, every PollInterval until ctx is done, the control state of
// the devices watched here or with a grace running here: it ends graces
// that have passed, delivers changes made elsewhere, and enforces and
// announces reservations as they start and end.
func (f *Farm) Run(ctx context.Context) error {
	t := f.clock.NewTimer(f.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			f.poll(ctx)
			t.Reset(f.cfg.PollInterval)
		}
	}
}

func (f *Farm) poll(ctx context.Context) {
	f.mu.Lock()
	devices := make(map[domain.DeviceID]bool, len(f.watchers)+len(f.grace))
	for d := range f.watchers {
		devices[d] = true
	}
	for d := range f.grace {
		devices[d] = true
	}
	for d := range f.active {
		devices[d] = true
	}
	f.mu.Unlock()
	now := f.clock.Now()
	for d := range devices {
		if ctx.Err() != nil {
			return
		}
		f.pollReservations(ctx, d, now)
		c, err := f.Control(ctx, d)
		if err != nil {
			f.log.Warn("farm: read control state", "device_id", d, "err", err)
			continue
		}
		if _, ok := c.NextGrace(); !ok {
			f.mu.Lock()
			delete(f.grace, d)
			f.mu.Unlock()
		}
		f.deliver(c)
	}
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

// expire ends the passed graces of device d and stores the result.
func (f *Farm) expire(ctx context.Context, d domain.DeviceID) (domain.Control, error) {
	now := f.clock.Now()
	var before domain.Control
	var gone []domain.ControlHolder
	c, err := f.store.UpdateControl(ctx, d, func(c *domain.Control) error {
		before = c.Clone()
		gone = c.Expire(f.cfg.Control, now)
		return nil
	})
	if err != nil {
		return domain.Control{}, fmt.Errorf("end the grace of %s's controllers: %w", d, err)
	}
	for _, h := range gone {
		f.record(ctx, Actor{Subject: h.Subject, Session: h.Session}, d, domain.AuditControlRelease, nil, "grace passed")
	}
	f.changed(ctx, c, before, "", "grace")
	return c, nil
}

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

// GroupInput sends g to every device in devices (at most maxGroup, each
// once), mapped to each device's screen (size returns it; send delivers
// the event in those pixels). A device where who
// holds no control is refused with domain.ErrForbidden (or a
// *domain.ReservedError) and the others still get the input; each
// attempt is audited. The errors returned are one per device, in order,
// nil where the input was delivered. It returns domain.ErrInvalidRequest
// for an empty, oversized or repeating list.
func (f *Farm) GroupInput(ctx context.Context, who Actor, devices []domain.DeviceID, g domain.GroupInput,
	size func(context.Context, domain.DeviceID) (w, h int, err error),
	send func(context.Context, domain.DeviceID, domain.InputEvent) error,
) ([]error, error) {
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

// WatchDevices lists the devices every interval until ctx is done and
// tells the notifier which came online and which went away (or offline).
// The first listing only sets the baseline.
func (f *Farm) WatchDevices(ctx context.Context, interval time.Duration, list func(context.Context) ([]domain.Device, error)) {
	t := f.clock.NewTimer(interval)
	defer t.Stop()
	var known map[domain.DeviceID]bool
	for {
		ds, err := list(ctx)
		if err == nil {
			now := make(map[domain.DeviceID]bool, len(ds))
			for _, d := range ds {
				now[d.ID] = d.State == domain.DeviceOnline
			}
			if known != nil {
				for id, on := range now {
					if on && !known[id] {
						f.DeviceOnline(id)
					}
					if !on && known[id] {
						f.DeviceOffline(id)
					}
				}
				for id, on := range known {
					if _, ok := now[id]; !ok && on {
						f.DeviceOffline(id)
					}
				}
			}
			known = now
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			t.Reset(interval)
		}
	}
}
