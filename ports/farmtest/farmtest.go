// Package farmtest is the contract suite every ports.FarmStore and
// ports.AuditLog must pass. An implementation's tests call RunFarm and
// RunAudit with constructors:
//
//	func TestFarmContract(t *testing.T) {
//		farmtest.RunFarm(t, func(t *testing.T) ports.FarmStore { return memstore.NewFarm() })
//	}
//
// The suite uses fixed instants in 2030, never the wall clock, so a store
// that forgets reservations at their end keeps the suite's.
package farmtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
)

var base = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

var policy = domain.ControlPolicy{MaxControllers: 1, Grace: 5 * time.Second}

// RunFarm runs the FarmStore contract as subtests of t. newStore must
// return a new, empty store for each call.
func RunFarm(t *testing.T, newStore func(t *testing.T) ports.FarmStore) {
	t.Helper()
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, st ports.FarmStore)
	}{
		{"ControlEmpty", testControlEmpty},
		{"ControlRoundTrip", testControlRoundTrip},
		{"ControlFnError", testControlFnError},
		{"ControlEmptiedIsForgotten", testControlEmptied},
		{"ControlPerDevice", testControlPerDevice},
		{"ControlConcurrent", testControlConcurrent},
		{"ReservationsRoundTrip", testReservationsRoundTrip},
		{"ReservationsFnError", testReservationsFnError},
		{"ReservationsConcurrentOverlap", testReservationsConcurrent},
		{"ReservedDevices", testReservedDevices},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newStore(t)) })
	}
}

func request(s, subject string, at time.Duration) func(*domain.Control) error {
	return func(c *domain.Control) error {
		_, err := c.Request(domain.ControlHolder{Session: domain.SessionID(s), Subject: subject}, policy, base.Add(at))
		return err
	}
}

func mustControl(t *testing.T, st ports.FarmStore, d domain.DeviceID) domain.Control {
	t.Helper()
	c, err := st.Control(context.Background(), d)
	if err != nil {
		t.Fatalf("Control(%s) = %v", d, err)
	}
	return c
}

func holders(hs []domain.ControlHolder) []domain.SessionID {
	out := []domain.SessionID{}
	for _, h := range hs {
		out = append(out, h.Session)
	}
	return out
}

func testControlEmpty(t *testing.T, st ports.FarmStore) {
	c := mustControl(t, st, "dev1")
	if !c.Empty() || c.Device != "dev1" {
		t.Fatalf("Control of an uncontrolled device = %+v, want empty for dev1", c)
	}
}

