package app

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"mediasvc/domain"
	"mediasvc/ports"
)

// Cross-instance signaling. A session's peer lives on the instance that
// created it (sess.Instance). Calls for it that reach another instance are
// forwarded by routing.go; this file is the rest: serving the calls
// forwarded here, and a WebSocket attached to one instance for a session
// held by another, whose events the holder relays over a bus topic.

// ownerCheck is how often an instance relaying a session's socket checks
// that the session's holder still has it.
var ownerCheck = 2 * time.Second

// ServeBus answers the calls other instances forward to this one until ctx
// is done. Without a bus it returns at once.
func (s *Service) ServeBus(ctx context.Context) error {
	if s.deps.Bus == nil {
		return nil
	}
	return s.deps.Bus.Serve(ctx, s.serveCall)
}

// serveCall serves one forwarded call with the local use cases.
func (s *Service) serveCall(ctx context.Context, r domain.BusRequest) (rep domain.BusReply, err error) {
	ctx, span := s.tracer.Start(extractTrace(ctx, r), "bus.serve "+string(r.Method), trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("mediasvc.bus.method", string(r.Method)), attribute.String("mediasvc.instance", s.cfg.Instance)))
	defer func() { endSpan(span, err) }()
	defer func() {
		if p := recover(); p != nil {
			s.m.panicked(panicForwardedCall)
			s.log.Error("forwarded request panicked", "method", r.Method, "session_id", r.Session, "panic", p)
			rep, err = domain.BusReply{}, fmt.Errorf("internal error: %w", domain.ErrUnavailable)
		}
	}()
	switch r.Method {
	case domain.BusCreate:
		sess, token, err := s.createLocal(ctx, r.Device, r.Role, r.Owner, r.Kind)
		if err != nil {
			return rep, err
		}
		return domain.BusReply{Session: &sess, Token: token}, nil
	case domain.BusWHEP:
		sess, answer, err := s.whepLocal(ctx, r.Device, r.Owner, r.SDP)
		if err != nil {
			return rep, err
		}
		return domain.BusReply{Session: &sess, SDP: answer}, nil
	case domain.BusClose:
		s.closeLocal(r.Session, r.Reason)
		return rep, nil
	case domain.BusDetach:
		if l := s.liveSession(r.Session); l != nil {
			s.detachRemote(l, r.Topic)
		}
		return rep, nil
	}
	l, err := s.held(r.Session)
	if err != nil {
		return rep, err
	}
	switch r.Method {
	case domain.BusOffer:
		rep.SDP, err = s.offerLocal(ctx, l, r.SDP, true)
	case domain.BusCandidate:
		if r.Candidate == nil {
			return rep, fmt.Errorf("candidate missing: %w", domain.ErrInvalidCandidate)
		}
		err = s.candidateLocal(ctx, l, *r.Candidate)
	case domain.BusInput:
		if r.Input == nil {
			return rep, fmt.Errorf("input missing: %w", domain.ErrInvalidInput)
		}
		err = s.inputLocal(ctx, l, *r.Input)
	case domain.BusKeyframe:
		err = s.keyframeLocal(l)
	case domain.BusStats:
		st := s.statsLocal(l)
		rep.Stats = &st
	case domain.BusAttach:
		err = s.attachRemote(l, r.Topic)
	case domain.BusPing:
	default:
		err = fmt.Errorf("unknown method %q: %w", r.Method, domain.ErrInvalidRequest)
	}
	return rep, err
}

// relay publishes a session's events to the bus topic a socket on another
// instance listens on, from its own goroutine: emitting never waits for
// the bus. Events are published in order; stop lets it publish what is
// queued (the bye) and end.
type relay struct {
	topic string
	bus   ports.Bus
	log   *slog.Logger

	mu      sync.Mutex
	queue   []domain.SessionEvent
	stopped bool
	wake    chan struct{}
}

// maxRelayQueue bounds the events waiting for the bus; past it new
// candidates are dropped (the bye and states are kept).
const maxRelayQueue = 256

