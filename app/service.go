// Package app holds mediasvc's use cases: sessions and their signaling, the
// stream hub that fans one capture out to many viewers, input delivery and
// session expiry. It speaks to the world only through ports.
package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/time/rate"

	"mediasvc/domain"
	"mediasvc/ports"
)

// Config tunes the service.
type Config struct {
	// Instance is this instance's id, recorded on its sessions.
	Instance string
	// SessionTTL is how long a session lives without activity.
	SessionTTL time.Duration
	// Quota bounds the number of sessions.
	Quota domain.Quota
	// ICE bounds what remote peers may send.
	ICE domain.ICELimits
	// InputRate and InputBurst limit each controller's input events.
	InputRate  float64
	InputBurst int
	// AnswerTimeout bounds building an answer (WHEP waits for candidate
	// gathering within it).
	AnswerTimeout time.Duration
	// CleanupInterval is how often expired sessions are reaped.
	CleanupInterval time.Duration
	// Hub tunes the stream hub.
	Hub HubConfig
	// QualityInterval is how often every connected viewer's quality is
	// sampled into the quality histograms (default 5 s). Sampling runs only
	// with a Meter.
	QualityInterval time.Duration
}

// Deps are the ports the service drives.
type Deps struct {
	Store     ports.SessionStore
	Sources   []Source
	Transport ports.Transport
	// OwnerLimit limits session creation per owner (API key or client IP);
	// GlobalLimit limits it overall. Either may be nil.
	OwnerLimit  ports.RateLimiter
	GlobalLimit ports.RateLimiter
	Clock       ports.Clock
	// Meter records the service's metrics; nil records nothing.
	Meter metric.Meter
	// Healthy reports whether the shared store is usable now: nil, or why
	// not. While it is not, Ready is false, new sessions are refused with
	// domain.ErrUnavailable and reaping pauses; live sessions keep playing.
	// Nil means always healthy (the in-memory store).
	Healthy func() error
	// Instances lists the instances sharing the store; nil means this one
	// alone.
	Instances ports.InstanceRegistry
	// Bus forwards signaling for sessions held by other instances; nil
	// serves only the sessions created here.
	Bus ports.Bus
	// Leases decide which instance captures a device (see RunOwnership);
	// nil means each instance captures the devices it sees.
	Leases ports.DeviceLeases
}

// Service is the application: the HTTP adapter calls it.
type Service struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	hub  *Hub
	src  *sourceSet
	m    *metrics

	draining atomic.Bool
	started  time.Time

	leaseMu sync.Mutex
	leases  map[domain.DeviceID]domain.Lease // held by this instance

	mu   sync.Mutex
	live map[domain.SessionID]*live
}

// live is a session held by this instance: its peer and its socket.
type live struct {
	id       domain.SessionID
	device   domain.DeviceID
	role     domain.Role
	kind     string
	token    [32]byte
	input    *rate.Limiter
	log      *slog.Logger
	ttl      time.Duration
	sess     domain.Session // as created, for Resync
	notifyMu sync.Mutex
	notify   func(domain.SessionEvent)
	// remoteTopic is the bus topic notify publishes to when the socket
	// is on another instance; guarded by notifyMu.
	remoteTopic string

	mu        sync.Mutex // guards the fields below
	peer      ports.Peer
	fanout    ports.Fanout
	info      domain.StreamInfo
	release   func()
	keepalive *time.Timer

	created time.Time
	iceMu   sync.Mutex // guards ice
	ice     iceTracker
	// watch checks, until the keepalive takes over, that the store still
	// has the session: another instance may reap it (shared store).
	watch  *time.Timer
	closed bool
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// New returns the service. Call Run to reap expired sessions and Close (or
// Drain) to stop it.
func New(cfg Config, deps Deps, log *slog.Logger) *Service {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = time.Minute
	}
	if cfg.ICE.MaxCandidates <= 0 {
		cfg.ICE = domain.DefaultICELimits
	}
	if cfg.InputRate <= 0 {
		cfg.InputRate, cfg.InputBurst = 30, 60
	}
	if cfg.AnswerTimeout <= 0 {
		cfg.AnswerTimeout = 10 * time.Second
	}
	if cfg.CleanupInterval <= 0 {
		cfg.CleanupInterval = time.Second
	}
	if cfg.QualityInterval <= 0 {
		cfg.QualityInterval = 5 * time.Second
	}
	if deps.Clock == nil {
		deps.Clock = systemClock{}
	}
	s := &Service{cfg: cfg, deps: deps, log: log, started: deps.Clock.Now(), src: &sourceSet{list: deps.Sources}, live: make(map[domain.SessionID]*live), leases: make(map[domain.DeviceID]domain.Lease)}
	s.m = newMetrics(deps.Meter)
	s.hub = newHub(s.src, deps.Transport, cfg.Hub, s.deviceCondition, log)
	s.hub.m = s.m
	s.m.observeDevices(deps.Meter, s.Devices)
	return s
}

