package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime/debug"

	"golang.org/x/time/rate"

	"mediasvc/domain"
)

// Sessions held by this instance: creation, close, expiry and resync.
// Routing (routing.go) has already decided the session is ours.

// createLocal creates a session held by this instance and starts its
// owner. Errors: domain.ErrDraining, ErrDeviceNotFound and the store's
// (ErrLimitExceeded, ErrUnavailable).
func (s *Service) createLocal(ctx context.Context, device domain.DeviceID, role domain.Role, owner, kind string) (domain.Session, string, error) {
	if s.draining.Load() {
		return domain.Session{}, "", fmt.Errorf("create session: %w", domain.ErrDraining)
	}
	if _, _, err := s.src.device(ctx, device); err != nil {
		return domain.Session{}, "", err
	}
	id, token := randomID(16), randomID(32)
	now := s.deps.Clock.Now()
	sess := domain.NewSession(domain.SessionID(id), device, role, owner, s.cfg.SessionTTL, now)
	sess.TokenHash = sha256.Sum256([]byte(token))
	sess.Kind = kind
	sess.Instance = s.cfg.Instance
	tun := s.tunables()
	if err := s.deps.Store.Create(ctx, sess, tun.Quota); err != nil {
		return domain.Session{}, "", fmt.Errorf("create session: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	l := &live{
		id: sess.ID, device: device, role: role, kind: kind, token: sess.TokenHash, ttl: s.cfg.SessionTTL,
		input:   rate.NewLimiter(rate.Limit(tun.InputRate), tun.InputBurst),
		log:     s.log.With("session_id", sess.ID, "device_id", device),
		created: now, ctx: lctx, cancel: cancel, box: newMailbox(), done: make(chan struct{}),
		sess: sess,
	}
	s.startSetup(ctx, l)
	s.mu.Lock()
	s.live[sess.ID] = l
	s.mu.Unlock()
	s.m.active.Add(ctx, 1, sessionAttrs(role, kind))
	go s.own(l)
	l.log.Info("session created", "role", role, "kind", kind, "owner", owner)
	return sess, token, nil
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// liveSession returns the session id if this instance holds it, or nil.
func (s *Service) liveSession(id domain.SessionID) *live {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live[id]
}

// held returns the live session id, or domain.ErrSessionNotFound naming
// this instance.
func (s *Service) held(id domain.SessionID) (*live, error) {
	if l := s.liveSession(id); l != nil {
		return l, nil
	}
	return nil, fmt.Errorf("session %s is not held by %s: %w", id, s.cfg.Instance, domain.ErrSessionNotFound)
}

func (s *Service) snapshot(keep func(*live) bool) []*live {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*live, 0, len(s.live))
	for _, l := range s.live {
		if keep == nil || keep(l) {
			out = append(out, l)
		}
	}
	return out
}

// closeLocal tears down the live session id, if this instance holds it:
// bye to its socket, peer closed, viewer released, owner stopped. It
// reports whether it held the session. It never waits for the session's
// owner, which may be inside a slow store call or answer: it cancels it.
func (s *Service) closeLocal(id domain.SessionID, reason string) bool {
	s.mu.Lock()
	l, ok := s.live[id]
	delete(s.live, id)
	s.mu.Unlock()
	if !ok {
		return false
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return true
	}
	l.closed = true
	peer, release := l.peer, l.release
	l.peer, l.release = nil, nil
	l.mu.Unlock()
	l.cancel()
	s.emit(l, domain.SessionEvent{Type: domain.EventBye, Reason: reason})
	l.mu.Lock()
	rl := l.relay
	l.notify, l.relay = nil, nil
	l.mu.Unlock()
	// Each step runs whatever the one before did: a peer whose Close
	// panics still has its stream share released and the session counted
	// out.
	if rl != nil {
		s.closeStep(l, "relay", rl.stop) // after the bye: the relay flushes it first
	}
	if peer != nil {
		s.closeStep(l, "peer", func() {
			if err := peer.Close(); err != nil {
				l.log.Warn("close peer", "err", err)
			}
		})
	}
	if release != nil {
		s.closeStep(l, "release", release)
	}
	s.closeStep(l, "metrics", func() { s.sessionEnded(l, reason); s.traceClosed(l, reason) })
	l.mu.Lock()
	owner := l.sess.Owner
	l.mu.Unlock()
	s.closeStep(l, "farm", func() { s.farmClosed(domain.Session{ID: l.id, DeviceID: l.device, Owner: owner}) })
	l.log.Info("session closed", "reason", reason)
	return true
}

// closeStep runs one step of closeLocal; a panic is logged, counted and
// stops that step only.
func (s *Service) closeStep(l *live, step string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			s.m.panicked(panicSessionClose)
			l.log.Error("session close step panicked", "step", step, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	f()
}

// reap closes the sessions the store's expiry index says are over.
func (s *Service) reap(ctx context.Context) {
	for {
		expired, err := s.deps.Store.PopExpired(ctx, s.deps.Clock.Now(), 256)
		if err != nil {
			s.log.Warn("reap expired sessions", "err", err)
			return
		}
		for _, sess := range expired {
			s.log.Info("session expired", "session_id", sess.ID, "device_id", sess.DeviceID)
			if !s.closeLocal(sess.ID, "expired") {
				s.farmClosed(sess) // held by an instance that is gone, or by none
			}
		}
		if len(expired) < 256 {
			return
		}
	}
}

// Resync puts this instance's live sessions back into the store after it
// came back, possibly empty (a restarted Redis): each is touched, or
// created again when missing (quota not applied: it is already playing),
// in the state this instance holds it in. It returns the failures joined.
func (s *Service) Resync(ctx context.Context) error {
	var errs []error
	now := s.deps.Clock.Now()
	for _, l := range s.snapshot(nil) {
		// Get, not Touch: a store may skip a touch it deems too soon
		// (throttling) without looking.
		_, err := s.deps.Store.Get(ctx, l.id)
		if err == nil {
			// Still there: refresh it, so an outage longer than its TTL
			// does not get it reaped now.
			err = s.deps.Store.Touch(ctx, l.id, now)
		}
		if !errors.Is(err, domain.ErrSessionNotFound) {
			if err != nil && !errors.Is(err, domain.ErrSessionClosed) {
				errs = append(errs, err)
			}
			continue
		}
		l.mu.Lock()
		sess, closed := l.sess, l.closed
		l.mu.Unlock()
		if closed {
			continue
		}
		sess.UpdatedAt, sess.ExpiresAt = now, now.Add(sess.TTL)
		if err := s.deps.Store.Create(ctx, sess, domain.Quota{}); err != nil && !errors.Is(err, domain.ErrSessionExists) {
			errs = append(errs, err)
			continue
		}
		l.log.Info("session put back into the store")
	}
	return errors.Join(errs...)
}