func newRelay(topic string, bus ports.Bus, log *slog.Logger) *relay {
	return &relay{topic: topic, bus: bus, log: log, wake: make(chan struct{}, 1)}
}

func (r *relay) push(ev domain.SessionEvent) {
	r.mu.Lock()
	if r.stopped || (len(r.queue) >= maxRelayQueue && ev.Type == domain.EventCandidate) {
		r.mu.Unlock()
		return
	}
	r.queue = append(r.queue, ev)
	r.mu.Unlock()
	r.signal()
}

func (r *relay) stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.signal()
}

func (r *relay) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run publishes until stopped and drained.
func (r *relay) run() {
	for range r.wake {
		r.mu.Lock()
		evs, stopped := r.queue, r.stopped
		r.queue = nil
		r.mu.Unlock()
		for _, ev := range evs {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := r.bus.Publish(ctx, r.topic, ev); err != nil {
				r.log.Warn("relay event to remote socket", "type", ev.Type, "err", err)
			}
			cancel()
		}
		if stopped {
			r.mu.Lock()
			left := len(r.queue)
			r.mu.Unlock()
			if left == 0 {
				return
			}
		}
	}
}

// attachRemote makes topic the session's event sink: a socket on another
// instance listens there.
func (s *Service) attachRemote(l *live, topic string) error {
	rl := newRelay(topic, s.deps.Bus, l.log)
	if err := s.setNotify(l, rl.push, rl); err != nil {
		return err
	}
	go rl.run()
	return nil
}

// detachRemote forgets the remote socket listening on topic.
func (s *Service) detachRemote(l *live, topic string) {
	l.mu.Lock()
	rl := l.relay
	l.mu.Unlock()
	if rl != nil && rl.topic == topic {
		s.clearNotify(l, rl)
	}
}

// connectRemote attaches a WebSocket on this instance to a session held
// by owner: the token is checked against the stored hash, events arrive
// through a bus topic of this socket's own.
func (s *Service) connectRemote(ctx context.Context, owner string, sess domain.Session, token string, notify func(domain.SessionEvent)) (func(), error) {
	h := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(h[:], sess.TokenHash[:]) != 1 {
		return nil, fmt.Errorf("session %s: wrong token: %w", sess.ID, domain.ErrUnauthorized)
	}
	var mu sync.Mutex // notify is called from the subscription and the watcher
	topic, cancelSub, err := s.deps.Bus.Subscribe(ctx, func(ev domain.SessionEvent) {
		mu.Lock()
		defer mu.Unlock()
		notify(ev)
	})
	if err != nil {
		return nil, fmt.Errorf("connect session %s: %w", sess.ID, err)
	}
	if _, err := s.forward(ctx, owner, domain.BusRequest{Method: domain.BusAttach, Session: sess.ID, Topic: topic}); err != nil {
		cancelSub()
		return nil, err
	}
	// Watch the holder: if it dies (SIGKILL, crash), nothing would tell
	// the socket; say so and end it, so the viewer starts a new session.
	stop, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		t := s.deps.Clock.NewTimer(ownerCheck)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C():
				t.Reset(ownerCheck)
			}
			pctx, cancel := context.WithTimeout(context.Background(), ownerCheck)
			_, err := s.forward(pctx, owner, domain.BusRequest{Method: domain.BusPing, Session: sess.ID})
			cancel()
			if errors.Is(err, domain.ErrSessionNotFound) || (errors.Is(err, domain.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) && s.healthy() == nil) {
				mu.Lock()
				notify(domain.SessionEvent{Type: domain.EventState, State: string(domain.StateFailed), Reason: "owner_gone"})
				notify(domain.SessionEvent{Type: domain.EventBye, Reason: "owner_gone"})
				mu.Unlock()
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			<-watched
			cancelSub()
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, _ = s.forward(dctx, owner, domain.BusRequest{Method: domain.BusDetach, Session: sess.ID, Topic: topic})
		})
	}, nil
}
