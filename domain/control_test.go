package domain

import (
	"errors"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func holder(s string) ControlHolder { return ControlHolder{Session: SessionID(s), Subject: "sub-" + s} }

func sessions(hs []ControlHolder) []SessionID {
	out := []SessionID{}
	for _, h := range hs {
		out = append(out, h.Session)
	}
	return out
}

func wantControl(t *testing.T, c Control, controllers, queue []SessionID) {
	t.Helper()
	if got := sessions(c.Controllers); !slices.Equal(got, controllers) {
		t.Fatalf("controllers = %v, want %v", got, controllers)
	}
	if got := sessions(c.Queue); !slices.Equal(got, queue) {
		t.Fatalf("queue = %v, want %v", got, queue)
	}
}

func TestControlRequestQueueRelease(t *testing.T) {
	p := ControlPolicy{MaxControllers: 1}
	c := Control{Device: "d"}
	for _, tc := range []struct {
		s    string
		want ControlOutcome
	}{{"a", ControlGranted}, {"b", ControlQueued}, {"c", ControlQueued}, {"a", ControlGranted}, {"b", ControlQueued}} {
		got, err := c.Request(holder(tc.s), p, t0)
		if err != nil || got != tc.want {
			t.Fatalf("Request(%s) = %v, %v; want %v", tc.s, got, err, tc.want)
		}
	}
	wantControl(t, c, []SessionID{"a"}, []SessionID{"b", "c"})
	if c.Position("c") != 2 || c.Position("a") != 0 || !c.Controls("a") {
		t.Fatalf("Position(c) = %d, Position(a) = %d, Controls(a) = %v", c.Position("c"), c.Position("a"), c.Controls("a"))
	}
	v := c.Version
	if !c.Release("a", p, t0.Add(time.Second)) {
		t.Fatal("Release(a) = false")
	}
	wantControl(t, c, []SessionID{"b"}, []SessionID{"c"})
	if !c.Controllers[0].Since.Equal(t0.Add(time.Second)) {
		t.Fatalf("promoted Since = %v, want the release instant", c.Controllers[0].Since)
	}
	if c.Version <= v {
		t.Fatal("Version did not grow")
	}
	if c.Release("zz", p, t0) {
		t.Fatal("Release of a stranger reported a change")
	}
	c.Release("c", p, t0)
	c.Release("b", p, t0)
	if !c.Empty() {
		t.Fatalf("not empty: %+v", c)
	}
}

func TestControlMaxControllers(t *testing.T) {
	p := ControlPolicy{MaxControllers: 2}
	c := Control{Device: "d"}
	for _, s := range []string{"a", "b", "c"} {
		if _, err := c.Request(holder(s), p, t0); err != nil {
			t.Fatal(err)
		}
	}
	wantControl(t, c, []SessionID{"a", "b"}, []SessionID{"c"})
	// Zero means one.
	c = Control{}
	c.Request(holder("a"), ControlPolicy{}, t0)
	if got, _ := c.Request(holder("b"), ControlPolicy{}, t0); got != ControlQueued {
		t.Fatalf("second Request with zero policy = %v, want queued", got)
	}
}

func TestControlRequestInvalid(t *testing.T) {
	c := Control{Device: "d"}
	for _, h := range []ControlHolder{{}, {Session: "a"}, {Subject: "x"}} {
		if _, err := c.Request(h, ControlPolicy{}, t0); !errors.Is(err, ErrInvalidRequest) {
			t.Fatalf("Request(%+v) = %v, want ErrInvalidRequest", h, err)
		}
		if _, err := c.Take(h, ControlPolicy{}, t0); !errors.Is(err, ErrInvalidRequest) {
			t.Fatalf("Take(%+v) = %v, want ErrInvalidRequest", h, err)
		}
	}
	if !c.Empty() || c.Version != 0 {
		t.Fatalf("refused requests changed control: %+v", c)
	}
}

func TestControlGrace(t *testing.T) {
	p := ControlPolicy{MaxControllers: 1, Grace: 10 * time.Second}
	c := Control{Device: "d"}
	c.Request(holder("a"), p, t0)
	c.Request(holder("b"), p, t0)
	if !c.Disconnect("a", p, t0) {
		t.Fatal("Disconnect(a) = false")
	}
	if c.Disconnect("a", p, t0.Add(time.Second)) {
		t.Fatal("second Disconnect moved the grace")
	}
	if next, ok := c.NextGrace(); !ok || !next.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("NextGrace = %v, %v", next, ok)
	}
	if gone := c.Expire(p, t0.Add(9*time.Second)); len(gone) != 0 {
		t.Fatalf("Expire before grace released %v", gone)
	}
	wantControl(t, c, []SessionID{"a"}, []SessionID{"b"})
	// Reconnecting within grace keeps control.
	if got, _ := c.Request(holder("a"), p, t0.Add(9*time.Second)); got != ControlGranted {
		t.Fatalf("reconnect = %v", got)
	}
	if _, ok := c.NextGrace(); ok {
		t.Fatal("grace still set after reconnect")
	}
	c.Disconnect("a", p, t0.Add(20*time.Second))
	gone := c.Expire(p, t0.Add(30*time.Second))
	if len(gone) != 1 || gone[0].Session != "a" {
		t.Fatalf("Expire = %v, want a", gone)
	}
	wantControl(t, c, []SessionID{"b"}, []SessionID{})
	// A queued session that disconnects leaves at once.
	c.Request(holder("c"), p, t0)
	c.Disconnect("c", p, t0)
	wantControl(t, c, []SessionID{"b"}, []SessionID{})
	// Without grace a controller leaves at once.
	c.Disconnect("b", ControlPolicy{}, t0)
	if !c.Empty() {
		t.Fatalf("not empty: %+v", c)
	}
}

