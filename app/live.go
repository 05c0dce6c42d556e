package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"mediasvc/domain"
	"mediasvc/ports"
)

// A live session is one this instance holds: its peer, its share of the
// device's stream, its socket. Each has one owner, a goroutine that runs
// every piece of the session's work that does I/O or changes its state, in
// order: offers (hub attach, peer answer, store update), the peer's state
// changes, keepalive and watch ticks. Requests and pion callbacks only put
// work in its mailbox, so nothing waits on a lock held across I/O, and the
// store sees the session's transitions in the order they happened.
//
// Reads that need no ordering (candidates, stats, input, keyframes) copy
// what they need out of l.mu, a lock only ever held for a few field reads
// and writes. Closing is the one thing that does not queue: it must never
// wait behind an answer that gathers candidates for seconds, so
// closeLocal takes the peer and the stream share out of l.mu, cancels the
// session's context (which aborts the owner's I/O in flight) and tears
// them down itself; the owner then ends.
type live struct {
	id      domain.SessionID
	device  domain.DeviceID
	role    domain.Role
	kind    string
	token   [32]byte
	ttl     time.Duration
	input   *rate.Limiter
	log     *slog.Logger
	created time.Time

	ctx    context.Context // ends when the session closes
	cancel context.CancelFunc
	box    mailbox
	done   chan struct{} // closed when the owner goroutine ended
	tick   ports.Timer   // the liveness timer; the owner's alone

	mu sync.Mutex // guards the fields below; never held across I/O
	// sess is the session as this instance holds it, its state moved by
	// the domain state machine in step with the store (for Resync).
	sess      domain.Session
	notify    func(domain.SessionEvent)
	relay     *relay // the remote socket's event relay, when notify is one
	peer      ports.Peer
	fanout    ports.Fanout
	info      domain.StreamInfo
	rendition domain.Rendition // what the peer sends: the original or a transcoder's
	release   func()
	peerState ports.PeerState // the peer's last state as the owner saw it
	closed    bool

	iceMu sync.Mutex // guards ice (metrics)
	ice   iceTracker

	trace setupTrace // the setup's spans (tracing.go)
}

// maxQueuedRequests bounds the requests (offers) waiting in a session's
// mailbox; events (peer states, ticks) are never refused.
const maxQueuedRequests = 16

// mailbox is a session owner's queue of work. Putting work in never blocks.
type mailbox struct {
	mu       sync.Mutex
	ops      []func()
	requests int
	wake     chan struct{} // one pending signal
}

func newMailbox() mailbox { return mailbox{wake: make(chan struct{}, 1)} }

// post queues an event's handling; it never blocks and never refuses.
func (b *mailbox) post(op func()) { b.put(op, false) }

// request queues a caller's request; false when too many wait already.
func (b *mailbox) request(op func()) bool { return b.put(op, true) }

func (b *mailbox) put(op func(), req bool) bool {
	b.mu.Lock()
	if req {
		if b.requests >= maxQueuedRequests {
			b.mu.Unlock()
			return false
		}
		b.requests++
		inner := op
		op = func() {
			b.mu.Lock()
			b.requests--
			b.mu.Unlock()
			inner()
		}
	}
	b.ops = append(b.ops, op)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return true
}

// take returns the queued work and empties the queue.
func (b *mailbox) take() []func() {
	b.mu.Lock()
	defer b.mu.Unlock()
	ops := b.ops
	b.ops = nil
	return ops
}

// own is a live session's owner goroutine: it runs the mailbox's work and
// the session's liveness timer until the session closes. Before the peer
// connects, the timer watches that the shared store still has the session
// (another instance may have reaped it), every half TTL; once connected it
// touches the session every third of its TTL, so a playing viewer never
// expires and a dead one does.
func (s *Service) own(l *live) {
	defer close(l.done)
	t := s.deps.Clock.NewTimer(s.tickEvery(l))
	defer t.Stop()
	l.tick = t
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-l.box.wake:
			for _, op := range l.box.take() {
				s.runOp(l, op)
			}
		case <-t.C():
			t.Reset(s.tickEvery(l)) // before the tick's I/O: its period does not slip
			s.runOp(l, func() { s.tick(l) })
		}
	}
}

