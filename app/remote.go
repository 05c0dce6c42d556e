package app

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"mediasvc/domain"
)

// Cross-instance signaling. A session's peer lives on the instance that
// created it (sess.Instance). When a request for the session reaches
// another instance sharing the store, that instance forwards it over the
// bus and relays the reply; a WebSocket attached elsewhere receives the
// session's events through a bus topic the holder publishes to.

// ownerCheck is how often an instance relaying a session's socket checks
// that the session's holder still has it.
var ownerCheck = 2 * time.Second

// rpc is a request between instances.
type rpc struct {
	Method    string             `json:"method"`
	Session   domain.SessionID   `json:"session"`
	SDP       string             `json:"sdp,omitempty"`
	Candidate *domain.Candidate  `json:"candidate,omitempty"`
	Input     *domain.InputEvent `json:"input,omitempty"`
	Topic     string             `json:"topic,omitempty"`
	Reason    string             `json:"reason,omitempty"`
	Device    domain.DeviceID    `json:"device,omitempty"`
	Role      domain.Role        `json:"role,omitempty"`
	User      string             `json:"user,omitempty"`
	Kind      string             `json:"kind,omitempty"`
}

// rpcReply is its answer.
type rpcReply struct {
	SDP     string               `json:"sdp,omitempty"`
	Stats   *domain.QualityStats `json:"stats,omitempty"`
	Session *domain.Session      `json:"session,omitempty"`
	Token   string               `json:"token,omitempty"`
	Err     *wireError           `json:"err,omitempty"`
}

// wireError carries a domain error across instances.
type wireError struct {
	Code       string `json:"code"`
	Message    string `json:"message"`
	Limit      string `json:"limit,omitempty"`
	RetryAfter int64  `json:"retry_after_ms,omitempty"`
}

// wireErrors are the domain errors that keep their identity across
// instances; any other arrives as ErrUnavailable.
var wireErrors = map[string]error{
	"session_not_found": domain.ErrSessionNotFound, "limit_exceeded": domain.ErrLimitExceeded,
	"session_exists": domain.ErrSessionExists, "session_closed": domain.ErrSessionClosed,
	"device_not_found": domain.ErrDeviceNotFound, "device_unavailable": domain.ErrDeviceUnavailable,
	"too_many_candidates": domain.ErrTooManyCandidates, "invalid_candidate": domain.ErrInvalidCandidate,
	"invalid_offer": domain.ErrInvalidOffer, "invalid_input": domain.ErrInvalidInput,
	"no_common_codec": domain.ErrNoCommonCodec,
	"invalid_request": domain.ErrInvalidRequest, "forbidden": domain.ErrForbidden,
	"conflict": domain.ErrConflict, "draining": domain.ErrDraining, "unavailable": domain.ErrUnavailable,
	"unauthorized": domain.ErrUnauthorized, "invalid_transition": domain.ErrInvalidTransition,
}

func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	var rl *domain.RateLimitError
	if errors.As(err, &rl) {
		return &wireError{Code: "rate_limited", Message: err.Error(), Limit: rl.Limit, RetryAfter: rl.RetryAfter.Milliseconds()}
	}
	for code, sentinel := range wireErrors {
		if errors.Is(err, sentinel) {
			return &wireError{Code: code, Message: err.Error()}
		}
	}
	return &wireError{Code: "unavailable", Message: err.Error()}
}

func (w *wireError) err(instance string) error {
	if w.Code == "rate_limited" {
		return &domain.RateLimitError{Limit: w.Limit, RetryAfter: time.Duration(w.RetryAfter) * time.Millisecond}
	}
	sentinel, ok := wireErrors[w.Code]
	if !ok {
		sentinel = domain.ErrUnavailable
	}
	return fmt.Errorf("instance %s: %s: %w", instance, w.Message, sentinel)
}

// remoteOwner returns the instance holding id's peer when it is another
// instance this one can reach over the bus, with the stored session.
func (s *Service) remoteOwner(ctx context.Context, id domain.SessionID) (string, domain.Session, bool) {
	if s.deps.Bus == nil {
		return "", domain.Session{}, false
	}
	sess, err := s.deps.Store.Get(ctx, id)
	if err != nil || sess.Instance == "" || sess.Instance == s.cfg.Instance {
		return "", sess, false
	}
	return sess.Instance, sess, true
}

// forward sends r to instance and returns its reply, or its error.
func (s *Service) forward(ctx context.Context, instance string, r rpc) (rpcReply, error) {
	body, _ := json.Marshal(r)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AnswerTimeout+2*time.Second)
	defer cancel()
	out, err := s.deps.Bus.Call(ctx, instance, body)
	if err != nil {
		return rpcReply{}, fmt.Errorf("%s for session %s held by %s: %w", r.Method, r.Session, instance, errors.Join(domain.ErrUnavailable, err))
	}
	var rep rpcReply
	if err := json.Unmarshal(out, &rep); err != nil {
		return rpcReply{}, fmt.Errorf("%s for session %s: malformed reply from %s: %w", r.Method, r.Session, instance, domain.ErrUnavailable)
	}
	if rep.Err != nil {
		return rep, rep.Err.err(instance)
	}
	return rep, nil
}

