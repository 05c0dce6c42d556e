package app_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"mediasvc/app"
	"mediasvc/domain"
	"mediasvc/ports"
)

// Sessions: expiry, keepalive, a store that loses or removes them, resync.

func TestExpiryClosesSession(t *testing.T) {
	clock := newClock()
	r := newRigOn(t, app.Config{SessionTTL: 50 * time.Millisecond}, newMemstore(), nil, onFakeClock(clock))
	ctx := context.Background()
	sess, token, _ := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	var ev events
	detach, _ := r.svc.Connect(ctx, sess.ID, token, ev.add)
	defer detach()
	start := clock.Now()
	advanceUntil(t, clock, 10*time.Millisecond, "expired bye", func() bool { return ev.has(domain.EventBye, "expired") })
	if lived := clock.Now().Sub(start); lived < 50*time.Millisecond {
		t.Fatalf("session expired after %v, before its TTL", lived)
	}
	if _, err := r.svc.Session(ctx, sess.ID); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("expired session still stored: %v", err)
	}
}

func TestConnectedSessionIsKeptAlive(t *testing.T) {
	const ttl = 90 * time.Millisecond
	clock := newClock()
	r := newRigOn(t, app.Config{SessionTTL: ttl}, newMemstore(), nil, onFakeClock(clock))
	ctx := context.Background()
	sess, _ := r.connect(t)
	// Ten keepalive periods, each ending with the session touched again
	// (and the reaper run), which is what keeps it: 300 ms of clock.
	for i := range 10 {
		clock.Advance(ttl / 3)
		eventually(t, fmt.Sprint("touch ", i), func() bool {
			got, err := r.svc.Session(ctx, sess.ID)
			return err == nil && got.ExpiresAt.Equal(clock.Now().Add(ttl))
		})
	}
}

func TestPanickingNotifyClosesOnlyThatSession(t *testing.T) {
	r := newRig(t, app.Config{})
	ctx := context.Background()
	bad, badTok, _ := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	good, goodTok, _ := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	d1, _ := r.svc.Connect(ctx, bad.ID, badTok, func(ev domain.SessionEvent) {
		if ev.Type == domain.EventState {
			panic("boom")
		}
	})
	defer d1()
	var ev events
	d2, _ := r.svc.Connect(ctx, good.ID, goodTok, ev.add)
	defer d2()
	for _, id := range []domain.SessionID{bad.ID, good.ID} {
		if _, err := r.svc.Offer(ctx, id, "offer"); err != nil {
			t.Fatal(err)
		}
	}
	r.mu.Lock()
	badOpts := r.opts[0]
	r.mu.Unlock()
	badOpts.OnState(ports.PeerConnected)
	eventually(t, "bad session closed", func() bool {
		_, err := r.svc.Session(ctx, bad.ID)
		return errors.Is(err, domain.ErrSessionNotFound)
	})
	if _, err := r.svc.Session(ctx, good.ID); err != nil {
		t.Fatalf("good session hurt: %v", err)
	}
}

func TestUnhealthyStoreRefusesCreationOnly(t *testing.T) {
	r := newRig(t, app.Config{})
	ctx := context.Background()
	sess, _ := r.connect(t)
	down := fmt.Errorf("ping: %w", domain.ErrUnavailable)
	r.unwell.Store(&down)
	if r.svc.Ready() {
		t.Fatal("Ready with the store down")
	}
	if _, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o"); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("CreateSession with the store down = %v, want ErrUnavailable", err)
	}
	// The live session still answers: its peer is local.
	if err := r.svc.RequestKeyframe(ctx, sess.ID); err != nil {
		t.Fatalf("RequestKeyframe on a live session with the store down = %v", err)
	}
	r.unwell.Store(nil)
	if !r.svc.Ready() {
		t.Fatal("not Ready once the store is back")
	}
}

// TestSessionRemovedElsewhereIsClosed: another instance deleted (or
// reaped) the session in the shared store; the keepalive notices and
// closes the local peer.
func TestSessionRemovedElsewhereIsClosed(t *testing.T) {
	clock := newClock()
	r := newRigOn(t, app.Config{SessionTTL: 90 * time.Millisecond, CleanupInterval: time.Hour}, newMemstore(), nil, onFakeClock(clock))
	sess, ev := r.connect(t)
	if _, err := r.store.Delete(context.Background(), sess.ID); err != nil {
		t.Fatal(err)
	}
	advanceUntil(t, clock, 10*time.Millisecond, "bye after the store lost the session", func() bool { return ev.has(domain.EventBye, "expired") })
}

// TestResyncPutsSessionsBack: the store came back empty; Resync writes
// the live sessions back with their state.
func TestResyncPutsSessionsBack(t *testing.T) {
	r := newRig(t, app.Config{SessionTTL: time.Minute})
	ctx := context.Background()
	sess, _ := r.connect(t)
	if _, err := r.store.Delete(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := r.svc.Session(ctx, sess.ID)
	if err != nil {
		t.Fatalf("session after Resync: %v", err)
	}
	if got.State != domain.StateConnected || got.DeviceID != "dev" || got.TokenHash != sess.TokenHash {
		t.Fatalf("session after Resync = %+v", got)
	}
	if err := r.svc.Resync(ctx); err != nil { // present: only touched
		t.Fatal(err)
	}
}

// TestSessionLostByStoreStillCloses: a store that lost a live session (a
// Redis restarted empty, before Resync) does not make it vanish here: it
// is still found, and closing it tells its socket bye (the e2e stress test
// lost byes this way: DELETE answered 404 and the session played on).
func TestSessionLostByStoreStillCloses(t *testing.T) {
	r := newRig(t, app.Config{SessionTTL: time.Minute})
	ctx := context.Background()
	sess, ev := r.connect(t)
	if _, err := r.store.Delete(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	got, err := r.svc.Session(ctx, sess.ID)
	if err != nil || got.ID != sess.ID || got.State != domain.StateConnected {
		t.Fatalf("live session the store lost = %+v, %v", got, err)
	}
	if err := r.svc.CloseSession(ctx, sess.ID, "deleted"); err != nil {
		t.Fatalf("close a live session the store lost: %v", err)
	}
	if !ev.has(domain.EventBye, "deleted") {
		t.Fatal("no bye for a live session the store lost")
	}
	if _, err := r.svc.Session(ctx, sess.ID); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("closed session = %v, want not found", err)
	}
}

func TestInstancesWithoutRegistry(t *testing.T) {
	r := newRig(t, app.Config{Instance: "solo"})
	ins, err := r.svc.Instances(context.Background())
	if err != nil || len(ins) != 1 || ins[0].ID != "solo" {
		t.Fatalf("Instances = %+v, %v", ins, err)
	}
}

// TestUnconnectedSessionRemovedElsewhereIsClosed: a session never offered
// has no keepalive; when another instance reaps it from the shared store,
// the watch still closes it here.
func TestUnconnectedSessionRemovedElsewhereIsClosed(t *testing.T) {
	clock := newClock()
	r := newRigOn(t, app.Config{SessionTTL: 80 * time.Millisecond, CleanupInterval: time.Hour}, newMemstore(), nil, onFakeClock(clock))
	ctx := context.Background()
	sess, token, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	if err != nil {
		t.Fatal(err)
	}
	var ev events
	detach, err := r.svc.Connect(ctx, sess.ID, token, ev.add)
	if err != nil {
		t.Fatal(err)
	}
	defer detach()
	if _, err := r.store.Delete(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	advanceUntil(t, clock, 10*time.Millisecond, "bye after another instance reaped it", func() bool { return ev.has(domain.EventBye, "expired") })
}
