package app_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"mediasvc/adapters/memstore"
	"mediasvc/app"
	"mediasvc/domain"
	"mediasvc/ports/portstest"
)

// fakeClock is the farm tests' clock: portstest.Clock, moved by add.
type fakeClock struct{ *portstest.Clock }

func (c fakeClock) add(d time.Duration) { c.Advance(d) }

type notices struct {
	mu   sync.Mutex
	list []domain.Notice
}

func (n *notices) Notify(ev domain.Notice) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.list = append(n.list, ev)
}
func (n *notices) types() []domain.NoticeType {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []domain.NoticeType
	for _, e := range n.list {
		out = append(out, e.Type)
	}
	return out
}

type farmRig struct {
	farm  *app.Farm
	clock fakeClock
	audit *memstore.Audit
	store *memstore.Farm
	notes *notices
}

func newFarmRig(t *testing.T, cfg app.FarmConfig) *farmRig {
	t.Helper()
	clock := fakeClock{portstest.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))}
	r := &farmRig{clock: clock, audit: memstore.NewAudit(1000), store: memstore.NewFarm(clock.Now), notes: &notices{}}
	cfg.Instance = "i1"
	r.farm = app.NewFarm(cfg, r.store, r.audit, r.notes, clock, nil)
	return r
}

func (r *farmRig) actions(t *testing.T) []string {
	t.Helper()
	es, err := r.audit.Query(context.Background(), domain.AuditFilter{Limit: domain.MaxAuditLimit})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, string(e.Action)+":"+string(e.Session)+":"+e.Outcome)
	}
	return out
}

var (
	alice = app.Actor{Subject: "alice", Session: "sa"}
	bob   = app.Actor{Subject: "bob", Session: "sb"}
	admin = app.Actor{Subject: "root", Session: "sr", Admin: true}
)

