package app

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"mediasvc/domain"
	"mediasvc/ports"
)

// Signaling of a session held here: its socket, offers and answers, ICE
// candidates, keyframe requests, stats and the peer's state. Routing
// (routing.go) has already decided the session is ours.

// connectLocal authenticates token and makes notify the session's event
// sink. domain.ErrUnauthorized for a wrong token, ErrConflict if a socket
// is attached already, ErrSessionClosed if it is closing.
func (s *Service) connectLocal(l *live, token string, notify func(domain.SessionEvent)) (func(), error) {
	h := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(h[:], l.token[:]) != 1 {
		return nil, fmt.Errorf("session %s: wrong token: %w", l.id, domain.ErrUnauthorized)
	}
	if err := s.setNotify(l, notify, nil); err != nil {
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { s.clearNotify(l, nil) }) }, nil
}

// setNotify attaches a socket's event sink (rl is its relay when the
// socket is on another instance) and touches the session from its owner.
func (s *Service) setNotify(l *live, notify func(domain.SessionEvent), rl *relay) error {
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return fmt.Errorf("session %s: %w", l.id, domain.ErrSessionClosed)
	case l.notify != nil:
		l.mu.Unlock()
		return fmt.Errorf("session %s already has a socket: %w", l.id, domain.ErrConflict)
	}
	l.notify, l.relay = notify, rl
	l.mu.Unlock()
	l.box.post(func() { _ = s.touch(l) }) // not found: the tick or the reaper ends it
	return nil
}

// clearNotify detaches the socket's sink if it is still rl's (nil: the
// local socket's).
func (s *Service) clearNotify(l *live, rl *relay) {
	l.mu.Lock()
	if l.relay != rl {
		l.mu.Unlock()
		return
	}
	l.notify, l.relay = nil, nil
	l.mu.Unlock()
	if rl != nil {
		rl.stop()
	}
}

// emit hands ev to the session's socket, if one is attached; it never
// blocks (a local socket queues, a remote one's relay publishes from its
// own goroutine). A panicking notify closes that session only.
func (s *Service) emit(l *live, ev domain.SessionEvent) {
	l.mu.Lock()
	n := l.notify
	l.mu.Unlock()
	if n == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			s.m.panicked(panicSessionNotify)
			l.log.Error("session notify panicked", "panic", r)
			go func() { _ = s.CloseSession(context.Background(), l.id, "internal_error") }()
		}
	}()
	n(ev)
}

// offerLocal answers the client's offer on the session's owner. A second
// offer renegotiates on the same peer (ICE restart, new transceiver).
// Errors: domain.ErrInvalidOffer, ErrDeviceUnavailable, ErrSessionClosed.
func (s *Service) offerLocal(ctx context.Context, l *live, sdp string, trickle bool) (string, error) {
	ctx, span := s.offerSpan(ctx, l)
	answer, err := call(ctx, l, "offer", func(ctx context.Context) (string, error) { return s.answer(ctx, l, sdp, trickle) })
	if err == nil {
		s.answered(l)
	}
	endSpan(span, err)
	return answer, err
}

// answer runs on the session's owner: the first offer joins the device's
// stream and builds the peer; every offer is answered and recorded in
// the store. No lock is held across any of it.
func (s *Service) answer(ctx context.Context, l *live, sdp string, trickle bool) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AnswerTimeout)
	defer cancel()
	l.mu.Lock()
	peer, closed := l.peer, l.closed
	l.mu.Unlock()
	if closed {
		return "", fmt.Errorf("offer for session %s: %w", l.id, domain.ErrSessionClosed)
	}
	sdp, err := s.filterOffer(ctx, l, sdp)
	if err != nil {
		return "", err
	}
	if peer == nil {
		if peer, err = s.newPeer(ctx, l, sdp, trickle); err != nil {
			return "", err
		}
	}
	answer, err := peer.Answer(ctx, sdp)
	if err != nil {
		return "", fmt.Errorf("answer for session %s: %w", l.id, err)
	}
	s.transition(l, domain.StateNegotiating, "offer")
	l.mu.Lock()
	connected := l.peerState == ports.PeerConnected
	l.mu.Unlock()
	if connected {
		// A renegotiation that kept the transport (a new transceiver, or
		// an ICE restart pion resolves without leaving connected) brings
		// no new connected state: the session is connected again now.
		s.transition(l, domain.StateConnected, "renegotiated")
	}
	return answer, nil
}

