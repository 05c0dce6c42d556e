package domain

import (
	"fmt"
	"slices"
	"time"
)

// ControlPolicy bounds who may control a device.
type ControlPolicy struct {
	// MaxControllers is how many sessions may control one device at once;
	// zero or less means one.
	MaxControllers int
	// Grace is how long a controller whose client disconnected keeps
	// control before it passes on; zero releases at once.
	Grace time.Duration
}

func (p ControlPolicy) max() int {
	if p.MaxControllers <= 0 {
		return 1
	}
	return p.MaxControllers
}

// Actor is who asks for something: the subject (an API key's name, a JWT
// subject, or "ip:<addr>" when the service runs without keys), the
// session it acts through (empty for a REST call made outside one), and
// whether it is an admin.
type Actor struct {
	Subject string
	Session SessionID
	Admin   bool
}

// ControlHolder is a session in control of a device, or waiting for it.
type ControlHolder struct {
	Session SessionID `json:"session_id"`
	// Subject is who acts through the session: an API key's name, a JWT
	// subject, or "ip:<addr>" when the service runs without keys.
	Subject string    `json:"subject"`
	Since   time.Time `json:"since"`
	// GraceUntil is set while the controller's client is disconnected:
	// control passes on at that instant unless it reconnects first.
	GraceUntil time.Time `json:"grace_until,omitzero"`
}

// Control is who controls one device and who waits for it. Its methods
// are pure: they change the value and report what changed, and leave it
// unchanged when they return an error.
type Control struct {
	Device      DeviceID        `json:"device_id"`
	Controllers []ControlHolder `json:"controllers"`
	Queue       []ControlHolder `json:"queue"`
	// Version counts changes; stores use it to detect concurrent writers.
	Version int64 `json:"version"`
}

// ControlOutcome says where a request for control left its session.
type ControlOutcome string

// Outcomes of RequestControl.
const (
	ControlGranted ControlOutcome = "granted"
	ControlQueued  ControlOutcome = "queued"
)

// Empty reports whether no one controls or waits for the device.
func (c *Control) Empty() bool { return len(c.Controllers) == 0 && len(c.Queue) == 0 }

// Controls reports whether session s is one of the device's controllers.
func (c *Control) Controls(s SessionID) bool { return holderIndex(c.Controllers, s) >= 0 }

// Position returns s's 1-based place in the queue, or 0 when it is not
// queued.
func (c *Control) Position(s SessionID) int { return holderIndex(c.Queue, s) + 1 }

// Request asks control of the device for h. A controller stays one (and
// a disconnected one is reconnected); a queued session keeps its place;
// otherwise h becomes a controller if fewer than the policy's maximum
// hold control, and joins the back of the queue if not. It returns
// ErrInvalidRequest when h names no session or no subject.
func (c *Control) Request(h ControlHolder, p ControlPolicy, now time.Time) (ControlOutcome, error) {
	if h.Session == "" || h.Subject == "" {
		return "", fmt.Errorf("request control of %s: session and subject are required: %w", c.Device, ErrInvalidRequest)
	}
	c.Expire(p, now)
	if i := holderIndex(c.Controllers, h.Session); i >= 0 {
		if !c.Controllers[i].GraceUntil.IsZero() {
			c.Controllers[i].GraceUntil = time.Time{}
			c.Version++
		}
		return ControlGranted, nil
	}
	if holderIndex(c.Queue, h.Session) >= 0 {
		return ControlQueued, nil
	}
	h.Since, h.GraceUntil = now, time.Time{}
	c.Version++
	if len(c.Controllers) < p.max() {
		c.Controllers = append(c.Controllers, h)
		return ControlGranted, nil
	}
	c.Queue = append(c.Queue, h)
	return ControlQueued, nil
}

// Release gives up s's control or its place in the queue at once; the
// head of the queue takes a freed place. It reports whether s held or
// waited for control.
func (c *Control) Release(s SessionID, p ControlPolicy, now time.Time) bool {
	changed := false
	if i := holderIndex(c.Controllers, s); i >= 0 {
		c.Controllers = slices.Delete(c.Controllers, i, i+1)
		changed = true
	}
	if i := holderIndex(c.Queue, s); i >= 0 {
		c.Queue = slices.Delete(c.Queue, i, i+1)
		changed = true
	}
	if changed {
		c.Version++
		c.promote(p, now)
	}
	return changed
}