// Run reaps expired sessions and, with a Meter, samples the viewers'
// quality into the quality histograms, until ctx is done. Expired sessions
// are found through the store's expiry index and closed outside any lock.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.CleanupInterval)
	defer t.Stop()
	var sampleC <-chan time.Time
	if s.m.enabled {
		q := time.NewTicker(s.cfg.QualityInterval)
		defer q.Stop()
		sampleC = q.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if s.healthy() == nil {
				s.reap(ctx)
			}
		case <-sampleC:
			s.sampleQuality(ctx)
		}
	}
}

func (s *Service) reap(ctx context.Context) {
	for {
		expired, err := s.deps.Store.PopExpired(ctx, s.deps.Clock.Now(), 256)
		if err != nil {
			s.log.Warn("reap expired sessions", "err", err)
			return
		}
		for _, sess := range expired {
			s.log.Info("session expired", "session_id", sess.ID, "device_id", sess.DeviceID)
			s.closeLocal(sess.ID, "expired")
		}
		if len(expired) < 256 {
			return
		}
	}
}

// Ready reports whether the service accepts new sessions: not draining,
// and the store is usable.
func (s *Service) Ready() bool { return !s.draining.Load() && s.healthy() == nil }

func (s *Service) healthy() error {
	if s.deps.Healthy == nil {
		return nil
	}
	return s.deps.Healthy()
}

// Instances lists the live instances sharing the session store (this one
// alone without a registry). Errors wrap domain.ErrUnavailable.
func (s *Service) Instances(ctx context.Context) ([]domain.Instance, error) {
	if s.deps.Instances == nil {
		return []domain.Instance{{ID: s.cfg.Instance, StartedAt: s.started, HeartbeatAt: s.deps.Clock.Now()}}, nil
	}
	return s.deps.Instances.Instances(ctx)
}

// Resync puts this instance's live sessions back into the store after it
// came back, possibly empty (a restarted Redis): each is touched, or
// created again when missing (quota not applied: it is already playing).
// It returns the failures joined.
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
		sess := l.sess
		l.mu.Lock()
		switch {
		case l.closed:
			l.mu.Unlock()
			continue
		case l.keepalive != nil:
			sess.State = domain.StateConnected
		case l.peer != nil:
			sess.State = domain.StateNegotiating
		}
		l.mu.Unlock()
		sess.UpdatedAt, sess.ExpiresAt = now, now.Add(sess.TTL)
		if err := s.deps.Store.Create(ctx, sess, domain.Quota{}); err != nil && !errors.Is(err, domain.ErrSessionExists) {
			errs = append(errs, err)
			continue
		}
		l.log.Info("session put back into the store")
	}
	return errors.Join(errs...)
}

// ICEServers returns the STUN/TURN servers handed to clients.
func (s *Service) ICEServers() []domain.ICEServer { return s.deps.Transport.ICEServers() }

// Devices lists every source's devices with this instance's viewer counts.
func (s *Service) Devices(ctx context.Context) ([]domain.Device, error) {
	ds, err := s.src.devices(ctx)
	if err != nil {
		return nil, err
	}
	for i := range ds {
		ds[i].Viewers = s.hub.Viewers(ds[i].ID)
	}
	return ds, nil
}

// Device returns one device or domain.ErrDeviceNotFound.
func (s *Service) Device(ctx context.Context, id domain.DeviceID) (domain.Device, error) {
	d, _, err := s.src.device(ctx, id)
	if err != nil {
		return domain.Device{}, err
	}
	d.Viewers = s.hub.Viewers(id)
	return d, nil
}