func TestFarmHandoffAndAudit(t *testing.T) {
	r := newFarmRig(t, app.FarmConfig{Control: domain.ControlPolicy{MaxControllers: 1, Grace: 10 * time.Second}})
	ctx := context.Background()
	var seen []domain.Control
	var mu sync.Mutex
	cancel := r.farm.Watch("d", func(c domain.Control) { mu.Lock(); seen = append(seen, c); mu.Unlock() })
	defer cancel()

	if _, out, err := r.farm.RequestControl(ctx, alice, "d"); err != nil || out != domain.ControlGranted {
		t.Fatalf("alice RequestControl = %v, %v", out, err)
	}
	if _, out, _ := r.farm.RequestControl(ctx, bob, "d"); out != domain.ControlQueued {
		t.Fatalf("bob RequestControl = %v, want queued", out)
	}
	if err := r.farm.MayInput(ctx, bob, "d"); !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("queued bob MayInput = %v, want forbidden", err)
	}
	if err := r.farm.MayInput(ctx, alice, "d"); err != nil {
		t.Fatalf("alice MayInput = %v", err)
	}
	// Outside a session, the subject's controlling session counts.
	if err := r.farm.MayInput(ctx, app.Actor{Subject: "alice"}, "d"); err != nil {
		t.Fatalf("alice MayInput without a session = %v", err)
	}
	if _, err := r.farm.TakeControl(ctx, bob, "d"); !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("bob TakeControl = %v, want forbidden", err)
	}
	// Alice disconnects: she keeps control through the grace.
	r.farm.Disconnected(ctx, alice, "d")
	r.clock.add(5 * time.Second)
	if c, _ := r.farm.Control(ctx, "d"); !c.Controls("sa") {
		t.Fatalf("alice lost control within the grace: %+v", c)
	}
	r.clock.add(6 * time.Second)
	c, err := r.farm.Control(ctx, "d")
	if err != nil || c.Controls("sa") || !c.Controls("sb") {
		t.Fatalf("after the grace = %+v, %v; want bob in control", c, err)
	}
	// The admin takes control from bob.
	if c, err := r.farm.TakeControl(ctx, admin, "d"); err != nil || !c.Controls("sr") || c.Controls("sb") {
		t.Fatalf("admin TakeControl = %+v, %v", c, err)
	}
	mu.Lock()
	last := seen[len(seen)-1]
	n := len(seen)
	mu.Unlock()
	if !last.Controls("sr") || n < 4 {
		t.Fatalf("watcher saw %d states, the last %+v", n, last)
	}
	want := []string{
		"control_request:sa:granted", "control_request:sb:queued", "control_take:sb:forbidden",
		"control_release:sa:ok", "control_granted:sb:ok", "control_take:sr:ok", "control_lost:sb:ok",
	}
	if got := r.actions(t); !equal(got, want) {
		t.Fatalf("audit = %v\nwant %v", got, want)
	}
	for _, ty := range r.notes.types() {
		if ty != domain.NoticeControlChanged {
			t.Fatalf("notices = %v, want only control changes", r.notes.types())
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFarmReservations(t *testing.T) {
	r := newFarmRig(t, app.FarmConfig{Reservations: domain.ReservationPolicy{MaxAhead: time.Hour}})
	ctx := context.Background()
	now := r.clock.Now()
	r.farm.RequestControl(ctx, bob, "d")
	if _, err := r.farm.Reserve(ctx, bob, "d", "alice", time.Time{}, now.Add(time.Hour)); !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("bob booking for alice = %v, want forbidden", err)
	}
	res, err := r.farm.Reserve(ctx, alice, "d", "", time.Time{}, now.Add(time.Hour))
	if err != nil || res.Subject != "alice" || res.ID == "" {
		t.Fatalf("Reserve = %+v, %v", res, err)
	}
	// Bob was in control: the reservation took it from him.
	if c, _ := r.farm.Control(ctx, "d"); !c.Empty() {
		t.Fatalf("control after alice's reservation = %+v, want bob gone", c)
	}
	_, _, err = r.farm.RequestControl(ctx, bob, "d")
	var re *domain.ReservedError
	if !errors.As(err, &re) || re.Subject != "alice" || !re.Until.Equal(now.Add(time.Hour)) {
		t.Fatalf("bob RequestControl = %v, want ReservedError for alice", err)
	}
	if err := r.farm.Admit(ctx, bob, "d", domain.RoleController); !errors.Is(err, domain.ErrReserved) {
		t.Fatalf("Admit(bob, controller) = %v", err)
	}
	if err := r.farm.Admit(ctx, bob, "d", domain.RoleViewer); err != nil {
		t.Fatalf("Admit(bob, viewer) without hide = %v", err)
	}
	if _, _, err := r.farm.RequestControl(ctx, alice, "d"); err != nil {
		t.Fatalf("alice RequestControl = %v", err)
	}
	if _, _, err := r.farm.RequestControl(ctx, admin, "d"); err != nil {
		t.Fatalf("admin RequestControl on a reserved device = %v", err)
	}
	if _, err := r.farm.ExtendReservation(ctx, bob, "d", res.ID, now.Add(2*time.Hour)); !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("bob extends alice's = %v", err)
	}
	if got, err := r.farm.ExtendReservation(ctx, alice, "d", res.ID, now.Add(90*time.Minute)); err != nil || !got.Until.Equal(now.Add(90*time.Minute)) {
		t.Fatalf("ExtendReservation = %+v, %v", got, err)
	}
	list, _ := r.farm.AllReservations(ctx)
	if len(list) != 1 || list[0].ID != res.ID {
		t.Fatalf("AllReservations = %+v", list)
	}
	if _, err := r.farm.CancelReservation(ctx, alice, "d", res.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.farm.CancelReservation(ctx, alice, "d", res.ID); !errors.Is(err, domain.ErrReservationNotFound) {
		t.Fatalf("second cancel = %v", err)
	}
	got := r.notes.types()
	var starts, ends int
	for _, ty := range got {
		switch ty {
		case domain.NoticeReservationStart:
			starts++
		case domain.NoticeReservationEnd:
			ends++
		}
	}
	if starts != 1 || ends != 1 {
		t.Fatalf("notices = %v, want one start and one end", got)
	}
}

func TestFarmHideAndFutureReservation(t *testing.T) {
	r := newFarmRig(t, app.FarmConfig{Reservations: domain.ReservationPolicy{Hide: true, MaxAhead: time.Hour}, PollInterval: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	now := r.clock.Now()
	if _, err := r.farm.Reserve(ctx, alice, "d", "", now.Add(time.Minute), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !r.farm.Visible(ctx, bob, "d") {
		t.Fatal("device hidden before the reservation starts")
	}
	r.farm.RequestControl(ctx, bob, "d")
	stop := r.farm.Watch("d", func(domain.Control) {})
	defer stop()
	done := make(chan struct{})
	go func() { defer close(done); r.farm.Run(ctx) }()
	waitPending(t, r.clock)  // Run has armed its poll timer
	r.clock.add(time.Minute) // the poll falls due as the reservation begins
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, _ := r.farm.Control(ctx, "d")
		if c.Empty() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob kept control after alice's reservation began: %+v", c)
		}
		time.Sleep(time.Millisecond)
	}
	if r.farm.Visible(ctx, bob, "d") || !r.farm.Visible(ctx, alice, "d") || !r.farm.Visible(ctx, admin, "d") {
		t.Fatal("hide does not hide the device from bob only")
	}
	if err := r.farm.Admit(ctx, bob, "d", domain.RoleViewer); !errors.Is(err, domain.ErrReserved) {
		t.Fatalf("Admit(bob, viewer) with hide = %v", err)
	}
	cancel()
	<-done
}

func TestFarmRecordsTextByLength(t *testing.T) {
	r := newFarmRig(t, app.FarmConfig{})
	action, detail := r.farm.InputDetail(domain.InputEvent{Type: domain.InputText, Text: "secret"})
	if action != domain.AuditText || detail != "length 6" {
		t.Fatalf("InputDetail = %s %q", action, detail)
	}
	if action, detail := r.farm.InputDetail(domain.InputEvent{Type: domain.InputClipboard, Text: "pass"}); action != domain.AuditClipboard || detail != "length 4" {
		t.Fatalf("InputDetail(clipboard) = %s %q", action, detail)
	}
	r = newFarmRig(t, app.FarmConfig{RecordText: true})
	if _, detail := r.farm.InputDetail(domain.InputEvent{Type: domain.InputText, Text: "secret"}); detail != `length 6 text "secret"` {
		t.Fatalf("InputDetail with record_text = %q", detail)
	}
}

// TestFarmWatchDevicesOnClock: the device watch lists on the farm's clock,
// once per interval, so a fake clock drives it without real time passing.
func TestFarmWatchDevicesOnClock(t *testing.T) {
	r := newFarmRig(t, app.FarmConfig{})
	listings := [][]domain.Device{
		{{ID: "a", State: domain.DeviceOnline}},
		{{ID: "a", State: domain.DeviceOnline}, {ID: "b", State: domain.DeviceOnline}},
		{{ID: "b", State: domain.DeviceOnline}},
	}
	calls := make(chan int, len(listings))
	var n int
	list := func(context.Context) ([]domain.Device, error) {
		i := min(n, len(listings)-1)
		n++
		calls <- i
		return listings[i], nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.farm.WatchDevices(ctx, time.Hour, list) }()
	defer func() { cancel(); <-done }()
	for i := range listings {
		select {
		case got := <-calls:
			if got != i {
				t.Fatalf("listing %d, want %d", got, i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no listing %d after the clock moved an interval", i)
		}
		if i == len(listings)-1 {
			break
		}
		waitPending(t, r.clock) // the watch waits on its timer
		if len(calls) != 0 {
			t.Fatal("the watch listed again before its interval passed")
		}
		r.clock.add(time.Hour)
	}
	want := []domain.NoticeType{domain.NoticeDeviceOnline, domain.NoticeDeviceOffline}
	for deadline := time.Now().Add(10 * time.Second); len(r.notes.types()) < len(want); {
		if time.Now().After(deadline) {
			t.Fatalf("notices = %v, want %v", r.notes.types(), want)
		}
		time.Sleep(time.Millisecond)
	}
	got := r.notes.types()
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("notices = %v, want %v", got, want)
	}
}

// waitPending waits until a timer is armed on c, failing after 10 s: a
// loop that sleeps on real time instead never arms one.
func waitPending(t *testing.T, c fakeClock) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); c.Pending() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no timer armed on the clock after 10 s")
		}
	}
}