func testControlRoundTrip(t *testing.T, st ports.FarmStore) {
	ctx := context.Background()
	if _, err := st.UpdateControl(ctx, "dev1", request("a", "alice", 0)); err != nil {
		t.Fatal(err)
	}
	want, err := st.UpdateControl(ctx, "dev1", func(c *domain.Control) error {
		if _, err := c.Request(domain.ControlHolder{Session: "b", Subject: "bob"}, policy, base.Add(time.Second)); err != nil {
			return err
		}
		c.Disconnect("a", policy, base.Add(2*time.Second))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := mustControl(t, st, "dev1")
	if got.Device != "dev1" || got.Version != want.Version || got.Version == 0 {
		t.Fatalf("Control = %+v, want device dev1 version %d", got, want.Version)
	}
	if !slices.Equal(holders(got.Controllers), []domain.SessionID{"a"}) || !slices.Equal(holders(got.Queue), []domain.SessionID{"b"}) {
		t.Fatalf("Control = %+v, want a in control and b queued", got)
	}
	a, b := got.Controllers[0], got.Queue[0]
	if a.Subject != "alice" || !a.Since.Equal(base) || !a.GraceUntil.Equal(base.Add(7*time.Second)) {
		t.Fatalf("controller = %+v, want alice since base, grace until base+7s", a)
	}
	if b.Subject != "bob" || !b.Since.Equal(base.Add(time.Second)) || !b.GraceUntil.IsZero() {
		t.Fatalf("queued = %+v", b)
	}
	// The returned value is the caller's: changing it changes nothing stored.
	got.Controllers[0].Subject = "mallory"
	if again := mustControl(t, st, "dev1"); again.Controllers[0].Subject != "alice" {
		t.Fatalf("the store shares memory with its callers: %+v", again)
	}
}

func testControlFnError(t *testing.T, st ports.FarmStore) {
	ctx := context.Background()
	if _, err := st.UpdateControl(ctx, "dev1", request("a", "alice", 0)); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	_, err := st.UpdateControl(ctx, "dev1", func(c *domain.Control) error {
		c.Release("a", policy, base)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateControl = %v, want fn's error", err)
	}
	if c := mustControl(t, st, "dev1"); !c.Controls("a") {
		t.Fatalf("a failed update was stored: %+v", c)
	}
}

func testControlEmptied(t *testing.T, st ports.FarmStore) {
	ctx := context.Background()
	st.UpdateControl(ctx, "dev1", request("a", "alice", 0))
	c, err := st.UpdateControl(ctx, "dev1", func(c *domain.Control) error {
		c.Release("a", policy, base)
		return nil
	})
	if err != nil || !c.Empty() {
		t.Fatalf("UpdateControl = %+v, %v", c, err)
	}
	if c := mustControl(t, st, "dev1"); !c.Empty() || c.Device != "dev1" {
		t.Fatalf("Control after the last release = %+v", c)
	}
}

func testControlPerDevice(t *testing.T, st ports.FarmStore) {
	ctx := context.Background()
	st.UpdateControl(ctx, "dev1", request("a", "alice", 0))
	st.UpdateControl(ctx, "dev2", request("b", "bob", 0))
	if c := mustControl(t, st, "dev1"); !slices.Equal(holders(c.Controllers), []domain.SessionID{"a"}) || len(c.Queue) != 0 {
		t.Fatalf("dev1 = %+v", c)
	}
	if c := mustControl(t, st, "dev2"); !slices.Equal(holders(c.Controllers), []domain.SessionID{"b"}) {
		t.Fatalf("dev2 = %+v", c)
	}
}

// testControlConcurrent has many writers request control of one device
// at once: every request must land (none lost to a concurrent write), and
// exactly one session controls.
func testControlConcurrent(t *testing.T, st ports.FarmStore) {
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			s := fmt.Sprintf("s%02d", i)
			if _, err := st.UpdateControl(context.Background(), "dev1", request(s, "sub"+s, 0)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent UpdateControl = %v", err)
	}
	c := mustControl(t, st, "dev1")
	all := append(holders(c.Controllers), holders(c.Queue)...)
	slices.Sort(all)
	if len(c.Controllers) != 1 || len(slices.Compact(all)) != n {
		t.Fatalf("after %d concurrent requests: %d controllers, %d distinct sessions (%v)", n, len(c.Controllers), len(all), all)
	}
}

func reserve(id, subject string, start, until time.Duration) func(*domain.Reservations) error {
	return func(rs *domain.Reservations) error {
		_, err := rs.Add(domain.Reservation{ID: id, Subject: subject, CreatedBy: subject, Start: base.Add(start), Until: base.Add(until)},
			domain.ReservationPolicy{MaxAhead: 24 * time.Hour}, base)
		return err
	}
}

func mustReservations(t *testing.T, st ports.FarmStore, d domain.DeviceID) domain.Reservations {
	t.Helper()
	rs, err := st.Reservations(context.Background(), d)
	if err != nil {
		t.Fatalf("Reservations(%s) = %v", d, err)
	}
	return rs
}

func testReservationsRoundTrip(t *testing.T, st ports.FarmStore) {
	ctx := context.Background()
	if rs := mustReservations(t, st, "dev1"); len(rs.List) != 0 || rs.Device != "dev1" {
		t.Fatalf("Reservations of an unreserved device = %+v", rs)
	}
	if _, err := st.UpdateReservations(ctx, "dev1", reserve("r2", "bob", 2*time.Hour, 3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateReservations(ctx, "dev1", reserve("r1", "alice", 0, time.Hour)); err != nil {
		t.Fatal(err)
	}
	rs := mustReservations(t, st, "dev1")
	if len(rs.List) != 2 || rs.List[0].ID != "r1" || rs.List[1].ID != "r2" || rs.Version != 2 {
		t.Fatalf("Reservations = %+v, want r1 then r2 at version 2", rs)
	}
	r := rs.List[0]
	if r.Device != "dev1" || r.Subject != "alice" || r.CreatedBy != "alice" || !r.Start.Equal(base) || !r.Until.Equal(base.Add(time.Hour)) || !r.CreatedAt.Equal(base) {
		t.Fatalf("r1 = %+v", r)
	}
	if _, err := st.UpdateReservations(ctx, "dev1", func(rs *domain.Reservations) error {
		_, err := rs.Cancel("r1", base)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if rs := mustReservations(t, st, "dev1"); len(rs.List) != 1 || rs.List[0].ID != "r2" {
		t.Fatalf("after Cancel = %+v", rs)
	}
}

func testReservationsFnError(t *testing.T, st ports.FarmStore) {
	ctx := context.Background()
	st.UpdateReservations(ctx, "dev1", reserve("r1", "alice", 0, time.Hour))
	_, err := st.UpdateReservations(ctx, "dev1", reserve("r2", "bob", 30*time.Minute, 2*time.Hour))
	if !errors.Is(err, domain.ErrReserved) {
		t.Fatalf("overlapping reservation = %v, want ErrReserved", err)
	}
	if rs := mustReservations(t, st, "dev1"); len(rs.List) != 1 {
		t.Fatalf("a refused reservation was stored: %+v", rs)
	}
}

// testReservationsConcurrent books one slot from many writers at once:
// exactly one wins, the others see it and are refused.
func testReservationsConcurrent(t *testing.T, st ports.FarmStore) {
	const n = 12
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, reserved := 0, 0
	for i := range n {
		wg.Go(func() {
			_, err := st.UpdateReservations(context.Background(), "dev1", reserve(fmt.Sprint("r", i), fmt.Sprint("s", i), 0, time.Hour))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, domain.ErrReserved):
				reserved++
			default:
				t.Errorf("UpdateReservations = %v", err)
			}
		})
	}
	wg.Wait()
	if won != 1 || reserved != n-1 {
		t.Fatalf("%d won and %d were refused, want 1 and %d", won, reserved, n-1)
	}
	if rs := mustReservations(t, st, "dev1"); len(rs.List) != 1 {
		t.Fatalf("Reservations = %+v, want one", rs)
	}
}

func testReservedDevices(t *testing.T, st ports.FarmStore) {
	ctx := context.Background()
	st.UpdateReservations(ctx, "dev1", reserve("r1", "alice", 0, time.Hour))
	st.UpdateReservations(ctx, "dev2", reserve("r2", "bob", 0, time.Hour))
	st.UpdateControl(ctx, "dev3", request("a", "alice", 0))
	got, err := st.ReservedDevices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []domain.DeviceID{"dev1", "dev2"}) {
		t.Fatalf("ReservedDevices = %v, want dev1 dev2", got)
	}
}

// RunAudit runs the AuditLog contract as subtests of t. newLog must
// return a new, empty log that keeps about capacity events (a stream
// trimmed approximately may keep up to one storage node more).
func RunAudit(t *testing.T, newLog func(t *testing.T, capacity int) ports.AuditLog) {
	t.Helper()
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, newLog func(t *testing.T, capacity int) ports.AuditLog)
	}{
		{"RecordQuery", testAuditRecordQuery},
		{"Limit", testAuditLimit},
		{"Bounded", testAuditBounded},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newLog) })
	}
}