// CreateSession creates a session for a viewer of device and returns it with
// the token its WebSocket must present. Errors: domain.ErrDraining,
// ErrInvalidRequest (bad role), ErrDeviceNotFound, ErrRateLimited
// (*domain.RateLimitError), ErrLimitExceeded.
func (s *Service) CreateSession(ctx context.Context, device domain.DeviceID, role domain.Role, owner string) (domain.Session, string, error) {
	return s.create(ctx, device, role, owner, "ws")
}

func (s *Service) create(ctx context.Context, device domain.DeviceID, role domain.Role, owner, kind string) (domain.Session, string, error) {
	sess, token, err := s.createRouted(ctx, device, role, owner, kind)
	s.m.created.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", createOutcome(err)), attribute.String("kind", kind)))
	return sess, token, err
}

// createRouted creates the session on the instance that holds the device.
func (s *Service) createRouted(ctx context.Context, device domain.DeviceID, role domain.Role, owner, kind string) (domain.Session, string, error) {
	holder, err := s.admit(ctx, device, role, owner)
	if err != nil {
		return domain.Session{}, "", err
	}
	if holder != "" {
		rep, err := s.forward(ctx, holder, rpc{Method: "create", Device: device, Role: role, User: owner, Kind: kind})
		if err != nil || rep.Session == nil {
			return domain.Session{}, "", errors.Join(err, s.noSession(rep.Session))
		}
		return *rep.Session, rep.Token, nil
	}
	return s.createLocal(ctx, device, role, owner, kind)
}

// noSession is the error for a forwarded creation that returned none.
func (s *Service) noSession(sess *domain.Session) error {
	if sess != nil {
		return nil
	}
	return fmt.Errorf("create session: the device owner returned no session: %w", domain.ErrUnavailable)
}

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