// newPeer joins the device's stream — the original, or the rendition the
// offer needs (one transcoder per device and rendition, shared) — and
// builds the session's peer, whose callbacks only post to the session's
// owner. An offer that takes neither is domain.ErrNoCommonCodec.
func (s *Service) newPeer(ctx context.Context, l *live, offer string, trickle bool) (ports.Peer, error) {
	fan, info, release, err := s.hub.Attach(ctx, l.device)
	if err != nil {
		return nil, fmt.Errorf("offer for session %s: %w", l.id, err)
	}
	current := info
	if ci, ok := s.hub.CurrentInfo(l.device); ok {
		current = ci
	}
	if pl := fan.ProfileLevelID(); pl != "" {
		current.ProfileLevelID = pl
	}
	r, err := s.deps.Transport.Negotiate(offer, current, s.hub.Renditions())
	if err != nil {
		release()
		return nil, fmt.Errorf("offer for session %s: %w", l.id, err)
	}
	if r != domain.RenditionOriginal {
		// l.info stays the original's: input maps to the device's picture.
		rfan, _, rrelease, err := s.hub.AttachRendition(ctx, l.device, r)
		if err != nil {
			release()
			return nil, fmt.Errorf("offer for session %s: %w", l.id, err)
		}
		orig := release
		fan = rfan
		release = func() { rrelease(); orig() }
		l.log.Info("viewer gets a rendition", "rendition", string(r))
	}
	l.mu.Lock()
	l.rendition = r
	l.mu.Unlock()
	peer, err := s.deps.Transport.NewPeer(ctx, fan, ports.PeerOptions{
		Session: l.id,
		Limits:  s.tunables().ICE,
		// The service's own agent allocates TURN relays under the
		// session's name too, for one TTL from now.
		ICEServers: domain.ICEServersFor(s.deps.Transport.ICEServers(), l.id, s.deps.Clock.Now().Add(l.ttl)),
		Trickle:    trickle,
		OnCandidate: func(c domain.Candidate) {
			s.emit(l, domain.SessionEvent{Type: domain.EventCandidate, Candidate: &c})
		},
		OnState:      func(st ports.PeerState) { l.box.post(func() { s.peerState(l, st) }) },
		OnFirstFrame: func() { l.box.post(func() { s.firstFrame(l); s.traceFirstFrame(l) }) },
	})
	if err != nil {
		release()
		return nil, fmt.Errorf("peer for session %s: %w", l.id, err)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = peer.Close()
		release()
		return nil, fmt.Errorf("offer for session %s: %w", l.id, domain.ErrSessionClosed)
	}
	l.peer, l.fanout, l.info, l.release = peer, fan, info, release
	l.mu.Unlock()
	s.iceEnter(l, stateNew)
	return peer, nil
}

