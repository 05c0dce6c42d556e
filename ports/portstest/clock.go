package portstest

import (
	"sync"
	"time"

	"mediasvc/ports"
)

// Clock is a fake ports.Clock: its time moves only by Advance, which fires
// the timers that fall due, in deadline order. A timer's C holds one time;
// an AfterFunc timer's function runs on its own goroutine.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*clockTimer]struct{} // pending
}

var _ ports.Clock = (*Clock)(nil)

// NewClock returns a clock reading now.
func NewClock(now time.Time) *Clock {
	return &Clock{now: now, timers: map[*clockTimer]struct{}{}}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires d from now.
func (c *Clock) NewTimer(d time.Duration) ports.Timer {
	t := &clockTimer{c: c, ch: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

// AfterFunc returns a timer that calls f on its own goroutine d from now.
func (c *Clock) AfterFunc(d time.Duration, f func()) ports.Timer {
	t := &clockTimer{c: c, f: f}
	t.Reset(d)
	return t
}

// Pending returns how many timers are armed.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Advance moves the clock d forward, firing every timer due by then in
// deadline order, the clock reading each one's deadline as it fires.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	end := c.now.Add(d)
	for {
		var next *clockTimer
		for t := range c.timers {
			if !t.at.After(end) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			break
		}
		delete(c.timers, next)
		if next.at.After(c.now) {
			c.now = next.at
		}
		next.fire(c.now)
	}
	c.now = end
}

type clockTimer struct {
	c  *Clock
	ch chan time.Time
	f  func()
	at time.Time
}

// fire runs with c.mu held.
func (t *clockTimer) fire(now time.Time) {
	if t.f != nil {
		go t.f()
		return
	}
	select {
	case t.ch <- now:
	default:
	}
}

func (t *clockTimer) C() <-chan time.Time { return t.ch }

func (t *clockTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, pending := t.c.timers[t]
	if t.ch != nil {
		select { // drop a time not yet received
		case <-t.ch:
		default:
		}
	}
	t.at = t.c.now.Add(d)
	if d <= 0 {
		delete(t.c.timers, t)
		t.fire(t.c.now)
		return pending
	}
	t.c.timers[t] = struct{}{}
	return pending
}

func (t *clockTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, pending := t.c.timers[t]
	delete(t.c.timers, t)
	return pending
}
