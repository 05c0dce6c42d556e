package domain

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Callers wrap them with context (fmt.Errorf("...: %w", err));
// the HTTP adapter maps them to status codes in one table.
var (
	ErrSessionNotFound   = errors.New("session not found")
	ErrSessionExists     = errors.New("session already exists")
	ErrSessionClosed     = errors.New("session closed")
	ErrInvalidTransition = errors.New("invalid session state transition")
	ErrDeviceNotFound    = errors.New("device not found")
	ErrDeviceUnavailable = errors.New("device unavailable")
	// ErrInputBusy: the device's input queue is full (each shell input
	// starts a process on the phone); try again once it has caught up.
	ErrInputBusy         = errors.New("device input busy")
	ErrTooManyCandidates = errors.New("too many ICE candidates")
	ErrInvalidCandidate  = errors.New("invalid ICE candidate")
	ErrInvalidOffer      = errors.New("invalid SDP offer")
	ErrInvalidInput      = errors.New("invalid input")
	ErrInvalidRequest    = errors.New("invalid request")
	ErrRateLimited       = errors.New("rate limited")
	ErrLimitExceeded     = errors.New("session limit exceeded")
	ErrUnauthorized      = errors.New("unauthorized")
	ErrForbidden         = errors.New("forbidden")
	ErrConflict          = errors.New("conflict")
	ErrDraining          = errors.New("service is draining")
	ErrUnavailable       = errors.New("service unavailable")
	// ErrReservationNotFound: no reservation with that id on that device.
	ErrReservationNotFound = errors.New("reservation not found")
)

// RateLimitError is returned when a rate limit refuses a request. It matches
// ErrRateLimited with errors.Is and carries when to try again.
type RateLimitError struct {
	Limit      string
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("rate limited by %s, retry after %s", e.Limit, e.RetryAfter)
}

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }
