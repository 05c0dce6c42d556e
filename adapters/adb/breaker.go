package adb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sony/gobreaker/v2"

	"mediasvc/domain"
)

// BreakerOptions tunes the circuit breaker each device gets.
type BreakerOptions struct {
	// Failures is how many consecutive failures open it (default 3).
	Failures int
	// OpenFor is how long it stays open before one half-open probe
	// (default 30 s).
	OpenFor time.Duration
	// Interval clears the failure counts while closed (default 60 s).
	Interval time.Duration
}

// breaker wraps capture starts and device commands of one device.
type breaker struct {
	cb *gobreaker.CircuitBreaker[any]
}

func newBreaker(serial string, o BreakerOptions, onChange func(from, to domain.BreakerState)) *breaker {
	if o.Failures <= 0 {
		o.Failures = 3
	}
	if o.OpenFor <= 0 {
		o.OpenFor = 30 * time.Second
	}
	if o.Interval <= 0 {
		o.Interval = time.Minute
	}
	n := uint32(o.Failures)
	return &breaker{cb: gobreaker.NewCircuitBreaker[any](gobreaker.Settings{
		Name:        serial,
		MaxRequests: 1,
		Interval:    o.Interval,
		Timeout:     o.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= n },
		// The caller giving up is not the device failing.
		IsExcluded: func(err error) bool {
			return errors.Is(err, context.Canceled) || errors.Is(err, errNotFailure) || errors.Is(err, domain.ErrDeviceNotFound)
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if onChange != nil {
				onChange(breakerState(from), breakerState(to))
			}
		},
	})}
}

// errNotFailure marks an error that the breaker must not count (a device
// that is simply not there, a caller's mistake).
var errNotFailure = errors.New("not a device failure")

func breakerState(s gobreaker.State) domain.BreakerState {
	switch s {
	case gobreaker.StateOpen:
		return domain.BreakerOpen
	case gobreaker.StateHalfOpen:
		return domain.BreakerHalfOpen
	}
	return domain.BreakerClosed
}

// State returns the breaker's state now.
func (b *breaker) State() domain.BreakerState { return breakerState(b.cb.State()) }

// Do runs fn through the breaker. When the breaker is open (or a half-open
// probe is already running) it returns domain.ErrDeviceUnavailable at once.
func (b *breaker) Do(fn func() error) error {
	_, err := b.cb.Execute(func() (any, error) { return nil, fn() })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return fmt.Errorf("device %s: circuit breaker %s: %w", b.cb.Name(), err, domain.ErrDeviceUnavailable)
	}
	return err
}

// Fail records a failure seen outside Do (a capture that died mid-stream).
func (b *breaker) Fail(err error) {
	_ = b.Do(func() error { return err })
}