// TestFarmGuardUse: a push or install outside a session is open on a
// device nobody controls, refused (403) while somebody else controls it
// and (423) while it is reserved for another, allowed to the controller's
// own subject, and audited every time with its outcome.
func TestFarmGuardUse(t *testing.T) {
	r := newFarmRig(t, app.FarmConfig{Control: domain.ControlPolicy{MaxControllers: 1, Grace: time.Second}})
	ctx := context.Background()
	script := app.Actor{Subject: "ci"}
	ran := 0
	do := func() error { ran++; return nil }
	if err := r.farm.GuardUse(ctx, script, "d", domain.AuditInstall, "10 bytes", do); err != nil || ran != 1 {
		t.Fatalf("free device: %v (ran %d)", err, ran)
	}
	if _, _, err := r.farm.RequestControl(ctx, alice, "d"); err != nil {
		t.Fatal(err)
	}
	if err := r.farm.GuardUse(ctx, script, "d", domain.AuditFilePush, `"a", 1 bytes`, do); !errors.Is(err, domain.ErrForbidden) || ran != 1 {
		t.Fatalf("alice controls: %v (ran %d), want forbidden", err, ran)
	}
	if err := r.farm.GuardUse(ctx, app.Actor{Subject: "alice"}, "d", domain.AuditFilePush, `"a", 1 bytes`, do); err != nil || ran != 2 {
		t.Fatalf("alice herself: %v (ran %d)", err, ran)
	}
	if _, err := r.farm.ReleaseControl(ctx, alice, "d"); err != nil {
		t.Fatal(err)
	}
	now := r.clock.Now()
	if _, err := r.farm.Reserve(ctx, bob, "d", "bob", now, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var re *domain.ReservedError
	if err := r.farm.GuardUse(ctx, script, "d", domain.AuditInstall, "10 bytes", do); !errors.As(err, &re) || re.Subject != "bob" || ran != 2 {
		t.Fatalf("reserved for bob: %v (ran %d)", err, ran)
	}
	if err := r.farm.GuardUse(ctx, app.Actor{Subject: "bob"}, "d", domain.AuditInstall, "10 bytes", do); err != nil || ran != 3 {
		t.Fatalf("bob on his booking: %v (ran %d)", err, ran)
	}
	var got []string
	es, _ := r.audit.Query(ctx, domain.AuditFilter{Limit: domain.MaxAuditLimit})
	for _, e := range es {
		if e.Action == domain.AuditInstall || e.Action == domain.AuditFilePush {
			got = append(got, e.Subject+":"+string(e.Action)+":"+e.Outcome)
		}
	}
	want := []string{"ci:install:ok", "ci:file_push:forbidden", "alice:file_push:ok", "ci:install:reserved", "bob:install:ok"}
	if !equal(got, want) {
		t.Fatalf("audit = %v\nwant %v", got, want)
	}
}