// createLocal creates a session held by this instance.
func (s *Service) createLocal(ctx context.Context, device domain.DeviceID, role domain.Role, owner, kind string) (domain.Session, string, error) {
	if s.draining.Load() {
		return domain.Session{}, "", fmt.Errorf("create session: %w", domain.ErrDraining)
	}
	if _, _, err := s.src.device(ctx, device); err != nil {
		return domain.Session{}, "", err
	}
	id, token := randomID(16), randomID(32)
	sess := domain.NewSession(domain.SessionID(id), device, role, owner, s.cfg.SessionTTL, s.deps.Clock.Now())
	sess.TokenHash = sha256.Sum256([]byte(token))
	sess.Kind = kind
	sess.Instance = s.cfg.Instance
	l := &live{
		id: sess.ID, device: device, role: role, kind: kind, token: sess.TokenHash, ttl: s.cfg.SessionTTL, sess: sess,
		input: rate.NewLimiter(rate.Limit(s.cfg.InputRate), s.cfg.InputBurst),
		log:   s.log.With("session_id", sess.ID, "device_id", device),

		created: s.deps.Clock.Now(),
	}
	s.mu.Lock()
	s.live[sess.ID] = l
	s.mu.Unlock()
	if err := s.deps.Store.Create(ctx, sess, s.cfg.Quota); err != nil {
		s.mu.Lock()
		delete(s.live, sess.ID)
		s.mu.Unlock()
		return domain.Session{}, "", fmt.Errorf("create session: %w", err)
	}
	s.m.active.Add(ctx, 1, sessionAttrs(role, kind))
	l.mu.Lock()
	l.watch = time.AfterFunc(l.ttl/2, func() { s.watchTick(l) })
	l.mu.Unlock()
	l.log.Info("session created", "role", role, "kind", kind, "owner", owner)
	return sess, token, nil
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Session returns a stored session or domain.ErrSessionNotFound.
func (s *Service) Session(ctx context.Context, id domain.SessionID) (domain.Session, error) {
	return s.deps.Store.Get(ctx, id)
}

// CloseSession ends a session: it is removed from the store, its peer
// closed and its socket told bye with reason. domain.ErrSessionNotFound if
// it does not exist.
func (s *Service) CloseSession(ctx context.Context, id domain.SessionID, reason string) error {
	sess, err := s.deps.Store.Delete(ctx, id)
	local := s.closeLocal(id, reason)
	if err == nil && !local && s.deps.Bus != nil && sess.Instance != "" && sess.Instance != s.cfg.Instance {
		// Tell the holder now rather than at its next keepalive.
		if _, ferr := s.forward(ctx, sess.Instance, rpc{Method: "close", Session: id, Reason: reason}); ferr != nil {
			s.log.Warn("forward close", "session_id", id, "instance", sess.Instance, "err", ferr)
		}
	}
	if err != nil && !(local && errors.Is(err, domain.ErrSessionNotFound)) {
		return fmt.Errorf("close session %s: %w", id, err)
	}
	return nil
}

// remoteFor reports whether id is held by another instance reachable over
// the bus, and which.
func (s *Service) remoteFor(ctx context.Context, id domain.SessionID) (string, domain.Session, bool) {
	s.mu.Lock()
	_, local := s.live[id]
	s.mu.Unlock()
	if local {
		return "", domain.Session{}, false
	}
	return s.remoteOwner(ctx, id)
}

// lookup returns the live session id held by this instance.
func (s *Service) lookup(ctx context.Context, id domain.SessionID) (*live, error) {
	s.mu.Lock()
	l, ok := s.live[id]
	s.mu.Unlock()
	if ok {
		return l, nil
	}
	if _, err := s.deps.Store.Get(ctx, id); err != nil {
		return nil, err
	}
	// Stored but held elsewhere (another instance) or already closing.
	return nil, fmt.Errorf("session %s is not held by this instance: %w", id, domain.ErrSessionNotFound)
}

// Connect authenticates token for the session's WebSocket and registers
// notify for its events. It returns domain.ErrUnauthorized for a wrong
// token and domain.ErrConflict if a socket is already attached. detach
// forgets notify; it does not close the session.
func (s *Service) Connect(ctx context.Context, id domain.SessionID, token string, notify func(domain.SessionEvent)) (func(), error) {
	if owner, sess, ok := s.remoteFor(ctx, id); ok {
		return s.connectRemote(ctx, owner, sess, token, notify)
	}
	l, err := s.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(h[:], l.token[:]) != 1 {
		return nil, fmt.Errorf("session %s: wrong token: %w", id, domain.ErrUnauthorized)
	}
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	if l.notify != nil {
		return nil, fmt.Errorf("session %s already has a socket: %w", id, domain.ErrConflict)
	}
	l.notify = notify
	_ = s.touch(l) // not found: the keepalive or the reaper ends it
	var once sync.Once
	return func() {
		once.Do(func() {
			l.notifyMu.Lock()
			l.notify, l.remoteTopic = nil, ""
			l.notifyMu.Unlock()
		})
	}, nil
}

// emit hands ev to the session's socket, if one is attached. A panicking
// notify closes that session only.
func (s *Service) emit(l *live, ev domain.SessionEvent) {
	l.notifyMu.Lock()
	n := l.notify
	l.notifyMu.Unlock()
	if n == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			l.log.Error("session notify panicked", "panic", r)
			go func() { _ = s.CloseSession(context.Background(), l.id, "internal_error") }()
		}
	}()
	n(ev)
}

// Offer answers the client's SDP offer; local candidates trickle to the
// socket. A second offer renegotiates (ICE restart). Errors:
// domain.ErrSessionNotFound, ErrInvalidOffer, ErrDeviceUnavailable,
// ErrSessionClosed.
func (s *Service) Offer(ctx context.Context, id domain.SessionID, sdp string) (string, error) {
	if owner, _, ok := s.remoteFor(ctx, id); ok {
		rep, err := s.forward(ctx, owner, rpc{Method: "offer", Session: id, SDP: sdp})
		return rep.SDP, err
	}
	l, err := s.lookup(ctx, id)
	if err != nil {
		return "", err
	}
	return s.answer(ctx, l, sdp, true)
}

