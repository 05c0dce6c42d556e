// Package app holds mediasvc's use cases: sessions and their signaling, the
// stream hub that fans one capture out to many viewers, input delivery and
// session expiry. It speaks to the world only through ports.
package app

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	nooptrace "go.opentelemetry.io/otel/trace/noop"

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
	// Candidates says which addresses remote candidates (trickled or in
	// an offer) may point the service's agents at.
	Candidates domain.CandidatePolicy
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
	// Stills decodes a keyframe into a screenshot for sources that have
	// Keyframes but no Files; nil answers their screenshots with
	// domain.ErrUnavailable.
	Stills ports.StillDecoder
	// Transcoders make renditions (VP8, Constrained Baseline) for viewers
	// whose offer cannot take what a device sends; nil serves the
	// original only, and such a viewer gets domain.ErrNoCommonCodec.
	Transcoders ports.Transcoders
	// OwnerLimit limits session creation per owner (API key or client IP);
	// GlobalLimit limits it overall. Either may be nil.
	OwnerLimit  ports.RateLimiter
	GlobalLimit ports.RateLimiter
	Clock       ports.Clock
	// Meter records the service's metrics; nil records nothing.
	Meter metric.Meter
	// Tracer records the spans of session setups and forwarded calls
	// (tracing.go); nil records none.
	Tracer trace.Tracer
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
	// Walls makes device walls' PeerConnections (wall.go); nil: no wall.
	Walls ports.WallTransport
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

	mu   sync.Mutex // guards live; never held across I/O
	live map[domain.SessionID]*live

	holders holders // where sessions held elsewhere live (routing.go)

	tun          atomic.Pointer[Tunables] // what Reconfigure may change
	qualityReset chan time.Duration       // a new QualityInterval for Run

	farm *Farm // told when sessions end; nil without the device farm (UseFarm)

	recMu    sync.Mutex
	recorder *Recorder // closed by Drain before the captures; nil without recordings

	tracer trace.Tracer
}

// systemClock is ports.Clock on the time package.
type systemClock struct{}

func (systemClock) Now() time.Time                       { return time.Now() }
func (systemClock) NewTimer(d time.Duration) ports.Timer { return sysTimer{time.NewTimer(d)} }
func (systemClock) AfterFunc(d time.Duration, f func()) ports.Timer {
	return sysTimer{time.AfterFunc(d, f)}
}

type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time        { return t.t.C }
func (t sysTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }
func (t sysTimer) Stop() bool                 { return t.t.Stop() }

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
	s.tracer = deps.Tracer
	if s.tracer == nil {
		s.tracer = nooptrace.NewTracerProvider().Tracer(tracerName)
	}
	s.hub = newHub(s.src, deps.Transport, deps.Transcoders, deps.Clock, cfg.Hub, s.deviceCondition, log)
	s.qualityReset = make(chan time.Duration, 1)
	s.tun.Store(&Tunables{Quota: cfg.Quota, ICE: cfg.ICE, InputRate: cfg.InputRate, InputBurst: cfg.InputBurst,
		Bitrate: cfg.Hub.Bitrate, QualityInterval: cfg.QualityInterval})
	s.hub.m = s.m
	s.m.observeDevices(deps.Meter, s.Devices)
	return s
}

// Run reaps expired sessions, delivers device clipboards to controllers
// (clipboard.go) and, with a Meter, samples the viewers' quality into the
// quality histograms, until ctx is done. Expired sessions
// are found through the store's expiry index and closed outside any lock.
func (s *Service) Run(ctx context.Context) error {
	cctx, stopClip := context.WithCancel(ctx)
	var clip sync.WaitGroup
	clip.Go(func() { s.runClipboards(cctx) })
	defer clip.Wait()
	defer stopClip()
	t := s.deps.Clock.NewTimer(s.cfg.CleanupInterval)
	defer t.Stop()
	quality := s.tunables().QualityInterval
	q := s.deps.Clock.NewTimer(quality)
	defer q.Stop()
	var sampleC <-chan time.Time
	if s.m.enabled {
		sampleC = q.C()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case d := <-s.qualityReset:
			quality = d
			q.Reset(d)
		case <-t.C():
			if s.healthy() == nil {
				s.reap(ctx)
			}
			t.Reset(s.cfg.CleanupInterval)
		case <-sampleC:
			s.sampleQuality(ctx)
			q.Reset(quality)
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

// ICEServersFor returns the STUN/TURN servers handed to the client of
// sess: TURN REST servers with the session's own credentials, valid until
// sess.ExpiresAt.
func (s *Service) ICEServersFor(sess domain.Session) []domain.ICEServer {
	return domain.ICEServersFor(s.deps.Transport.ICEServers(), sess.ID, sess.ExpiresAt)
}

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

// deviceCondition tells every local viewer of device about its stream.
func (s *Service) deviceCondition(device domain.DeviceID, cond string) {
	for _, l := range s.snapshot(func(l *live) bool { return l.device == device }) {
		s.emit(l, domain.SessionEvent{Type: domain.EventState, State: cond})
	}
}
