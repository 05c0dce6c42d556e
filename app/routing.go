package app

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"mediasvc/domain"
)

// Routing: the one place that decides whether a session (or a device) is
// held by this instance or by another one sharing the store, and forwards
// the call over the bus when it is another. Every public session method
// goes through onSession once; the use cases it calls (sessions.go,
// signaling.go, input.go, whep.go) are local-only and never ask. The
// receiving side, serveCall, calls the same local use cases.

// holders remembers which instance holds a session seen elsewhere, so
// the calls of a relayed socket do not each read the store. A session
// never moves, so an entry is only wrong once the session is gone: the
// holder then answers not found (or does not answer), and the entry is
// dropped.
type holders struct {
	mu sync.Mutex
	m  map[domain.SessionID]string
}

const maxHolders = 16384

func (h *holders) get(id domain.SessionID) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.m[id]
}

func (h *holders) put(id domain.SessionID, instance string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil || len(h.m) >= maxHolders {
		h.m = make(map[domain.SessionID]string)
	}
	h.m[id] = instance
}

func (h *holders) drop(id domain.SessionID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m, id)
}

// route is where a session's calls go: l when this instance holds it,
// holder otherwise.
type route struct {
	l      *live
	holder string
}

// routeSession decides where id's calls go. Errors: the store's
// (domain.ErrSessionNotFound), and ErrSessionNotFound for a session held
// by an instance this one cannot reach (no bus).
func (s *Service) routeSession(ctx context.Context, id domain.SessionID) (route, error) {
	if l := s.liveSession(id); l != nil {
		return route{l: l}, nil
	}
	if s.deps.Bus == nil {
		if _, err := s.deps.Store.Get(ctx, id); err != nil {
			return route{}, err
		}
		return route{}, fmt.Errorf("session %s is not held by this instance: %w", id, domain.ErrSessionNotFound)
	}
	if h := s.holders.get(id); h != "" {
		return route{holder: h}, nil
	}
	sess, err := s.deps.Store.Get(ctx, id)
	if err != nil {
		return route{}, err
	}
	if sess.Instance == "" || sess.Instance == s.cfg.Instance {
		// Ours in the store but not live: closing, or lost in a restart.
		return route{}, fmt.Errorf("session %s is not held by this instance: %w", id, domain.ErrSessionNotFound)
	}
	s.holders.put(id, sess.Instance)
	return route{holder: sess.Instance}, nil
}

// onSession is the dispatch, written once: here runs against the live
// session when this instance holds id; otherwise req goes to the holder
// and there reads its reply.
func onSession[T any](ctx context.Context, s *Service, id domain.SessionID, req domain.BusRequest,
	here func(*live) (T, error), there func(domain.BusReply) T) (T, error) {
	var zero T
	r, err := s.routeSession(ctx, id)
	if err != nil {
		return zero, err
	}
	if r.l != nil {
		return here(r.l)
	}
	req.Session = id
	rep, err := s.forward(ctx, r.holder, req)
	if err != nil {
		if errors.Is(err, domain.ErrSessionNotFound) || errors.Is(err, domain.ErrUnavailable) {
			s.holders.drop(id)
		}
		return zero, err
	}
	return there(rep), nil
}

// forward sends req to instance and returns its reply or its error.
// Failures to reach it wrap domain.ErrUnavailable.
func (s *Service) forward(ctx context.Context, instance string, req domain.BusRequest) (domain.BusReply, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AnswerTimeout+2*time.Second)
	defer cancel()
	ctx, span := s.tracer.Start(ctx, "bus.call "+string(req.Method), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("mediasvc.bus.method", string(req.Method)), attribute.String("mediasvc.bus.instance", instance)))
	injectTrace(ctx, &req)
	rep, err := s.deps.Bus.Call(ctx, instance, req)
	endSpan(span, err)
	if err == nil {
		return rep, nil
	}
	if (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) && !errors.Is(err, domain.ErrUnavailable) {
		err = errors.Join(domain.ErrUnavailable, err)
	}
	what := string(req.Method)
	if req.Session != "" {
		what += " for session " + string(req.Session)
	} else if req.Device != "" {
		what += " for device " + string(req.Device)
	}
	return rep, fmt.Errorf("%s held by %s: %w", what, instance, err)
}

// none is there for calls whose reply carries nothing.
func none(domain.BusReply) struct{} { return struct{}{} }

// Offer answers the client's SDP offer; local candidates trickle to the
// socket. A second offer renegotiates (ICE restart, new transceiver) and
// the session ends connected again once its peer is. Errors:
// domain.ErrSessionNotFound, ErrInvalidOffer, ErrDeviceUnavailable,
// ErrSessionClosed.
func (s *Service) Offer(ctx context.Context, id domain.SessionID, sdp string) (string, error) {
	return onSession(ctx, s, id, domain.BusRequest{Method: domain.BusOffer, SDP: sdp},
		func(l *live) (string, error) { return s.offerLocal(ctx, l, sdp, true) },
		func(r domain.BusReply) string { return r.SDP })
}

