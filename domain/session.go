package domain

import (
	"fmt"
	"time"
)

// SessionID identifies one session; it is random and URL-safe.
type SessionID string

// DeviceID identifies a device; for ADB devices it is the adb serial.
type DeviceID string

// Role says what a session may do with its device.
type Role string

// Roles.
const (
	RoleViewer     Role = "viewer"
	RoleController Role = "controller"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleViewer || r == RoleController }

// State is where a session is in its life.
type State string

// Session states. New → Negotiating → Connected → Closed, and any live state
// may become Failed or Expired. Closed, Failed and Expired are final.
const (
	StateNew         State = "new"
	StateNegotiating State = "negotiating"
	StateConnected   State = "connected"
	StateClosed      State = "closed"
	StateFailed      State = "failed"
	StateExpired     State = "expired"
)

// Final reports whether no transition leaves s.
func (s State) Final() bool {
	return s == StateClosed || s == StateFailed || s == StateExpired
}

// transitions lists, for each state, the states it may move to.
var transitions = map[State][]State{
	StateNew:         {StateNegotiating, StateClosed, StateFailed, StateExpired},
	StateNegotiating: {StateNegotiating, StateConnected, StateClosed, StateFailed, StateExpired},
	StateConnected:   {StateNegotiating, StateConnected, StateClosed, StateFailed, StateExpired},
}

// CanTransition reports whether a session in state from may move to to.
// Negotiating → Negotiating and Connected → Negotiating are allowed because an
// offer may be renegotiated (ICE restart).
func CanTransition(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Session is one viewer of one device.
type Session struct {
	ID       SessionID
	DeviceID DeviceID
	Role     Role
	// Owner is who created the session: the API key's name, or "ip:<addr>"
	// when the service runs without keys. Per-owner limits count it.
	Owner string
	// TokenHash is the SHA-256 of the session's WebSocket token; the token
	// itself is never stored.
	TokenHash [32]byte
	// Kind says how the session was created: "ws" or "whep".
	Kind      string
	State     State
	Reason    string
	CreatedAt time.Time
	UpdatedAt time.Time
	ExpiresAt time.Time
	TTL       time.Duration
	// Instance is the id of the instance that holds the session's peer.
	Instance string
}

// NewSession returns a session in StateNew that expires ttl after now.
func NewSession(id SessionID, device DeviceID, role Role, owner string, ttl time.Duration, now time.Time) Session {
	return Session{
		ID: id, DeviceID: device, Role: role, Owner: owner,
		State: StateNew, CreatedAt: now, UpdatedAt: now,
		ExpiresAt: now.Add(ttl), TTL: ttl,
	}
}

// Transition moves s to state to, recording reason. It returns
// ErrInvalidTransition (wrapped) if the state machine forbids the move, and
// leaves s unchanged then.
func (s *Session) Transition(to State, reason string, now time.Time) error {
	if !CanTransition(s.State, to) {
		return fmt.Errorf("session %s: %s → %s: %w", s.ID, s.State, to, ErrInvalidTransition)
	}
	s.State = to
	s.Reason = reason
	s.UpdatedAt = now
	return nil
}

// Touch extends a live session's life to TTL after now. A final session is
// not extended; Touch returns ErrSessionClosed for it.
func (s *Session) Touch(now time.Time) error {
	if s.State.Final() {
		return fmt.Errorf("touch session %s: %w", s.ID, ErrSessionClosed)
	}
	s.ExpiresAt = now.Add(s.TTL)
	return nil
}

// Expired reports whether s has outlived its TTL at now.
func (s *Session) Expired(now time.Time) bool { return !now.Before(s.ExpiresAt) }

// Quota bounds how many sessions may exist; zero means unlimited.
type Quota struct {
	Total     int
	PerDevice int
	PerOwner  int
}

// QuotaUsage is how much of the quota stored sessions hold: in total, per
// device and per owner. The maps hold only devices and owners with at
// least one session.
type QuotaUsage struct {
	Total    int
	ByDevice map[DeviceID]int
	ByOwner  map[string]int
}
