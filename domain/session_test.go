package domain

import (
	"errors"
	"testing"
	"time"
)

func TestTransitions(t *testing.T) {
	all := []State{StateNew, StateNegotiating, StateConnected, StateClosed, StateFailed, StateExpired}
	allowed := map[[2]State]bool{
		{StateNew, StateNegotiating}: true, {StateNew, StateClosed}: true, {StateNew, StateFailed}: true, {StateNew, StateExpired}: true,
		{StateNegotiating, StateNegotiating}: true, {StateNegotiating, StateConnected}: true, {StateNegotiating, StateClosed}: true,
		{StateNegotiating, StateFailed}: true, {StateNegotiating, StateExpired}: true,
		{StateConnected, StateNegotiating}: true, {StateConnected, StateConnected}: true, {StateConnected, StateClosed}: true,
		{StateConnected, StateFailed}: true, {StateConnected, StateExpired}: true,
	}
	now := time.Unix(1000, 0)
	for _, from := range all {
		for _, to := range all {
			want := allowed[[2]State{from, to}]
			if got := CanTransition(from, to); got != want {
				t.Errorf("CanTransition(%s, %s) = %v, want %v", from, to, got, want)
			}
			s := NewSession("s", "d", RoleViewer, "o", time.Minute, now)
			s.State = from
			err := s.Transition(to, "why", now.Add(time.Second))
			if want {
				if err != nil || s.State != to || s.Reason != "why" || !s.UpdatedAt.Equal(now.Add(time.Second)) {
					t.Errorf("%s → %s: err %v, session %+v", from, to, err, s)
				}
			} else if !errors.Is(err, ErrInvalidTransition) || s.State != from {
				t.Errorf("%s → %s: err %v, state %s; want ErrInvalidTransition and no change", from, to, err, s.State)
			}
		}
	}
}

func TestFinalStates(t *testing.T) {
	for _, tc := range []struct {
		s     State
		final bool
	}{{StateNew, false}, {StateNegotiating, false}, {StateConnected, false}, {StateClosed, true}, {StateFailed, true}, {StateExpired, true}} {
		if tc.s.Final() != tc.final {
			t.Errorf("%s.Final() = %v", tc.s, !tc.final)
		}
	}
}

func TestTouchAndExpiry(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewSession("s", "d", RoleController, "o", 30*time.Second, now)
	if s.Expired(now.Add(29 * time.Second)) {
		t.Fatal("expired early")
	}
	if !s.Expired(now.Add(30 * time.Second)) {
		t.Fatal("not expired at TTL")
	}
	if err := s.Touch(now.Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if s.Expired(now.Add(49*time.Second)) || !s.Expired(now.Add(50*time.Second)) {
		t.Fatalf("touch did not move expiry to now+TTL: %v", s.ExpiresAt)
	}
	s.State = StateClosed
	before := s.ExpiresAt
	if err := s.Touch(now.Add(time.Hour)); !errors.Is(err, ErrSessionClosed) || s.ExpiresAt != before {
		t.Fatalf("touching a closed session: %v, expiry %v", err, s.ExpiresAt)
	}
}

func TestRoles(t *testing.T) {
	for _, tc := range []struct {
		r  Role
		ok bool
	}{{RoleViewer, true}, {RoleController, true}, {"", false}, {"admin", false}, {"Viewer", false}} {
		if tc.r.Valid() != tc.ok {
			t.Errorf("Role(%q).Valid() = %v", tc.r, !tc.ok)
		}
	}
}

func TestRateLimitErrorIs(t *testing.T) {
	var err error = &RateLimitError{Limit: "owner", RetryAfter: time.Second}
	if !errors.Is(err, ErrRateLimited) {
		t.Fatal("RateLimitError is not ErrRateLimited")
	}
	var rl *RateLimitError
	if !errors.As(errors.Join(errors.New("x"), err), &rl) || rl.RetryAfter != time.Second {
		t.Fatal("errors.As through a join failed")
	}
}