func (s *Service) answer(ctx context.Context, l *live, sdp string, trickle bool) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AnswerTimeout)
	defer cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return "", fmt.Errorf("offer for session %s: %w", l.id, domain.ErrSessionClosed)
	}
	if l.peer == nil {
		fan, info, release, err := s.hub.Attach(ctx, l.device)
		if err != nil {
			return "", fmt.Errorf("offer for session %s: %w", l.id, err)
		}
		peer, err := s.deps.Transport.NewPeer(ctx, fan, ports.PeerOptions{
			Session: l.id,
			Limits:  s.cfg.ICE,
			Trickle: trickle,
			OnCandidate: func(c domain.Candidate) {
				s.emit(l, domain.SessionEvent{Type: domain.EventCandidate, Candidate: &c})
			},
			OnState:      func(st ports.PeerState) { s.peerState(l, st) },
			OnFirstFrame: func() { s.firstFrame(l) },
		})
		if err != nil {
			release()
			return "", fmt.Errorf("peer for session %s: %w", l.id, err)
		}
		s.iceEnter(l, stateNew)
		l.peer, l.fanout, l.info, l.release = peer, fan, info, release
	}
	answer, err := l.peer.Answer(ctx, sdp)
	if err != nil {
		return "", fmt.Errorf("answer for session %s: %w", l.id, err)
	}
	s.transition(ctx, l, domain.StateNegotiating, "offer")
	return answer, nil
}

// transition records a state change in the store; a refused transition is
// logged, not fatal (the peer's state is the truth for the live session).
func (s *Service) transition(ctx context.Context, l *live, to domain.State, reason string) {
	now := s.deps.Clock.Now()
	_, err := s.deps.Store.Update(ctx, l.id, func(sess *domain.Session) error {
		if sess.State == to {
			return nil
		}
		if err := sess.Transition(to, reason, now); err != nil {
			return err
		}
		return sess.Touch(now)
	})
	if err != nil && !errors.Is(err, domain.ErrSessionNotFound) {
		l.log.Debug("session transition", "to", to, "err", err)
	}
}

// peerState follows the peer's connection: connected starts the keepalive
// that keeps the session from expiring; failed and closed end the session.
func (s *Service) peerState(l *live, st ports.PeerState) {
	defer func() {
		if r := recover(); r != nil {
			l.log.Error("peer state handler panicked", "panic", r)
			go func() { _ = s.CloseSession(context.Background(), l.id, "internal_error") }()
		}
	}()
	l.log.Info("peer state", "state", st)
	s.iceEnter(l, st)
	switch st {
	case ports.PeerConnected:
		s.transition(context.Background(), l, domain.StateConnected, "ice_connected")
		s.keepalive(l)
		s.emit(l, domain.SessionEvent{Type: domain.EventState, State: string(domain.StateConnected)})
	case ports.PeerFailed:
		s.emit(l, domain.SessionEvent{Type: domain.EventState, State: string(domain.StateFailed), Reason: "ice_failed"})
		go func() { _ = s.CloseSession(context.Background(), l.id, "ice_failed") }()
	case ports.PeerDisconnected:
		s.emit(l, domain.SessionEvent{Type: domain.EventState, State: "disconnected"})
	case ports.PeerClosed:
		if l.kind == "whep" {
			go func() { _ = s.CloseSession(context.Background(), l.id, "peer_closed") }()
		}
	}
}