// AddCandidate adds a remote ICE candidate to the session's peer.
// domain.ErrTooManyCandidates past the limit, ErrInvalidCandidate when
// malformed, ErrConflict before an offer.
func (s *Service) AddCandidate(ctx context.Context, id domain.SessionID, c domain.Candidate) error {
	_, err := onSession(ctx, s, id, domain.BusRequest{Method: domain.BusCandidate, Candidate: &c},
		func(l *live) (struct{}, error) { return struct{}{}, s.candidateLocal(ctx, l, c) }, none)
	return err
}

// RequestKeyframe asks the device's capture for a keyframe on behalf of the
// session (coalesced with other viewers' requests by the fanout).
func (s *Service) RequestKeyframe(ctx context.Context, id domain.SessionID) error {
	_, err := onSession(ctx, s, id, domain.BusRequest{Method: domain.BusKeyframe},
		func(l *live) (struct{}, error) { return struct{}{}, s.keyframeLocal(l) }, none)
	return err
}

// SessionStats returns the session's quality. A session without a peer
// yet reports zeros.
func (s *Service) SessionStats(ctx context.Context, id domain.SessionID) (domain.QualityStats, error) {
	return onSession(ctx, s, id, domain.BusRequest{Method: domain.BusStats},
		func(l *live) (domain.QualityStats, error) { return s.statsLocal(l), nil },
		func(r domain.BusReply) domain.QualityStats {
			if r.Stats == nil {
				return domain.QualityStats{}
			}
			return *r.Stats
		})
}

// Input delivers a controller's input to the device. Errors:
// domain.ErrForbidden for viewers, ErrRateLimited past the session's input
// rate, ErrInvalidInput when malformed or out of the video, ErrConflict
// before the stream started, and the device's own errors.
func (s *Service) Input(ctx context.Context, id domain.SessionID, ev domain.InputEvent) error {
	_, err := onSession(ctx, s, id, domain.BusRequest{Method: domain.BusInput, Input: &ev},
		func(l *live) (struct{}, error) { return struct{}{}, s.inputLocal(ctx, l, ev) }, none)
	return err
}

// Connect authenticates token for the session's WebSocket and registers
// notify for its events. It returns domain.ErrUnauthorized for a wrong
// token and domain.ErrConflict if a socket is already attached. detach
// forgets notify; it does not close the session.
func (s *Service) Connect(ctx context.Context, id domain.SessionID, token string, notify func(domain.SessionEvent)) (func(), error) {
	if l := s.liveSession(id); l != nil {
		return s.connectLocal(l, token, notify)
	}
	// The stored session carries the token's hash the socket must match.
	sess, err := s.deps.Store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if s.deps.Bus == nil || sess.Instance == "" || sess.Instance == s.cfg.Instance {
		return nil, fmt.Errorf("session %s is not held by this instance: %w", id, domain.ErrSessionNotFound)
	}
	s.holders.put(id, sess.Instance)
	return s.connectRemote(ctx, sess.Instance, sess, token, notify)
}

// Session returns a stored session or domain.ErrSessionNotFound. A
// session live here that the store lost (a Redis restarted empty, before
// Resync put it back) is returned as this instance holds it: it exists,
// and closing it must still reach its socket.
func (s *Service) Session(ctx context.Context, id domain.SessionID) (domain.Session, error) {
	sess, err := s.deps.Store.Get(ctx, id)
	if !errors.Is(err, domain.ErrSessionNotFound) {
		return sess, err
	}
	if l := s.liveSession(id); l != nil {
		l.mu.Lock()
		held, closed := l.sess, l.closed
		l.mu.Unlock()
		if !closed {
			return held, nil
		}
	}
	return sess, err
}

// CloseSession ends a session: it is removed from the store, its peer
// closed and its socket told bye with reason, wherever it is held.
// domain.ErrSessionNotFound if it does not exist.
func (s *Service) CloseSession(ctx context.Context, id domain.SessionID, reason string) error {
	sess, err := s.storeDelete(ctx, id)
	local := s.closeLocal(id, reason)
	s.holders.drop(id)
	if err == nil && !local && s.deps.Bus != nil && sess.Instance != "" && sess.Instance != s.cfg.Instance {
		// Tell the holder now rather than at its next tick.
		if _, ferr := s.forward(ctx, sess.Instance, domain.BusRequest{Method: domain.BusClose, Session: id, Reason: reason}); ferr != nil {
			s.log.Warn("forward close", "session_id", id, "instance", sess.Instance, "err", ferr)
		}
	}
	if err != nil && !(local && errors.Is(err, domain.ErrSessionNotFound)) {
		return fmt.Errorf("close session %s: %w", id, err)
	}
	return nil
}

// closeHere ends a session held by this instance, in the store too.
func (s *Service) closeHere(ctx context.Context, id domain.SessionID, reason string) {
	s.closeLocal(id, reason)
	_, _ = s.storeDelete(ctx, id)
}