// Take gives h control at once, as an admin may: when every place is
// held, the controller that has held control longest loses it (it is
// returned) and becomes a viewer. h leaves the queue if it was in it.
// ErrInvalidRequest when h names no session or no subject.
func (c *Control) Take(h ControlHolder, p ControlPolicy, now time.Time) ([]ControlHolder, error) {
	if h.Session == "" || h.Subject == "" {
		return nil, fmt.Errorf("take control of %s: session and subject are required: %w", c.Device, ErrInvalidRequest)
	}
	c.Expire(p, now)
	if i := holderIndex(c.Controllers, h.Session); i >= 0 {
		c.Controllers[i].GraceUntil = time.Time{}
		c.Version++
		return nil, nil
	}
	if i := holderIndex(c.Queue, h.Session); i >= 0 {
		c.Queue = slices.Delete(c.Queue, i, i+1)
	}
	var displaced []ControlHolder
	for len(c.Controllers) >= p.max() {
		displaced = append(displaced, c.Controllers[0])
		c.Controllers = slices.Delete(c.Controllers, 0, 1)
	}
	h.Since, h.GraceUntil = now, time.Time{}
	c.Controllers = append(c.Controllers, h)
	c.Version++
	return displaced, nil
}

// Disconnect records that s's client went away. A controller keeps
// control until the policy's grace has passed (Expire then releases it);
// with no grace, or for a queued session, it is released at once. It
// reports whether anything changed.
func (c *Control) Disconnect(s SessionID, p ControlPolicy, now time.Time) bool {
	i := holderIndex(c.Controllers, s)
	if i < 0 || p.Grace <= 0 {
		return c.Release(s, p, now)
	}
	if !c.Controllers[i].GraceUntil.IsZero() {
		return false
	}
	c.Controllers[i].GraceUntil = now.Add(p.Grace)
	c.Version++
	return true
}

// Expire releases the controllers whose grace has passed at now, lets the
// queue move up, and returns who was released.
func (c *Control) Expire(p ControlPolicy, now time.Time) []ControlHolder {
	var gone []ControlHolder
	c.Controllers = slices.DeleteFunc(c.Controllers, func(h ControlHolder) bool {
		if !h.GraceUntil.IsZero() && !now.Before(h.GraceUntil) {
			gone = append(gone, h)
			return true
		}
		return false
	})
	if len(gone) > 0 {
		c.Version++
	}
	c.promote(p, now)
	return gone
}

// Retain drops every controller and queued session whose subject keep
// refuses (a reservation began for someone else), lets the queue move up
// with those kept, and returns who was dropped.
func (c *Control) Retain(keep func(subject string) bool, p ControlPolicy, now time.Time) []ControlHolder {
	var gone []ControlHolder
	drop := func(h ControlHolder) bool {
		if keep(h.Subject) {
			return false
		}
		gone = append(gone, h)
		return true
	}
	c.Controllers = slices.DeleteFunc(c.Controllers, drop)
	c.Queue = slices.DeleteFunc(c.Queue, drop)
	if len(gone) > 0 {
		c.Version++
	}
	c.promote(p, now)
	return gone
}

// NextGrace returns the earliest instant a disconnected controller's
// grace ends, and false when no controller is disconnected.
func (c *Control) NextGrace() (time.Time, bool) {
	var next time.Time
	for _, h := range c.Controllers {
		if !h.GraceUntil.IsZero() && (next.IsZero() || h.GraceUntil.Before(next)) {
			next = h.GraceUntil
		}
	}
	return next, !next.IsZero()
}

// promote moves queued sessions into free places, oldest first.
func (c *Control) promote(p ControlPolicy, now time.Time) {
	for len(c.Controllers) < p.max() && len(c.Queue) > 0 {
		h := c.Queue[0]
		c.Queue = slices.Delete(c.Queue, 0, 1)
		h.Since = now
		c.Controllers = append(c.Controllers, h)
		c.Version++
	}
}

// Clone returns a copy of c that shares no slices with it.
func (c Control) Clone() Control {
	c.Controllers = slices.Clone(c.Controllers)
	c.Queue = slices.Clone(c.Queue)
	return c
}

func holderIndex(hs []ControlHolder, s SessionID) int {
	return slices.IndexFunc(hs, func(h ControlHolder) bool { return h.Session == s })
}