// peerState follows the peer's connection, on the session's owner:
// connected moves the session to connected (its tick then keeps it
// alive); failed ends the session, and so does closed for WHEP.
func (s *Service) peerState(l *live, st ports.PeerState) {
	l.log.Info("peer state", "state", st)
	s.iceEnter(l, st)
	s.traceState(l, st)
	l.mu.Lock()
	l.peerState = st
	l.mu.Unlock()
	switch st {
	case ports.PeerConnected:
		s.transition(l, domain.StateConnected, "ice_connected")
		l.tick.Reset(s.tickEvery(l)) // the keepalive's period from now on
		s.emit(l, domain.SessionEvent{Type: domain.EventState, State: string(domain.StateConnected)})
	case ports.PeerFailed:
		s.emit(l, domain.SessionEvent{Type: domain.EventState, State: string(domain.StateFailed), Reason: "ice_failed"})
		_ = s.CloseSession(context.Background(), l.id, "ice_failed")
	case ports.PeerDisconnected:
		s.emit(l, domain.SessionEvent{Type: domain.EventState, State: "disconnected"})
	case ports.PeerClosed:
		if l.kind == "whep" {
			_ = s.CloseSession(context.Background(), l.id, "peer_closed")
		}
	}
}

// candidateLocal adds a remote ICE candidate to the session's peer.
func (s *Service) candidateLocal(ctx context.Context, l *live, c domain.Candidate) error {
	l.mu.Lock()
	peer := l.peer
	l.mu.Unlock()
	if peer == nil {
		return fmt.Errorf("candidate before offer on session %s: %w", l.id, domain.ErrConflict)
	}
	err := s.cfg.Candidates.Check(c.Candidate)
	if err == nil {
		err = peer.AddCandidate(c)
	}
	if err != nil {
		s.m.candRejected.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", candidateRejection(err))))
		return fmt.Errorf("add candidate to session %s: %w", l.id, err)
	}
	switch {
	case domain.IsMDNSCandidate(c.Candidate):
		s.m.candRejected.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", domain.CandidateMDNS)))
	case c.Candidate != "":
		s.m.candAdded.Add(ctx, 1)
	}
	return nil
}

// filterOffer removes from an offer the candidates the policy refuses and
// counts them (and its mDNS ones) in media_ice_candidates_rejected. An
// offer whose every candidate is refused is refused itself, with the
// first refusal (domain.ErrInvalidCandidate); one without candidates
// (trickle) passes.
func (s *Service) filterOffer(ctx context.Context, l *live, sdp string) (string, error) {
	out, refused, mdns, total := s.cfg.Candidates.FilterSDP(sdp)
	for _, r := range refused {
		s.m.candRejected.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", r)))
	}
	if mdns > 0 {
		s.m.candRejected.Add(ctx, int64(mdns), metric.WithAttributes(attribute.String("reason", domain.CandidateMDNS)))
	}
	if len(refused) == 0 {
		return sdp, nil
	}
	l.log.Info("offer candidates refused", "refused", refused, "candidates", total)
	if len(refused) == total {
		return "", fmt.Errorf("offer for session %s: every candidate refused, the first: %w", l.id,
			s.cfg.Candidates.Check(firstCandidate(sdp)))
	}
	return out, nil
}

// firstCandidate returns the first a=candidate line of sdp.
func firstCandidate(sdp string) string {
	for line := range strings.Lines(sdp) {
		if l := strings.TrimRight(line, "\r\n"); strings.HasPrefix(l, "a=candidate:") {
			return l
		}
	}
	return ""
}

// keyframeLocal asks the device's capture for a keyframe on behalf of the
// session (coalesced with other viewers' requests by the fanout).
func (s *Service) keyframeLocal(l *live) error {
	l.mu.Lock()
	fan := l.fanout
	l.mu.Unlock()
	if fan == nil {
		return fmt.Errorf("keyframe before offer on session %s: %w", l.id, domain.ErrConflict)
	}
	fan.RequestKeyframe()
	return nil
}

// statsLocal returns the session's quality; zeros before its peer exists.
func (s *Service) statsLocal(l *live) domain.QualityStats {
	l.mu.Lock()
	peer, r := l.peer, l.rendition
	l.mu.Unlock()
	if peer == nil {
		return domain.QualityStats{At: s.deps.Clock.Now(), State: "new"}
	}
	q := peer.Stats()
	q.Rendition = r.String()
	return q
}