// storeDelete is Store.Delete with a panic turned into an error (and
// counted), so a store failing half-way never stops a close: the caller
// still closes the peer and releases what the session held.
func (s *Service) storeDelete(ctx context.Context, id domain.SessionID) (sess domain.Session, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.m.panicked(panicSessionClose)
			s.log.Error("session store delete panicked", "session_id", id, "panic", r, "stack", string(debug.Stack()))
			sess, err = domain.Session{}, fmt.Errorf("delete session %s: the store panicked: %v", id, r)
		}
	}()
	return s.deps.Store.Delete(ctx, id)
}

// CreateSession creates a session for a viewer of device and returns it with
// the token its WebSocket must present. It is created on the instance
// holding the device. Errors: domain.ErrDraining, ErrInvalidRequest (bad
// role), ErrDeviceNotFound, ErrRateLimited (*domain.RateLimitError),
// ErrLimitExceeded, ErrUnavailable.
func (s *Service) CreateSession(ctx context.Context, device domain.DeviceID, role domain.Role, owner string) (domain.Session, string, error) {
	ctx, span := s.tracer.Start(ctx, "session.create", trace.WithAttributes(
		attribute.String("mediasvc.device.id", string(device)), attribute.String("mediasvc.session.kind", "ws")))
	sess, token, err := s.createRouted(ctx, device, role, owner)
	endSpan(span, err)
	s.m.created.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", createOutcome(err)), attribute.String("kind", "ws")))
	return sess, token, err
}

func (s *Service) createRouted(ctx context.Context, device domain.DeviceID, role domain.Role, owner string) (domain.Session, string, error) {
	holder, err := s.admit(ctx, device, role, owner)
	if err != nil {
		return domain.Session{}, "", err
	}
	if holder == "" {
		return s.createLocal(ctx, device, role, owner, "ws")
	}
	rep, err := s.forward(ctx, holder, domain.BusRequest{Method: domain.BusCreate, Device: device, Role: role, Owner: owner, Kind: "ws"})
	if err != nil {
		return domain.Session{}, "", err
	}
	if rep.Session == nil {
		return domain.Session{}, "", errNoSession
	}
	return *rep.Session, rep.Token, nil
}

// WHEP creates a viewer session for device and answers offer with every
// local candidate gathered (RFC 9725), on the instance holding the device.
// Errors as CreateSession and Offer; on error nothing is left behind.
func (s *Service) WHEP(ctx context.Context, device domain.DeviceID, owner string, offer string) (domain.Session, string, error) {
	ctx, span := s.tracer.Start(ctx, "session.create", trace.WithAttributes(
		attribute.String("mediasvc.device.id", string(device)), attribute.String("mediasvc.session.kind", "whep")))
	sess, answer, err := s.whepRouted(ctx, device, owner, offer)
	endSpan(span, err)
	s.m.created.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", createOutcome(err)), attribute.String("kind", "whep")))
	return sess, answer, err
}

func (s *Service) whepRouted(ctx context.Context, device domain.DeviceID, owner string, offer string) (domain.Session, string, error) {
	holder, err := s.admit(ctx, device, domain.RoleViewer, owner)
	if err != nil {
		return domain.Session{}, "", err
	}
	if holder == "" {
		return s.whepLocal(ctx, device, owner, offer)
	}
	rep, err := s.forward(ctx, holder, domain.BusRequest{Method: domain.BusWHEP, Device: device, Owner: owner, SDP: offer})
	if err != nil {
		return domain.Session{}, "", err
	}
	if rep.Session == nil {
		return domain.Session{}, "", errNoSession
	}
	return *rep.Session, rep.SDP, nil
}

// errNoSession is the error for a forwarded creation that returned none.
var errNoSession = fmt.Errorf("create session: the device owner returned no session: %w", domain.ErrUnavailable)

// admit runs the checks every new session passes on the instance the
// request reached — draining, role, store health, the device, creation
// rate limits — and returns the instance that must hold the session when
// it is another one (the device's lease holder), or "".
func (s *Service) admit(ctx context.Context, device domain.DeviceID, role domain.Role, owner string) (string, error) {
	if s.draining.Load() {
		return "", fmt.Errorf("create session: %w", domain.ErrDraining)
	}
	if !role.Valid() {
		return "", fmt.Errorf("role %q is not viewer or controller: %w", role, domain.ErrInvalidRequest)
	}
	if err := s.healthy(); err != nil {
		return "", fmt.Errorf("create session: session store unusable: %w", errors.Join(domain.ErrUnavailable, err))
	}
	holder, err := s.ownerOf(ctx, device)
	if err != nil {
		return "", fmt.Errorf("create session: %w", err)
	}
	if holder == s.cfg.Instance || s.deps.Bus == nil {
		holder = ""
	}
	if holder == "" {
		if _, _, err := s.src.device(ctx, device); err != nil {
			return "", err
		}
	}
	if s.deps.GlobalLimit != nil {
		if err := s.deps.GlobalLimit.Allow(ctx, "global"); err != nil {
			s.rateLimited(ctx, err, "global")
			return "", fmt.Errorf("create session: %w", err)
		}
	}
	if s.deps.OwnerLimit != nil {
		if err := s.deps.OwnerLimit.Allow(ctx, owner); err != nil {
			s.rateLimited(ctx, err, "owner")
			return "", fmt.Errorf("create session: %w", err)
		}
	}
	return holder, nil
}
