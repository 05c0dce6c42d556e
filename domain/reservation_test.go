package domain

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func res(id, subject string, start, until time.Duration) Reservation {
	return Reservation{ID: id, Subject: subject, Start: t0.Add(start), Until: t0.Add(until)}
}

func TestReservationAdd(t *testing.T) {
	p := ReservationPolicy{MaxDuration: 2 * time.Hour, MaxAhead: 24 * time.Hour}
	for _, tc := range []struct {
		name string
		r    Reservation
		want error
	}{
		{"now", Reservation{ID: "n", Subject: "s", Until: t0.Add(time.Hour)}, nil},
		{"ahead", res("n", "s", 3*time.Hour, 4*time.Hour), nil},
		{"adjacent before", res("n", "s", 0, time.Hour), nil},
		{"adjacent after", res("n", "s", 2*time.Hour, 3*time.Hour), nil},
		{"slack", res("n", "s", -500*time.Millisecond, time.Hour), nil},
		{"no id", res("", "s", 0, time.Hour), ErrInvalidRequest},
		{"no subject", res("n", "", 0, time.Hour), ErrInvalidRequest},
		{"id taken", res("e", "s", 3*time.Hour, 4*time.Hour), ErrConflict},
		{"past", res("n", "s", -time.Minute, time.Hour), ErrInvalidRequest},
		{"ends before start", res("n", "s", 3*time.Hour, 3*time.Hour), ErrInvalidRequest},
		{"ended", res("n", "s", 0, -time.Minute), ErrInvalidRequest},
		{"too long", res("n", "s", 3*time.Hour, 6*time.Hour), ErrInvalidRequest},
		{"too far ahead", res("n", "s", 25*time.Hour, 26*time.Hour), ErrInvalidRequest},
		{"overlaps", res("n", "s", 30*time.Minute, 90*time.Minute), ErrReserved},
		{"covers", res("n", "s", 59*time.Minute, 2*time.Hour+time.Minute), ErrReserved},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := Reservations{Device: "d", List: []Reservation{res("e", "other", time.Hour, 2*time.Hour)}}
			before := rs.Version
			got, err := rs.Add(tc.r, p, t0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Add = %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				if len(rs.List) != 1 || rs.Version != before {
					t.Fatalf("refused Add changed the list: %+v", rs)
				}
				var re *ReservedError
				if errors.As(err, &re) && (re.Subject != "other" || !re.Until.Equal(t0.Add(2*time.Hour))) {
					t.Fatalf("ReservedError = %+v, want other until +2h", re)
				}
				return
			}
			if got.Device != "d" || got.Start.Before(t0) || !got.CreatedAt.Equal(t0) || len(rs.List) != 2 {
				t.Fatalf("Add = %+v, list %+v", got, rs.List)
			}
			for i := 1; i < len(rs.List); i++ {
				if rs.List[i].Start.Before(rs.List[i-1].Start) {
					t.Fatalf("list not ordered by start: %+v", rs.List)
				}
			}
		})
	}
}

func TestReservationAllowsVisible(t *testing.T) {
	rs := Reservations{Device: "d", List: []Reservation{res("r", "alice", 0, time.Hour)}}
	err := rs.Allows("bob", t0.Add(time.Minute))
	var re *ReservedError
	if !errors.As(err, &re) || re.Subject != "alice" || !errors.Is(err, ErrReserved) {
		t.Fatalf("Allows(bob) = %v, want ReservedError for alice", err)
	}
	if !strings.Contains(err.Error(), "alice") || !strings.Contains(err.Error(), "2030-01-02T04:04:05Z") {
		t.Fatalf("error %q names neither who nor until", err)
	}
	if err := rs.Allows("alice", t0); err != nil {
		t.Fatalf("Allows(alice) = %v", err)
	}
	if err := rs.Allows("bob", t0.Add(time.Hour)); err != nil {
		t.Fatalf("Allows after the end = %v", err)
	}
	if err := rs.Allows("bob", t0.Add(-time.Second)); err != nil {
		t.Fatalf("Allows before the start = %v", err)
	}
	if !rs.Visible("bob", ReservationPolicy{}, t0) {
		t.Fatal("hidden without Hide")
	}
	if rs.Visible("bob", ReservationPolicy{Hide: true}, t0) || !rs.Visible("alice", ReservationPolicy{Hide: true}, t0) {
		t.Fatal("Hide does not hide from bob only")
	}
}

