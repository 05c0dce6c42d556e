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
	"mediasvc/ports"
	"mediasvc/ports/portstest"
)

// newMemBus is the in-memory bus network the instances of a test share.
func newMemBus() *memBus { return &memBus{portstest.NewBusNet()} }

type memBus struct{ *portstest.BusNet }

// on returns the bus as instance self sees it.
func (m *memBus) on(self string) ports.Bus { return m.On(self) }

// TestForwardedSignaling: a session created on a is driven entirely
// through b: socket, offer, candidates both ways, keyframe, stats, input
// refusal with its domain error intact, and close with bye.
func TestForwardedSignaling(t *testing.T) {
	store := memstore.New(memstore.Options{})
	bus := newMemBus()
	a := newRigOn(t, app.Config{Instance: "a"}, store, bus.on("a"))
	b := newRigOn(t, app.Config{Instance: "b"}, store, bus.on("b"))
	ctx := context.Background()
	eventually(t, "both serving", func() bool {
		return bus.Serving("a") && bus.Serving("b")
	})

	sess, token, err := a.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.Connect(ctx, sess.ID, "wrong", func(domain.SessionEvent) {}); !errors.Is(err, domain.ErrUnauthorized) {
		t.Fatalf("Connect on b with a wrong token = %v", err)
	}
	var ev events
	detach, err := b.svc.Connect(ctx, sess.ID, token, ev.add)
	if err != nil {
		t.Fatalf("Connect on b = %v", err)
	}
	defer detach()
	if _, err := b.svc.Connect(ctx, sess.ID, token, ev.add); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("second Connect = %v, want ErrConflict", err)
	}
	if _, err := b.svc.Offer(ctx, sess.ID, "offer"); err != nil {
		t.Fatalf("Offer on b = %v", err)
	}
	a.mu.Lock()
	peers, opts := len(a.peers), a.opts
	a.mu.Unlock()
	b.mu.Lock()
	bPeers := len(b.peers)
	b.mu.Unlock()
	if peers != 1 || bPeers != 0 {
		t.Fatalf("peers on a %d, on b %d; want the peer on a", peers, bPeers)
	}
	// A local candidate on a reaches the socket on b.
	opts[0].OnCandidate(domain.Candidate{Candidate: "candidate:1 1 udp 1 192.0.2.1 5000 typ host"})
	eventually(t, "candidate relayed", func() bool { return ev.has(domain.EventCandidate, "") })
	if err := b.svc.AddCandidate(ctx, sess.ID, domain.Candidate{Candidate: "candidate:1 1 udp 1 192.0.2.1 5001 typ host"}); err != nil {
		t.Fatalf("AddCandidate on b = %v", err)
	}
	if err := b.svc.AddCandidate(ctx, sess.ID, domain.Candidate{Candidate: "garbage"}); !errors.Is(err, domain.ErrInvalidCandidate) {
		t.Fatalf("bad candidate on b = %v, want ErrInvalidCandidate", err)
	}
	if err := b.svc.RequestKeyframe(ctx, sess.ID); err != nil {
		t.Fatalf("RequestKeyframe on b = %v", err)
	}
	if _, err := b.svc.SessionStats(ctx, sess.ID); err != nil {
		t.Fatalf("SessionStats on b = %v", err)
	}
	if err := b.svc.Input(ctx, sess.ID, domain.InputEvent{Type: domain.InputTap}); !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("viewer input on b = %v, want ErrForbidden", err)
	}
	if err := b.svc.CloseSession(ctx, sess.ID, "deleted"); err != nil {
		t.Fatalf("CloseSession on b = %v", err)
	}
	eventually(t, "bye relayed", func() bool { return ev.has(domain.EventBye, "deleted") })
	a.mu.Lock()
	closed := a.peers[0].Closed.Load() > 0
	a.mu.Unlock()
	if !closed {
		t.Fatal("peer on a not closed")
	}
}