func event(i int, dev, subject string) domain.AuditEvent {
	return domain.AuditEvent{
		Time: base.Add(time.Duration(i) * time.Second), Action: domain.AuditInput,
		Subject: subject, Session: domain.SessionID(fmt.Sprint("s", i)), Device: domain.DeviceID(dev),
		Outcome: domain.OutcomeOK, Detail: fmt.Sprint("n=", i), Instance: "i1",
	}
}

func mustQuery(t *testing.T, l ports.AuditLog, f domain.AuditFilter) []domain.AuditEvent {
	t.Helper()
	got, err := l.Query(context.Background(), f)
	if err != nil {
		t.Fatalf("Query(%+v) = %v", f, err)
	}
	return got
}

func details(es []domain.AuditEvent) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Detail)
	}
	return out
}

func testAuditRecordQuery(t *testing.T, newLog func(t *testing.T, capacity int) ports.AuditLog) {
	l := newLog(t, 1000)
	ctx := context.Background()
	if got := mustQuery(t, l, domain.AuditFilter{}); len(got) != 0 {
		t.Fatalf("Query of an empty log = %v", got)
	}
	in := []domain.AuditEvent{event(0, "d1", "alice"), event(1, "d2", "alice"), event(2, "d1", "bob"), event(3, "d1", "alice")}
	for _, e := range in {
		if err := l.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	all := mustQuery(t, l, domain.AuditFilter{})
	if len(all) != 4 {
		t.Fatalf("Query = %d events, want 4", len(all))
	}
	seen := map[string]bool{}
	for i, e := range all {
		if e.ID == "" || seen[e.ID] {
			t.Fatalf("event %d has id %q, empty or repeated", i, e.ID)
		}
		seen[e.ID] = true
		want := in[i]
		if !e.Time.Equal(want.Time) {
			t.Fatalf("event %d time %v, want %v", i, e.Time, want.Time)
		}
		e.ID, e.Time = "", want.Time
		if e != want {
			t.Fatalf("event %d = %+v, want %+v", i, e, want)
		}
	}
	for _, tc := range []struct {
		f    domain.AuditFilter
		want []string
	}{
		{domain.AuditFilter{Device: "d1"}, []string{"n=0", "n=2", "n=3"}},
		{domain.AuditFilter{Subject: "alice"}, []string{"n=0", "n=1", "n=3"}},
		{domain.AuditFilter{Device: "d1", Subject: "alice", Since: base.Add(time.Second)}, []string{"n=3"}},
		{domain.AuditFilter{Since: base.Add(2 * time.Second)}, []string{"n=2", "n=3"}},
		{domain.AuditFilter{Device: "none"}, []string{}},
	} {
		if got := details(mustQuery(t, l, tc.f)); !slices.Equal(got, tc.want) {
			t.Errorf("Query(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
}

func testAuditLimit(t *testing.T, newLog func(t *testing.T, capacity int) ports.AuditLog) {
	l := newLog(t, 1000)
	for i := range 30 {
		dev := "d1"
		if i%2 == 1 {
			dev = "d2"
		}
		if err := l.Record(context.Background(), event(i, dev, "alice")); err != nil {
			t.Fatal(err)
		}
	}
	if got := details(mustQuery(t, l, domain.AuditFilter{Device: "d1", Limit: 3})); !slices.Equal(got, []string{"n=24", "n=26", "n=28"}) {
		t.Fatalf("newest 3 of d1 = %v", got)
	}
}

func testAuditBounded(t *testing.T, newLog func(t *testing.T, capacity int) ports.AuditLog) {
	const capacity, n = 50, 400
	l := newLog(t, capacity)
	for i := range n {
		if err := l.Record(context.Background(), event(i, "d1", "alice")); err != nil {
			t.Fatal(err)
		}
	}
	got := mustQuery(t, l, domain.AuditFilter{Limit: domain.MaxAuditLimit})
	if len(got) < capacity || len(got) > capacity+100 {
		t.Fatalf("a log of capacity %d kept %d of %d events", capacity, len(got), n)
	}
	if got[len(got)-1].Detail != fmt.Sprint("n=", n-1) || got[0].Detail == "n=0" {
		t.Fatalf("kept %s … %s, want the newest and not the oldest", got[0].Detail, got[len(got)-1].Detail)
	}
}