// runOp runs one piece of a session's work; a panic closes that session
// only.
func (s *Service) runOp(l *live, op func()) {
	defer func() {
		if r := recover(); r != nil {
			s.m.panicked(panicSessionWork)
			l.log.Error("session work panicked", "panic", r)
			go func() { _ = s.CloseSession(context.Background(), l.id, "internal_error") }()
		}
	}()
	op()
}

// tickEvery is how long until the session's next liveness check.
func (s *Service) tickEvery(l *live) time.Duration {
	l.mu.Lock()
	connected := l.sess.State == domain.StateConnected
	l.mu.Unlock()
	if connected {
		return l.ttl / 3
	}
	return l.ttl / 2
}

// tick checks the session is still in the store (touching it once it is
// connected) and closes it here when the store lost it: reaped or deleted
// by another instance.
func (s *Service) tick(l *live) {
	l.mu.Lock()
	connected := l.sess.State == domain.StateConnected
	l.mu.Unlock()
	var err error
	if connected {
		err = s.touch(l)
	} else {
		ctx, cancel := context.WithTimeout(l.ctx, storeTimeout)
		_, err = s.deps.Store.Get(ctx, l.id)
		cancel()
	}
	if errors.Is(err, domain.ErrSessionNotFound) {
		s.closeLocal(l.id, "expired")
	}
}

// storeTimeout bounds one store call made by a session's owner.
const storeTimeout = 5 * time.Second

// touch extends the session's life in the store and returns the store's
// error; only a failure other than not-found is logged.
func (s *Service) touch(l *live) error {
	ctx, cancel := context.WithTimeout(l.ctx, storeTimeout)
	defer cancel()
	err := s.deps.Store.Touch(ctx, l.id, s.deps.Clock.Now())
	if err != nil && !errors.Is(err, domain.ErrSessionNotFound) && l.ctx.Err() == nil {
		l.log.Warn("touch session", "err", err)
	}
	return err
}

// transition moves the session to state to, through the domain state
// machine, here and in the store; it runs on the session's owner. A
// refused transition is logged, not fatal (the peer's state is the truth
// for a live session).
func (s *Service) transition(l *live, to domain.State, reason string) {
	now := s.deps.Clock.Now()
	move := func(sess *domain.Session) error {
		if sess.State == to {
			return nil
		}
		if err := sess.Transition(to, reason, now); err != nil {
			return err
		}
		return sess.Touch(now)
	}
	l.mu.Lock()
	err := move(&l.sess)
	l.mu.Unlock()
	if err != nil {
		l.log.Debug("session transition", "to", to, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(l.ctx, storeTimeout)
	defer cancel()
	if _, err := s.deps.Store.Update(ctx, l.id, move); err != nil && !errors.Is(err, domain.ErrSessionNotFound) {
		l.log.Debug("session transition in the store", "to", to, "err", err)
	}
}

// call runs op on the session's owner and waits for it, for ctx or for the
// session to close. op gets a context that ends with ctx or the session.
// Errors: domain.ErrSessionClosed, ErrConflict when too many requests
// wait already, ctx's error.
func call[T any](ctx context.Context, l *live, what string, op func(ctx context.Context) (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	var zero T
	res := make(chan result, 1)
	opCtx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(l.ctx, cancel)
	queued := l.box.request(func() {
		defer cancel()
		defer stop()
		if l.ctx.Err() != nil {
			res <- result{err: fmt.Errorf("%s on session %s: %w", what, l.id, domain.ErrSessionClosed)}
			return
		}
		v, err := op(opCtx)
		res <- result{v, err}
	})
	if !queued {
		stop()
		cancel()
		return zero, fmt.Errorf("%s on session %s: too many requests in progress: %w", what, l.id, domain.ErrConflict)
	}
	select {
	case r := <-res:
		return r.v, r.err
	case <-ctx.Done():
		return zero, fmt.Errorf("%s on session %s: %w", what, l.id, ctx.Err())
	case <-l.done:
		select {
		case r := <-res:
			return r.v, r.err
		default:
			return zero, fmt.Errorf("%s on session %s: %w", what, l.id, domain.ErrSessionClosed)
		}
	}
}
