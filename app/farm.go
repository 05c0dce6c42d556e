package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
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
	// GroupLimit, when set, takes one token per group input call, keyed
	// by the caller's subject; a refusal is a *domain.RateLimitError.
	GroupLimit ports.RateLimiter
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

// MayUse returns nil when the actor may act on device d outside a
// session (push a file, install an app): no reservation for another
// subject holds, and nobody controls d or one of the actor's own
// sessions does. Otherwise a *domain.ReservedError, or
// domain.ErrForbidden naming who controls it. A device nobody controls
// is open to automation that never opens a session; one somebody is
// driving is not disturbed behind their back.
func (f *Farm) MayUse(ctx context.Context, who Actor, d domain.DeviceID) error {
	if err := f.allows(ctx, who, d, f.clock.Now()); err != nil {
		return err
	}
	c, err := f.Control(ctx, d)
	if err != nil {
		return err
	}
	if len(c.Controllers) == 0 {
		return nil
	}
	var others []string
	for _, h := range c.Controllers {
		if h.Subject == who.Subject {
			return nil
		}
		others = append(others, h.Subject)
	}
	return fmt.Errorf("%s is controlled by %s: %w", d, strings.Join(others, ", "), domain.ErrForbidden)
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
