package app_test

import (
	"context"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/attribute"

	"mediasvc/adapters/memstore"
	"mediasvc/app"
	"mediasvc/domain"
	"mediasvc/ports"
)

// deletePanics is a store whose Delete panics before it deletes anything,
// as memstore's did half-way (issue 8).
type deletePanics struct {
	*memstore.Store
	armed atomic.Bool
}

func (s *deletePanics) Delete(ctx context.Context, id domain.SessionID) (domain.Session, error) {
	if s.armed.Load() {
		panic("store bug")
	}
	return s.Store.Delete(ctx, id)
}

// closePanics wraps every peer so that Close closes it and then panics.
type closePanics struct {
	ports.Transport
	closed atomic.Int64
}

type panickyPeer struct {
	ports.Peer
	t *closePanics
}

func (p panickyPeer) Close() error {
	_ = p.Peer.Close()
	p.t.closed.Add(1)
	panic("peer close bug")
}

func (t *closePanics) NewPeer(ctx context.Context, f ports.Fanout, o ports.PeerOptions) (ports.Peer, error) {
	p, err := t.Transport.NewPeer(ctx, f, o)
	if err != nil {
		return nil, err
	}
	return panickyPeer{Peer: p, t: t}, nil
}

func viewers(t *testing.T, svc *app.Service) int {
	t.Helper()
	ds, err := svc.Devices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range ds {
		n += d.Viewers
	}
	return n
}

// A close that fails half-way, in the store or in the peer, still closes
// the peer, releases the session's share of the stream and counts the
// session out; the failure is counted as a panic.
func TestCloseFailingHalfWayReleasesAll(t *testing.T) {
	ctx := context.Background()
	t.Run("store delete panics", func(t *testing.T) {
		rd, mp := newReading(t)
		st := &deletePanics{Store: memstore.New(memstore.Options{})}
		r := newRigOn(t, app.Config{}, st.Store, nil, func(d *app.Deps) { d.Store = st; d.Meter = mp.Meter("mediasvc/app") })
		sess, _ := r.connect(t)
		if viewers(t, r.svc) != 1 {
			t.Fatalf("viewers = %d before the close, want 1", viewers(t, r.svc))
		}
		st.armed.Store(true)
		if err := r.svc.CloseSession(ctx, sess.ID, "bye"); err == nil {
			t.Fatal("CloseSession with a panicking store = nil, want its error")
		}
		r.mu.Lock()
		peer := r.peers[0]
		r.mu.Unlock()
		if peer.Closed.Load() != 1 {
			t.Fatalf("peer closed %d times, want 1", peer.Closed.Load())
		}
		if n := viewers(t, r.svc); n != 0 {
			t.Fatalf("viewers = %d after the close, want 0", n)
		}
		if got := rd.value("media_active_sessions"); got != 0 {
			t.Fatalf("media_active_sessions = %v, want 0", got)
		}
		if got := rd.value("media_panics", attribute.String("where", "session_close")); got != 1 {
			t.Fatalf(`media_panics{where="session_close"} = %v, want 1`, got)
		}
		// Once the store works again, a retried close removes the
		// session and its quota.
		st.armed.Store(false)
		if err := r.svc.CloseSession(ctx, sess.ID, "bye"); err != nil {
			t.Fatalf("retried close = %v", err)
		}
		if u, _ := st.QuotaUsage(ctx); u.Total != 0 || len(u.ByDevice) != 0 || len(u.ByOwner) != 0 {
			t.Fatalf("quota after the retried close: %+v", u)
		}
	})
	t.Run("peer close panics", func(t *testing.T) {
		rd, mp := newReading(t)
		tr := &closePanics{}
		store := memstore.New(memstore.Options{})
		r := newRigOn(t, app.Config{}, store, nil, func(d *app.Deps) {
			tr.Transport = d.Transport
			d.Transport = tr
			d.Meter = mp.Meter("mediasvc/app")
		})
		sess, _ := r.connect(t)
		if err := r.svc.CloseSession(ctx, sess.ID, "bye"); err != nil {
			t.Fatalf("CloseSession = %v, want nil: the store deleted it", err)
		}
		if tr.closed.Load() != 1 {
			t.Fatalf("peer closed %d times, want 1", tr.closed.Load())
		}
		if n := viewers(t, r.svc); n != 0 {
			t.Fatalf("viewers = %d after the close, want 0", n)
		}
		if got := rd.value("media_active_sessions"); got != 0 {
			t.Fatalf("media_active_sessions = %v, want 0", got)
		}
		if got := rd.value("media_panics", attribute.String("where", "session_close")); got != 1 {
			t.Fatalf(`media_panics{where="session_close"} = %v, want 1`, got)
		}
		if u, _ := store.QuotaUsage(ctx); u.Total != 0 {
			t.Fatalf("quota after the close: %+v", u)
		}
	})
}