// ServeBus answers the requests other instances forward to this one until
// ctx is done. Without a bus it returns at once.
func (s *Service) ServeBus(ctx context.Context) error {
	if s.deps.Bus == nil {
		return nil
	}
	return s.deps.Bus.Serve(ctx, func(ctx context.Context, req []byte) []byte {
		var r rpc
		var rep rpcReply
		if err := json.Unmarshal(req, &r); err != nil {
			rep.Err = toWire(fmt.Errorf("malformed request: %w", domain.ErrInvalidRequest))
		} else {
			rep = s.handleRPC(ctx, r)
		}
		out, _ := json.Marshal(rep)
		return out
	})
}

// handleRPC serves one forwarded request against a session held here.
func (s *Service) handleRPC(ctx context.Context, r rpc) (rep rpcReply) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("forwarded request panicked", "method", r.Method, "session_id", r.Session, "panic", p)
			rep = rpcReply{Err: toWire(fmt.Errorf("internal error: %w", domain.ErrUnavailable))}
		}
	}()
	var err error
	switch r.Method {
	case "offer":
		rep.SDP, err = s.Offer(ctx, r.Session, r.SDP)
	case "candidate":
		if r.Candidate == nil {
			err = fmt.Errorf("candidate missing: %w", domain.ErrInvalidCandidate)
		} else {
			err = s.AddCandidate(ctx, r.Session, *r.Candidate)
		}
	case "input":
		if r.Input == nil {
			err = fmt.Errorf("input missing: %w", domain.ErrInvalidInput)
		} else {
			err = s.Input(ctx, r.Session, *r.Input)
		}
	case "keyframe":
		err = s.RequestKeyframe(ctx, r.Session)
	case "stats":
		var st domain.QualityStats
		st, err = s.SessionStats(ctx, r.Session)
		rep.Stats = &st
	case "attach":
		err = s.attachRemote(ctx, r.Session, r.Topic)
	case "detach":
		s.detachRemote(r.Session, r.Topic)
	case "ping":
		s.mu.Lock()
		_, ok := s.live[r.Session]
		s.mu.Unlock()
		if !ok {
			err = fmt.Errorf("session %s is not held by %s: %w", r.Session, s.cfg.Instance, domain.ErrSessionNotFound)
		}
	case "close":
		s.closeLocal(r.Session, r.Reason)
	case "create":
		var sess domain.Session
		sess, rep.Token, err = s.createLocal(ctx, r.Device, r.Role, r.User, r.Kind)
		if err == nil {
			rep.Session = &sess
		}
	case "whep":
		var sess domain.Session
		sess, rep.SDP, err = s.whepLocal(ctx, r.Device, r.User, r.SDP)
		if err == nil {
			rep.Session = &sess
		}
	default:
		err = fmt.Errorf("unknown method %q: %w", r.Method, domain.ErrInvalidRequest)
	}
	rep.Err = toWire(err)
	return rep
}

// attachRemote makes topic the session's event sink: a socket on another
// instance listens there.
func (s *Service) attachRemote(ctx context.Context, id domain.SessionID, topic string) error {
	s.mu.Lock()
	l, ok := s.live[id]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("session %s is not held by %s: %w", id, s.cfg.Instance, domain.ErrSessionNotFound)
	}
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	if l.notify != nil {
		return fmt.Errorf("session %s already has a socket: %w", id, domain.ErrConflict)
	}
	bus := s.deps.Bus
	l.notify = func(ev domain.SessionEvent) {
		b, _ := json.Marshal(ev)
		pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := bus.Publish(pctx, topic, b); err != nil {
			l.log.Warn("relay event to remote socket", "type", ev.Type, "err", err)
		}
	}
	l.remoteTopic = topic
	_ = s.touch(l)
	return nil
}

// detachRemote forgets the remote socket listening on topic.
func (s *Service) detachRemote(id domain.SessionID, topic string) {
	s.mu.Lock()
	l, ok := s.live[id]
	s.mu.Unlock()
	if !ok {
		return
	}
	l.notifyMu.Lock()
	if l.remoteTopic == topic {
		l.notify, l.remoteTopic = nil, ""
	}
	l.notifyMu.Unlock()
}

// connectRemote attaches a WebSocket on this instance to a session held
// by owner: the token is checked against the stored hash, events arrive
// through a bus topic of this socket's own.
func (s *Service) connectRemote(ctx context.Context, owner string, sess domain.Session, token string, notify func(domain.SessionEvent)) (func(), error) {
	h := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(h[:], sess.TokenHash[:]) != 1 {
		return nil, fmt.Errorf("session %s: wrong token: %w", sess.ID, domain.ErrUnauthorized)
	}
	topic := "session:" + string(sess.ID) + ":" + randomID(8)
	var mu sync.Mutex // notify is called from the subscription goroutine only; guard anyway
	cancelSub, err := s.deps.Bus.Subscribe(ctx, topic, func(b []byte) {
		var ev domain.SessionEvent
		if json.Unmarshal(b, &ev) != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		notify(ev)
	})
	if err != nil {
		return nil, fmt.Errorf("connect session %s: %w", sess.ID, err)
	}
	if _, err := s.forward(ctx, owner, rpc{Method: "attach", Session: sess.ID, Topic: topic}); err != nil {
		cancelSub()
		return nil, err
	}
	// Watch the holder: if it dies (SIGKILL, crash), nothing would tell
	// the socket; say so and end it, so the viewer starts a new session.
	stop, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		t := time.NewTicker(ownerCheck)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			pctx, cancel := context.WithTimeout(context.Background(), ownerCheck)
			_, err := s.forward(pctx, owner, rpc{Method: "ping", Session: sess.ID})
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
			_, _ = s.forward(dctx, owner, rpc{Method: "detach", Session: sess.ID, Topic: topic})
		})
	}, nil
}