// TestForwardToDeadInstance: the holder is gone; requests answer
// ErrUnavailable, not a hang.
func TestForwardToDeadInstance(t *testing.T) {
	store := memstore.New(memstore.Options{})
	bus := newMemBus()
	b := newRigOn(t, app.Config{Instance: "b"}, store, bus.on("b"))
	s := domain.NewSession("x", "dev", domain.RoleViewer, "o", time.Minute, time.Now())
	s.Instance = "gone"
	if err := store.Create(context.Background(), s, domain.Quota{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.Offer(context.Background(), "x", "offer"); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Offer for a session on a dead instance = %v, want ErrUnavailable", err)
	}
}

// fixedLeases says one instance holds every device.
type fixedLeases struct{ holder string }

func (f fixedLeases) Acquire(_ context.Context, d domain.DeviceID, h string) (domain.Lease, error) {
	if h != f.holder {
		return domain.Lease{}, domain.ErrConflict
	}
	return domain.Lease{Device: d, Holder: h, Token: 1}, nil
}
func (fixedLeases) Renew(context.Context, domain.Lease) error   { return nil }
func (fixedLeases) Release(context.Context, domain.Lease) error { return nil }
func (f fixedLeases) Holder(context.Context, domain.DeviceID) (string, error) {
	return f.holder, nil
}

// TestCreateForwardedToOwner: a session asked of b for a device a owns
// is created on a, and WHEP too; limits apply where the request arrived.
func TestCreateForwardedToOwner(t *testing.T) {
	store := memstore.New(memstore.Options{})
	bus := newMemBus()
	withLeases := func(d *app.Deps) { d.Leases = fixedLeases{holder: "a"} }
	a := newRigOn(t, app.Config{Instance: "a"}, store, bus.on("a"), withLeases)
	b := newRigOn(t, app.Config{Instance: "b", Quota: domain.Quota{PerDevice: 2}}, store, bus.on("b"), withLeases)
	ctx := context.Background()
	eventually(t, "both serving", func() bool {
		return bus.Serving("a") && bus.Serving("b")
	})
	sess, token, err := b.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	if err != nil {
		t.Fatalf("CreateSession on b = %v", err)
	}
	if sess.Instance != "a" || token == "" {
		t.Fatalf("session %+v created on %q, want a with a token", sess, sess.Instance)
	}
	if _, err := a.svc.Connect(ctx, sess.ID, token, func(domain.SessionEvent) {}); err != nil {
		t.Fatalf("Connect on the owner with the forwarded token = %v", err)
	}
	got, answer, err := b.svc.WHEP(ctx, "dev", "o", "offer")
	if err != nil || got.Instance != "a" || answer == "" {
		t.Fatalf("WHEP on b = %+v, %q, %v; want a session on a with an answer", got, answer, err)
	}
	a.mu.Lock()
	peers := len(a.peers)
	a.mu.Unlock()
	if peers != 1 {
		t.Fatalf("peers on a = %d, want the WHEP peer", peers)
	}
	if _, _, err := b.svc.CreateSession(ctx, "nope", domain.RoleViewer, "o"); err == nil {
		t.Fatal("CreateSession of an unknown device succeeded")
	}
}

// swappableLeases lets a test hand the lease to another instance.
type swappableLeases struct {
	mu     sync.Mutex
	holder string
	token  int64
}

func (f *swappableLeases) Acquire(_ context.Context, d domain.DeviceID, h string) (domain.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.holder != "" && f.holder != h {
		return domain.Lease{}, domain.ErrConflict
	}
	if f.holder == "" {
		f.holder = h
		f.token++
	}
	return domain.Lease{Device: d, Holder: h, Token: f.token}, nil
}

func (f *swappableLeases) Renew(_ context.Context, l domain.Lease) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.holder != l.Holder || f.token != l.Token {
		return domain.ErrConflict
	}
	return nil
}

func (f *swappableLeases) Release(context.Context, domain.Lease) error { return nil }

func (f *swappableLeases) Holder(context.Context, domain.DeviceID) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.holder, nil
}

func (f *swappableLeases) set(holder string) {
	f.mu.Lock()
	f.holder = holder
	f.token++
	f.mu.Unlock()
}

// TestLeaseLossEndsLocalSessions: a lease that vanished (Redis restarted
// empty) is taken again and streams go on; a lease another instance took
// ends this instance's sessions of the device.
func TestLeaseLossEndsLocalSessions(t *testing.T) {
	leases := &swappableLeases{}
	withLeases := func(d *app.Deps) { d.Leases, d.Sources[0].Claim = leases, true }
	r := newRigOn(t, app.Config{Instance: "a"}, memstore.New(memstore.Options{}), nil, withLeases)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.svc.RunOwnership(ctx, 60*time.Millisecond) }()
	defer func() { cancel(); <-done }()
	eventually(t, "lease taken", func() bool { h, _ := leases.Holder(ctx, "dev"); return h == "a" })
	sess, ev := r.connect(t)

	leases.set("") // vanished
	eventually(t, "lease taken again", func() bool { h, _ := leases.Holder(ctx, "dev"); return h == "a" })
	if _, err := r.svc.Session(ctx, sess.ID); err != nil {
		t.Fatalf("session ended when the lease merely vanished: %v", err)
	}
	leases.set("b") // taken by another instance
	eventually(t, "bye owner_changed", func() bool { return ev.has(domain.EventBye, "owner_changed") })
}