func TestReservationExtendCancelPrune(t *testing.T) {
	p := ReservationPolicy{MaxDuration: 3 * time.Hour}
	rs := Reservations{Device: "d", List: []Reservation{res("a", "alice", 0, time.Hour), res("b", "bob", 2*time.Hour, 3*time.Hour)}}
	if r, err := rs.Extend("a", t0.Add(2*time.Hour), p, t0); err != nil || !r.Until.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("Extend to the next start = %+v, %v", r, err)
	}
	if _, err := rs.Extend("a", t0.Add(150*time.Minute), p, t0); !errors.Is(err, ErrReserved) {
		t.Fatalf("Extend into the next = %v, want ErrReserved", err)
	}
	if _, err := rs.Extend("b", t0.Add(6*time.Hour), p, t0); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("Extend past the maximum = %v, want ErrInvalidRequest", err)
	}
	if _, err := rs.Extend("a", t0, p, t0); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("Extend to now = %v, want ErrInvalidRequest", err)
	}
	if _, err := rs.Extend("zz", t0.Add(time.Hour), p, t0); !errors.Is(err, ErrReservationNotFound) {
		t.Fatalf("Extend of a stranger = %v", err)
	}
	if r, err := rs.Extend("a", t0.Add(30*time.Minute), p, t0); err != nil || !r.Until.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("shorten = %+v, %v", r, err)
	}
	if _, err := rs.Cancel("zz", t0); !errors.Is(err, ErrReservationNotFound) {
		t.Fatalf("Cancel of a stranger = %v", err)
	}
	if r, err := rs.Cancel("b", t0); err != nil || r.Subject != "bob" || len(rs.List) != 1 {
		t.Fatalf("Cancel(b) = %+v, %v; list %+v", r, err, rs.List)
	}
	if !rs.LastUntil().Equal(t0.Add(30 * time.Minute)) {
		t.Fatalf("LastUntil = %v", rs.LastUntil())
	}
	if gone := rs.Prune(t0.Add(30 * time.Minute)); len(gone) != 1 || len(rs.List) != 0 {
		t.Fatalf("Prune = %v, list %v", gone, rs.List)
	}
}

func TestAuditFilterAndText(t *testing.T) {
	e := AuditEvent{Time: t0, Device: "d", Subject: "alice"}
	for _, tc := range []struct {
		f    AuditFilter
		want bool
	}{
		{AuditFilter{}, true},
		{AuditFilter{Device: "d", Subject: "alice", Since: t0}, true},
		{AuditFilter{Device: "x"}, false},
		{AuditFilter{Subject: "bob"}, false},
		{AuditFilter{Since: t0.Add(time.Nanosecond)}, false},
	} {
		if got := tc.f.Match(e); got != tc.want {
			t.Errorf("%+v.Match = %v, want %v", tc.f, got, tc.want)
		}
	}
	if (AuditFilter{}).Count() != DefaultAuditLimit || (AuditFilter{Limit: 1e6}).Count() != MaxAuditLimit || (AuditFilter{Limit: 5}).Count() != 5 {
		t.Error("Count does not clamp")
	}
	if got := TextDetail("héllo", false); got != "length 5" {
		t.Errorf("TextDetail = %q", got)
	}
	if got := TextDetail("a\"b", true); got != `length 3 text "a\"b"` {
		t.Errorf("TextDetail recorded = %q", got)
	}
}
