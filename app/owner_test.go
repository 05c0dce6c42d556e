package app_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"mediasvc/app"
	"mediasvc/domain"
	"mediasvc/ports"
)

// slowStore is a session store whose Update blocks for one session for a
// while, ignoring its context, as a store stuck on a network would.
type slowStore struct {
	ports.SessionStore
	mu      sync.Mutex
	slow    domain.SessionID
	d       time.Duration
	blocked chan struct{} // closed when the slow Update starts
	over    chan struct{} // closed when it returns
}

func (s *slowStore) Update(ctx context.Context, id domain.SessionID, fn func(*domain.Session) error) (domain.Session, error) {
	s.mu.Lock()
	slow := s.slow != "" && id == s.slow
	if slow {
		s.slow = ""
	}
	s.mu.Unlock()
	if slow {
		close(s.blocked)
		time.Sleep(s.d)
		defer close(s.over)
	}
	return s.SessionStore.Update(ctx, id, fn)
}

// While the store blocks for one session, every other session's candidates,
// input and stats answer at once, and so do the blocked session's own; a
// drain ends within its timeout and tells the blocked session bye.
func TestSlowStoreBlocksOnlyItsSession(t *testing.T) {
	const others, block = 100, 2 * time.Second
	st := &slowStore{d: block, blocked: make(chan struct{}), over: make(chan struct{})}
	r := newRigOn(t, app.Config{InputRate: 1000, InputBurst: 1000}, newMemstore(), nil, func(d *app.Deps) {
		st.SessionStore = d.Store
		d.Store = st
	})
	ctx := context.Background()
	var ids []domain.SessionID
	for range others {
		sess, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleController, "o")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.svc.Offer(ctx, sess.ID, "offer"); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sess.ID)
	}
	stuck, token, err := r.svc.CreateSession(ctx, "dev", domain.RoleController, "o")
	if err != nil {
		t.Fatal(err)
	}
	var ev events
	detach, err := r.svc.Connect(ctx, stuck.ID, token, ev.add)
	if err != nil {
		t.Fatal(err)
	}
	defer detach()
	st.mu.Lock()
	st.slow = stuck.ID
	st.mu.Unlock()
	offered := make(chan error, 1)
	go func() { _, err := r.svc.Offer(ctx, stuck.ID, "offer"); offered <- err }()
	<-st.blocked

	var lat []time.Duration
	measure := func(what string, f func() error) {
		t0 := time.Now()
		if err := f(); err != nil {
			t.Errorf("%s: %v", what, err)
		}
		lat = append(lat, time.Since(t0))
	}
	cand := domain.Candidate{Candidate: "candidate:1 1 udp 1 192.0.2.1 9 typ host"}
	for _, id := range append(ids, stuck.ID) {
		measure("candidate", func() error { return r.svc.AddCandidate(ctx, id, cand) })
		measure("input", func() error { return r.svc.Input(ctx, id, domain.InputEvent{Type: domain.InputTap, X: 1, Y: 1}) })
		measure("stats", func() error { _, err := r.svc.SessionStats(ctx, id); return err })
	}
	select {
	case <-st.over:
		t.Fatal("the calls outlasted the blocked Update: they waited for it")
	default:
	}
	slices.Sort(lat)
	p99 := lat[len(lat)*99/100]
	t.Logf("%d calls while one session's Update blocks %v: p50 %v, p99 %v, max %v", len(lat), block, lat[len(lat)/2], p99, lat[len(lat)-1])
	if p99 >= block/2 {
		t.Fatalf("p99 %v: the calls queued behind the blocked store", p99)
	}

	const drainTimeout = time.Second
	dctx, cancel := context.WithTimeout(ctx, drainTimeout)
	defer cancel()
	t0 := time.Now()
	if err := r.svc.Drain(dctx, "shutdown"); err != nil {
		t.Fatalf("Drain with one session's store call stuck: %v", err)
	}
	t.Logf("drain took %v with the store stuck", time.Since(t0))
	if !ev.has(domain.EventBye, "shutdown") {
		t.Fatal("the blocked session was not told bye")
	}
	select {
	case <-st.over:
		t.Fatal("Drain waited for the blocked Update")
	default:
	}
	<-st.over // let the stuck owner end before goleak looks
	if err := <-offered; err == nil {
		t.Log("the stuck offer completed after the drain")
	} else if !errors.Is(err, domain.ErrSessionClosed) {
		t.Logf("the stuck offer ended with %v", err)
	}
}

// A second offer on a connected session (a new transceiver, or an ICE
// restart the transport resolves without leaving connected) ends with the
// session connected again, in the store and the API.
func TestRenegotiationEndsConnected(t *testing.T) {
	r := newRig(t, app.Config{})
	ctx := context.Background()
	sess, _ := r.connect(t)
	if _, err := r.svc.Offer(ctx, sess.ID, "offer again"); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.svc.Session(ctx, sess.ID); got.State != domain.StateConnected {
		t.Fatalf("state after a renegotiation = %s, want connected", got.State)
	}
	// An ICE restart that goes through checking comes back to connected.
	r.mu.Lock()
	opts := r.opts[0]
	r.mu.Unlock()
	opts.OnState(ports.PeerConnecting) // handled before the offer: the mailbox keeps order
	if _, err := r.svc.Offer(ctx, sess.ID, "ice restart"); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.svc.Session(ctx, sess.ID); got.State != domain.StateNegotiating {
		t.Fatalf("state during an ICE restart = %s, want negotiating", got.State)
	}
	opts.OnState(ports.PeerConnected)
	eventually(t, "connected again", func() bool {
		got, _ := r.svc.Session(ctx, sess.ID)
		return got.State == domain.StateConnected
	})
}