// watchTick closes a session not yet connected (no keepalive) once the
// store has lost it — reaped or deleted by another instance — and checks
// again every half TTL otherwise. A connected session is the keepalive's.
func (s *Service) watchTick(l *live) {
	l.mu.Lock()
	done := l.closed || l.keepalive != nil
	l.mu.Unlock()
	if done {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err := s.deps.Store.Get(ctx, l.id)
	cancel()
	if errors.Is(err, domain.ErrSessionNotFound) {
		s.closeLocal(l.id, "expired")
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed && l.keepalive == nil {
		l.watch.Reset(l.ttl / 2)
	}
}

// keepalive touches a connected session in the store every third of its
// TTL, so a playing viewer never expires and a dead one does.
func (s *Service) keepalive(l *live) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.keepalive != nil {
		return
	}
	var tick func()
	tick = func() {
		if err := s.touch(l); errors.Is(err, domain.ErrSessionNotFound) {
			// Gone from the store: reaped or deleted by another instance.
			s.closeLocal(l.id, "expired")
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if !l.closed {
			l.keepalive.Reset(l.ttl / 3)
		}
	}
	l.keepalive = time.AfterFunc(l.ttl/3, tick)
}

// touch extends the session's life in the store and returns the store's
// error; only a failure other than not-found is logged.
func (s *Service) touch(l *live) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.deps.Store.Touch(ctx, l.id, s.deps.Clock.Now())
	if err != nil && !errors.Is(err, domain.ErrSessionNotFound) {
		l.log.Warn("touch session", "err", err)
	}
	return err
}

// AddCandidate adds a remote ICE candidate to the session's peer.
// domain.ErrTooManyCandidates past the limit, ErrInvalidCandidate when
// malformed, ErrConflict before an offer.
func (s *Service) AddCandidate(ctx context.Context, id domain.SessionID, c domain.Candidate) error {
	if owner, _, ok := s.remoteFor(ctx, id); ok {
		_, err := s.forward(ctx, owner, rpc{Method: "candidate", Session: id, Candidate: &c})
		return err
	}
	l, err := s.lookup(ctx, id)
	if err != nil {
		return err
	}
	l.mu.Lock()
	peer := l.peer
	l.mu.Unlock()
	if peer == nil {
		return fmt.Errorf("candidate before offer on session %s: %w", id, domain.ErrConflict)
	}
	if err := peer.AddCandidate(c); err != nil {
		s.m.candRejected.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", candidateRejection(err))))
		return fmt.Errorf("add candidate to session %s: %w", id, err)
	}
	if c.Candidate != "" {
		s.m.candAdded.Add(ctx, 1)
	}
	return nil
}

// RequestKeyframe asks the device's capture for a keyframe on behalf of the
// session (coalesced with other viewers' requests by the fanout).
func (s *Service) RequestKeyframe(ctx context.Context, id domain.SessionID) error {
	if owner, _, ok := s.remoteFor(ctx, id); ok {
		_, err := s.forward(ctx, owner, rpc{Method: "keyframe", Session: id})
		return err
	}
	l, err := s.lookup(ctx, id)
	if err != nil {
		return err
	}
	l.mu.Lock()
	fan := l.fanout
	l.mu.Unlock()
	if fan == nil {
		return fmt.Errorf("keyframe before offer on session %s: %w", id, domain.ErrConflict)
	}
	fan.RequestKeyframe()
	return nil
}

// SessionStats returns the session's quality. A session without a peer
// yet reports zeros.
func (s *Service) SessionStats(ctx context.Context, id domain.SessionID) (domain.QualityStats, error) {
	if owner, _, ok := s.remoteFor(ctx, id); ok {
		rep, err := s.forward(ctx, owner, rpc{Method: "stats", Session: id})
		if err != nil || rep.Stats == nil {
			return domain.QualityStats{}, err
		}
		return *rep.Stats, nil
	}
	l, err := s.lookup(ctx, id)
	if err != nil {
		return domain.QualityStats{}, err
	}
	l.mu.Lock()
	peer := l.peer
	l.mu.Unlock()
	if peer == nil {
		return domain.QualityStats{At: s.deps.Clock.Now(), State: "new"}, nil
	}
	return peer.Stats(), nil
}

// Input delivers a controller's input to the device. Errors:
// domain.ErrForbidden for viewers, ErrRateLimited past the session's input
// rate, ErrInvalidInput when malformed or out of the video, ErrConflict
// before the stream started, and the device's own errors.
func (s *Service) Input(ctx context.Context, id domain.SessionID, ev domain.InputEvent) error {
	if owner, _, ok := s.remoteFor(ctx, id); ok {
		_, err := s.forward(ctx, owner, rpc{Method: "input", Session: id, Input: &ev})
		return err
	}
	l, err := s.lookup(ctx, id)
	if err != nil {
		return err
	}
	if l.role != domain.RoleController {
		return fmt.Errorf("input on session %s: viewers may not send input: %w", id, domain.ErrForbidden)
	}
	if r := l.input.Reserve(); r.Delay() > 0 {
		d := r.Delay()
		r.Cancel()
		err := &domain.RateLimitError{Limit: "input", RetryAfter: d}
		s.rateLimited(ctx, err, "input")
		return err
	}
	l.mu.Lock()
	info := l.info
	started := l.peer != nil
	l.mu.Unlock()
	if !started {
		return fmt.Errorf("input before offer on session %s: %w", id, domain.ErrConflict)
	}
	// The viewer clicks on the picture it sees now: a capture reopened
	// since it joined (a rotated device) may have another size.
	if cur, ok := s.hub.CurrentInfo(l.device); ok && cur.Width > 0 && cur.Height > 0 {
		info = cur
	}
	if err := ev.Validate(info.Width, info.Height); err != nil {
		return err
	}
	d, src, err := s.src.device(ctx, l.device)
	if err != nil {
		return err
	}
	if src.Input == nil {
		return fmt.Errorf("device %s takes no input: %w", l.device, domain.ErrForbidden)
	}
	if ev, err = ev.MapToDevice(info.Width, info.Height, d.Width, d.Height); err != nil {
		return err
	}
	if err := src.Input.Input(ctx, l.device, ev); err != nil {
		return fmt.Errorf("input to %s: %w", l.device, err)
	}
	return nil
}

// WHEP creates a viewer session for device and answers offer with every
// local candidate gathered (RFC 9725). Errors as CreateSession and Offer;
// on error nothing is left behind.
func (s *Service) WHEP(ctx context.Context, device domain.DeviceID, owner string, offer string) (domain.Session, string, error) {
	holder, err := s.admit(ctx, device, domain.RoleViewer, owner)
	if err != nil {
		return domain.Session{}, "", err
	}
	if holder != "" {
		rep, err := s.forward(ctx, holder, rpc{Method: "whep", Device: device, User: owner, SDP: offer})
		if err != nil || rep.Session == nil {
			return domain.Session{}, "", errors.Join(err, s.noSession(rep.Session))
		}
		return *rep.Session, rep.SDP, nil
	}
	return s.whepLocal(ctx, device, owner, offer)
}

// whepLocal is WHEP for a session held by this instance.
func (s *Service) whepLocal(ctx context.Context, device domain.DeviceID, owner string, offer string) (domain.Session, string, error) {
	sess, _, err := s.createLocal(ctx, device, domain.RoleViewer, owner, "whep")
	if err != nil {
		return domain.Session{}, "", err
	}
	s.mu.Lock()
	l := s.live[sess.ID]
	s.mu.Unlock()
	if l == nil {
		return domain.Session{}, "", fmt.Errorf("whep session %s vanished: %w", sess.ID, domain.ErrSessionClosed)
	}
	answer, err := s.answer(ctx, l, offer, false)
	if err != nil {
		_ = s.CloseSession(context.WithoutCancel(ctx), sess.ID, "offer_failed")
		return domain.Session{}, "", err
	}
	return sess, answer, nil
}

// deviceCondition tells every local viewer of device about its stream.
func (s *Service) deviceCondition(device domain.DeviceID, cond string) {
	for _, l := range s.snapshot(func(l *live) bool { return l.device == device }) {
		s.emit(l, domain.SessionEvent{Type: domain.EventState, State: cond})
	}
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
// bye to its socket, peer closed, viewer released. It reports whether it
// held the session. No service-wide lock is held while the peer closes.
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
	peer, release, ka := l.peer, l.release, l.keepalive
	if l.watch != nil {
		l.watch.Stop()
	}
	l.mu.Unlock()
	if ka != nil {
		ka.Stop()
	}
	s.emit(l, domain.SessionEvent{Type: domain.EventBye, Reason: reason})
	if peer != nil {
		if err := peer.Close(); err != nil {
			l.log.Warn("close peer", "err", err)
		}
	}
	if release != nil {
		release()
	}
	s.sessionEnded(l, reason)
	l.log.Info("session closed", "reason", reason)
	return true
}

// StopAccepting makes Ready false and refuses new sessions, leaving the
// live ones playing: the first step of a drain, so load balancers see the
// instance leave before its viewers are told bye.
func (s *Service) StopAccepting() { s.draining.Store(true) }

// Drain refuses new sessions, tells every socket bye with reason, closes
// every peer and stops every capture. It returns when done or when ctx
// ends.
func (s *Service) Drain(ctx context.Context, reason string) error {
	s.draining.Store(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for _, l := range s.snapshot(nil) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = s.deps.Store.Delete(context.WithoutCancel(ctx), l.id)
				s.closeLocal(l.id, reason)
			}()
		}
		wg.Wait()
		s.hub.Close()
		s.m.unregister()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("drain: %w", ctx.Err())
	}
}