func TestControlExpireInsideRequest(t *testing.T) {
	p := ControlPolicy{MaxControllers: 1, Grace: time.Second}
	c := Control{Device: "d"}
	c.Request(holder("a"), p, t0)
	c.Disconnect("a", p, t0)
	if got, _ := c.Request(holder("b"), p, t0.Add(2*time.Second)); got != ControlGranted {
		t.Fatalf("Request after the grace passed = %v, want granted", got)
	}
	wantControl(t, c, []SessionID{"b"}, []SessionID{})
}

func TestControlTake(t *testing.T) {
	p := ControlPolicy{MaxControllers: 2}
	c := Control{Device: "d"}
	for _, s := range []string{"a", "b", "c"} {
		c.Request(holder(s), p, t0)
	}
	gone, err := c.Take(holder("c"), p, t0)
	if err != nil || len(gone) != 1 || gone[0].Session != "a" {
		t.Fatalf("Take(c) = %v, %v; want a displaced", gone, err)
	}
	wantControl(t, c, []SessionID{"b", "c"}, []SessionID{})
	if gone, _ := c.Take(holder("c"), p, t0); len(gone) != 0 {
		t.Fatalf("Take by a controller displaced %v", gone)
	}
	gone, _ = c.Take(holder("x"), ControlPolicy{MaxControllers: 1}, t0)
	if len(gone) != 2 {
		t.Fatalf("Take under a lower maximum displaced %v, want both", gone)
	}
	wantControl(t, c, []SessionID{"x"}, []SessionID{})
}

func TestControlRetain(t *testing.T) {
	p := ControlPolicy{MaxControllers: 1}
	c := Control{Device: "d"}
	c.Request(holder("a"), p, t0)
	c.Request(ControlHolder{Session: "b", Subject: "bob"}, p, t0)
	c.Request(ControlHolder{Session: "c", Subject: "carol"}, p, t0)
	gone := c.Retain(func(s string) bool { return s == "carol" }, p, t0)
	if len(gone) != 2 {
		t.Fatalf("Retain dropped %v, want a and b", gone)
	}
	wantControl(t, c, []SessionID{"c"}, []SessionID{})
}

func TestControlClone(t *testing.T) {
	c := Control{Device: "d"}
	c.Request(holder("a"), ControlPolicy{}, t0)
	d := c.Clone()
	d.Controllers[0].Subject = "changed"
	if c.Controllers[0].Subject == "changed" {
		t.Fatal("Clone shares its slice")
	}
}
