package app

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"mediasvc/domain"
	"mediasvc/ports"
)

// Histogram bucket boundaries, chosen for what each instrument measures.
var (
	bucketsSetup     = []float64{0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30}
	bucketsDuration  = []float64{1, 5, 15, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600}
	bucketsFrameRate = []float64{1, 5, 10, 15, 20, 24, 28, 30, 45, 60}
	bucketsBitrate   = []float64{100e3, 250e3, 500e3, 750e3, 1e6, 1.5e6, 2e6, 2.5e6, 3e6, 4e6, 6e6}
	bucketsLoss      = []float64{0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5}
	bucketsMillis    = []float64{1, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000}
)

// metrics are the application's instruments. None carries a session id:
// labels come only from small sets (role, kind, outcome, state, reason,
// limit, device id).
type metrics struct {
	enabled bool
	devices metric.Registration // the per-device gauges' callback; nil without a Meter

	active         metric.Int64UpDownCounter
	created        metric.Int64Counter
	duration       metric.Float64Histogram
	iceState       metric.Int64UpDownCounter
	iceTransitions metric.Int64Counter
	candAdded      metric.Int64Counter
	candRejected   metric.Int64Counter
	toConnected    metric.Float64Histogram
	toFirstFrame   metric.Float64Histogram
	frameRate      metric.Float64Histogram
	bitrate        metric.Float64Histogram
	loss           metric.Float64Histogram
	jitter         metric.Float64Histogram
	rtt            metric.Float64Histogram
	rateLimited    metric.Int64Counter

	captures        metric.Int64UpDownCounter
	wallCaptures    metric.Int64UpDownCounter
	walls           metric.Int64UpDownCounter
	wallTiles       metric.Int64UpDownCounter
	wallOffers      metric.Int64Counter
	captureRestarts metric.Int64Counter
	captureFailures metric.Int64Counter
	capturePanics   metric.Int64Counter
	panics          metric.Int64Counter
	sourceKeyframes metric.Int64Counter
	bitrateTarget   metric.Int64Gauge
	bitrateChanges  metric.Int64Counter

	transcoders        metric.Int64UpDownCounter
	transcoderRestarts metric.Int64Counter
	transcoderFailures metric.Int64Counter
	transcoderKeyReqs  metric.Int64Counter
}

// newMetrics creates the instruments on m; a nil m records nothing (and
// disables the quality sampler).
func newMetrics(m metric.Meter) *metrics {
	mt := &metrics{enabled: m != nil}
	if m == nil {
		m = noop.NewMeterProvider().Meter("mediasvc/app")
	}
	// An instrument the SDK refuses (a bad name) is replaced by a no-op:
	// metrics never stop the service.
	i64c := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		if err != nil || c == nil {
			c, _ = noop.NewMeterProvider().Meter("").Int64Counter(name)
		}
		return c
	}
	i64ud := func(name, desc string) metric.Int64UpDownCounter {
		c, err := m.Int64UpDownCounter(name, metric.WithDescription(desc))
		if err != nil || c == nil {
			c, _ = noop.NewMeterProvider().Meter("").Int64UpDownCounter(name)
		}
		return c
	}
	hist := func(name, unit, desc string, b []float64) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithUnit(unit), metric.WithDescription(desc), metric.WithExplicitBucketBoundaries(b...))
		if err != nil || h == nil {
			h, _ = noop.NewMeterProvider().Meter("").Float64Histogram(name)
		}
		return h
	}
	mt.active = i64ud("media_active_sessions", "Sessions held by this instance, by role and kind (ws, whep).")
	mt.created = i64c("media_sessions_created", "", "Session creation attempts by outcome (ok, rate_limited, limit_exceeded, not_found, draining, invalid, error) and kind.")
	mt.duration = hist("media_session_duration", "s", "Life of a session from creation to close, by role and close reason.", bucketsDuration)
	mt.iceState = i64ud("media_ice_connection_state", "Peers in each connection state now (new, connecting, connected, disconnected, failed).")
	mt.iceTransitions = i64c("media_ice_state_transitions", "", "Peer connection state changes, by the state entered.")
	mt.candAdded = i64c("media_ice_candidates_added", "", "Remote ICE candidates accepted.")
	mt.candRejected = i64c("media_ice_candidates_rejected", "", "Remote ICE candidates refused, by reason: limit, invalid, other, and the address kinds refused (link_local, multicast, unspecified, loopback, hostname); mdns counts .local candidates, accepted without an error but not resolved.")
	for _, r := range append([]string{"limit", "invalid", "other", domain.CandidateMDNS}, domain.CandidateRefusals...) {
		mt.candRejected.Add(context.Background(), 0, metric.WithAttributes(attribute.String("reason", r)))
	}
	mt.toConnected = hist("media_time_to_connected", "s", "From the first offer to the peer connected.", bucketsSetup)
	mt.toFirstFrame = hist("media_time_to_first_frame", "s", "From the first offer to the first video frame sent to the viewer.", bucketsSetup)
	mt.frameRate = hist("media_video_frame_rate", "{fps}", "Per-viewer sent frame rate, sampled from every connected viewer.", bucketsFrameRate)
	mt.bitrate = hist("media_video_bitrate_bps", "{bps}", "Per-viewer sent bitrate (video+audio, bits/s), sampled from every connected viewer.", bucketsBitrate)
	mt.loss = hist("media_packet_loss_ratio", "{ratio}", "Per-viewer loss fraction from RTCP receiver reports, sampled from every connected viewer.", bucketsLoss)
	mt.jitter = hist("media_jitter_milliseconds", "{ms}", "Per-viewer interarrival jitter from RTCP receiver reports.", bucketsMillis)
	mt.rtt = hist("media_rtt_milliseconds", "{ms}", "Per-viewer round-trip time from RTCP receiver reports (LSR/DLSR).", bucketsMillis)
	mt.rateLimited = i64c("media_rate_limited", "", "Requests refused by a rate limit, by limit (owner, global, input, group_input).")
	mt.captures = i64ud("media_captures_active", "Running captures (one per watched device), by device.")
	mt.wallCaptures = i64ud("media_wall_captures_active", "Running second, small captures for device wall tiles (one per device on a watched wall), by device.")
	mt.walls = i64ud("media_walls_active", "Device walls with a connected WebSocket.")
	mt.wallTiles = i64ud("media_wall_tiles", "Tiles on the device walls, by state (playing, paused: out of the page's viewport, nothing sent).")
	mt.wallOffers = i64c("media_wall_offers", "", "Offers the server made to device walls (the first and every renegotiation as devices come and go), by outcome (answered, failed).")
	mt.captureRestarts = i64c("media_capture_restarts", "", "Captures reopened after they ended or failed, by device.")
	mt.captureFailures = i64c("media_capture_failures", "", "Capture open attempts that failed, by device.")
	mt.capturePanics = i64c("media_capture_panics", "", "Capture pumps that panicked (the capture is closed and reopened), by device.")
	// media_panics is also counted by httpapi for its own sites, under the
	// same name and description, so the exporter shows one family.
	mt.panics = i64c("media_panics", "", "Panics recovered, by where they happened. Any is a bug: the alert MediaPanic pages on it.")
	for _, where := range panicSites {
		mt.panics.Add(context.Background(), 0, metric.WithAttributes(attribute.String("where", where)))
	}
	mt.sourceKeyframes = i64c("media_source_keyframe_requests", "", "Keyframe requests forwarded to a capture (after coalescing), by device.")
	g, err := m.Int64Gauge("media_capture_bitrate_target_bps", metric.WithUnit("{bps}"), metric.WithDescription("The bitrate policy's current target for a device's capture."))
	if err != nil || g == nil {
		g, _ = noop.NewMeterProvider().Meter("").Int64Gauge("media_capture_bitrate_target_bps")
	}
	mt.bitrateTarget = g
	mt.transcoders = i64ud("media_transcoders_active", "Running transcoders (one per device and rendition with viewers), by device and rendition (vp8, h264-baseline).")
	mt.transcoderRestarts = i64c("media_transcoder_restarts", "", "Transcoders restarted after they ended or failed while viewers remained, or for a new source size (a rotation), by device and rendition.")
	mt.transcoderFailures = i64c("media_transcoder_failures", "", "Transcoder starts that failed, by device and rendition.")
	mt.transcoderKeyReqs = i64c("media_transcoder_keyframe_requests", "", "Keyframe requests of a rendition's viewers forwarded to its transcoder (after coalescing), by device and rendition.")
	mt.bitrateChanges = i64c("media_bitrate_changes", "", "Capture bitrate changes by the adaptive policy, by device and direction (up, down).")
	mt.zeroKnownSets()
	return mt
}

// createOutcomes are media_sessions_created's outcome values (createOutcome).
var createOutcomes = []string{"ok", "rate_limited", "limit_exceeded", "not_found", "draining", "invalid", "error"}

// zeroKnownSets adds 0 for every label set drawn from a fixed list, so each
// is exported from the start and an alert on an increase sees the first
// one. Sets with a device id are exported as devices appear.
func (mt *metrics) zeroKnownSets() {
	ctx := context.Background()
	for _, kind := range []string{"ws", "whep"} {
		for _, o := range createOutcomes {
			mt.created.Add(ctx, 0, metric.WithAttributes(attribute.String("outcome", o), attribute.String("kind", kind)))
		}
	}
	mt.active.Add(ctx, 0, sessionAttrs(domain.RoleViewer, "ws"))
	mt.active.Add(ctx, 0, sessionAttrs(domain.RoleController, "ws"))
	mt.active.Add(ctx, 0, sessionAttrs(domain.RoleViewer, "whep"))
	for _, st := range []ports.PeerState{stateNew, ports.PeerConnecting, ports.PeerConnected, ports.PeerDisconnected, ports.PeerFailed} {
		mt.iceState.Add(ctx, 0, stateAttr(st))
		mt.iceTransitions.Add(ctx, 0, stateAttr(st))
	}
	mt.iceTransitions.Add(ctx, 0, stateAttr(ports.PeerClosed))
	for _, r := range []string{"limit", "invalid", "other"} {
		mt.candRejected.Add(ctx, 0, metric.WithAttributes(attribute.String("reason", r)))
	}
	mt.candAdded.Add(ctx, 0)
	for _, l := range []string{"owner", "global", "input", "group_input"} {
		mt.rateLimited.Add(ctx, 0, metric.WithAttributes(attribute.String("limit", l)))
	}
}

// Where the app layer recovers panics (media_panics' where label): a piece
// of a session's work, a session's event notify, a forwarded call, a
// device's capture pump and its control loop, a step of a session's close
// (the store's delete included).
const (
	panicSessionWork   = "session_work"
	panicSessionNotify = "session_notify"
	panicForwardedCall = "forwarded_call"
	panicHubPump       = "hub_pump"
	panicHubControl    = "hub_control"
	panicSessionClose  = "session_close"
)

var panicSites = []string{panicSessionWork, panicSessionNotify, panicForwardedCall, panicHubPump, panicHubControl, panicSessionClose}

// panicked counts a recovered panic at where, one of panicSites.
func (mt *metrics) panicked(where string) {
	mt.panics.Add(context.Background(), 1, metric.WithAttributes(attribute.String("where", where)))
}

// observeDevices registers the per-device gauges read at scrape time: the
// breaker state (1 for the current state) and the viewers of each device.
// unregister removes them.
func (mt *metrics) observeDevices(m metric.Meter, devices func(context.Context) ([]domain.Device, error)) {
	if m == nil {
		return
	}
	breaker, err1 := m.Int64ObservableGauge("media_device_breaker_state",
		metric.WithDescription("1 for the device's current circuit-breaker state (closed, half-open, open), by device and backend."))
	viewers, err2 := m.Int64ObservableGauge("media_device_viewers",
		metric.WithDescription("Viewers of each device on this instance."))
	if err1 != nil || err2 != nil {
		return
	}
	mt.devices, _ = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		ds, err := devices(ctx)
		if err != nil {
			return err
		}
		for _, d := range ds {
			dev := attribute.String("device_id", string(d.ID))
			be := attribute.String("backend", d.Backend)
			for _, st := range []domain.BreakerState{domain.BreakerClosed, domain.BreakerHalfOpen, domain.BreakerOpen} {
				v := int64(0)
				if d.Breaker == st || (d.Breaker == "" && st == domain.BreakerClosed) {
					v = 1
				}
				o.ObserveInt64(breaker, v, metric.WithAttributes(dev, be, attribute.String("state", string(st))))
			}
			o.ObserveInt64(viewers, int64(d.Viewers), metric.WithAttributes(dev))
		}
		return nil
	}, breaker, viewers)
}

func (mt *metrics) unregister() {
	if mt.devices != nil {
		_ = mt.devices.Unregister()
	}
}

// createOutcome names a session creation result for media_sessions_created.
func createOutcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, domain.ErrRateLimited):
		return "rate_limited"
	case errors.Is(err, domain.ErrLimitExceeded):
		return "limit_exceeded"
	case errors.Is(err, domain.ErrDeviceNotFound):
		return "not_found"
	case errors.Is(err, domain.ErrDraining):
		return "draining"
	case errors.Is(err, domain.ErrInvalidRequest):
		return "invalid"
	}
	return "error"
}

// closeReasons are the close reasons kept as a label; any other is "other".
var closeReasons = map[string]bool{
	"bye": true, "expired": true, "shutdown": true, "ice_failed": true, "peer_closed": true,
	"deleted": true, "internal_error": true, "offer_failed": true, "client closed": true, "whep delete": true,
}

func reasonLabel(r string) string {
	if closeReasons[r] {
		return r
	}
	return "other"
}

// candidateRejection names why a remote candidate was refused.
func candidateRejection(err error) string {
	var refused *domain.CandidateRefusedError
	switch {
	case errors.As(err, &refused):
		return refused.Reason
	case errors.Is(err, domain.ErrTooManyCandidates):
		return "limit"
	case errors.Is(err, domain.ErrInvalidCandidate):
		return "invalid"
	}
	return "other"
}

// iceTracker follows one peer's connection state for
// media_ice_connection_state and the setup-time histograms.
type iceTracker struct {
	state     ports.PeerState // the state the peer is counted in; "" before the peer exists
	done      bool            // the session closed: count nothing more
	offerAt   time.Time       // the peer was created for the first offer
	connected bool            // time to connected recorded
	framed    bool            // time to first frame recorded
}

// stateNew is a peer created but not yet connecting.
const stateNew = ports.PeerState("new")

func stateAttr(st ports.PeerState) metric.MeasurementOption {
	return metric.WithAttributes(attribute.String("state", string(st)))
}

func sessionAttrs(role domain.Role, kind string) metric.MeasurementOption {
	return metric.WithAttributes(attribute.String("role", string(role)), attribute.String("kind", kind))
}

// CountedLimiter returns l counting its refusals in
// media_rate_limited_total{limit}, for limits applied outside the
// Service (the farm's group input).
func (s *Service) CountedLimiter(l ports.RateLimiter, limit string) ports.RateLimiter {
	return countedLimiter{l: l, s: s, limit: limit}
}

type countedLimiter struct {
	l     ports.RateLimiter
	s     *Service
	limit string
}

func (c countedLimiter) Allow(ctx context.Context, key string) error {
	err := c.l.Allow(ctx, key)
	c.s.rateLimited(ctx, err, c.limit)
	return err
}

// rateLimited counts a refusal by limit when err is a rate-limit error.
func (s *Service) rateLimited(ctx context.Context, err error, limit string) {
	if errors.Is(err, domain.ErrRateLimited) {
		s.m.rateLimited.Add(ctx, 1, metric.WithAttributes(attribute.String("limit", limit)))
	}
}

// iceEnter moves the session's peer to state st in media_ice_connection_state
// and records the time to connected the first time the peer connects. The
// closed state is left to sessionEnded.
func (s *Service) iceEnter(l *live, st ports.PeerState) {
	ctx := context.Background()
	now := s.deps.Clock.Now()
	l.iceMu.Lock()
	defer l.iceMu.Unlock()
	t := &l.ice
	// A peer's end is counted once, by sessionEnded, however the closed
	// state and the session's close race.
	if t.done || t.state == st || st == ports.PeerClosed {
		return
	}
	if t.state != "" {
		s.m.iceState.Add(ctx, -1, stateAttr(t.state))
	}
	if st == stateNew {
		t.offerAt = now
	}
	t.state = st
	s.m.iceState.Add(ctx, 1, stateAttr(st))
	s.m.iceTransitions.Add(ctx, 1, stateAttr(st))
	if st == ports.PeerConnected && !t.connected && !t.offerAt.IsZero() {
		t.connected = true
		s.m.toConnected.Record(ctx, now.Sub(t.offerAt).Seconds())
	}
}

// firstFrame records the time from the first offer to the first video
// frame sent to the viewer.
func (s *Service) firstFrame(l *live) {
	now := s.deps.Clock.Now()
	l.iceMu.Lock()
	defer l.iceMu.Unlock()
	if l.ice.framed || l.ice.offerAt.IsZero() {
		return
	}
	l.ice.framed = true
	s.m.toFirstFrame.Record(context.Background(), now.Sub(l.ice.offerAt).Seconds())
}

// sessionEnded takes a closed session out of the gauges, counts its peer's
// transition to closed and records its duration.
func (s *Service) sessionEnded(l *live, reason string) {
	ctx := context.Background()
	l.iceMu.Lock()
	if !l.ice.done {
		l.ice.done = true
		if l.ice.state != "" {
			s.m.iceState.Add(ctx, -1, stateAttr(l.ice.state))
			s.m.iceTransitions.Add(ctx, 1, stateAttr(ports.PeerClosed))
		}
	}
	l.iceMu.Unlock()
	s.m.active.Add(ctx, -1, sessionAttrs(l.role, l.kind))
	s.m.duration.Record(ctx, s.deps.Clock.Now().Sub(l.created).Seconds(),
		metric.WithAttributes(attribute.String("role", string(l.role)), attribute.String("reason", reasonLabel(reason))))
}

// sampleQuality records every connected viewer's quality into the
// distribution histograms.
func (s *Service) sampleQuality(ctx context.Context) {
	for _, l := range s.snapshot(nil) {
		l.mu.Lock()
		peer, closed := l.peer, l.closed
		l.mu.Unlock()
		if peer == nil || closed {
			continue
		}
		l.iceMu.Lock()
		connected := l.ice.state == ports.PeerConnected
		l.iceMu.Unlock()
		if !connected {
			continue
		}
		q := peer.Stats()
		s.m.frameRate.Record(ctx, q.FrameRate)
		s.m.bitrate.Record(ctx, q.BitrateBps)
		s.m.loss.Record(ctx, q.LossFraction)
		s.m.jitter.Record(ctx, q.JitterMs)
		if q.RTTMs > 0 {
			s.m.rtt.Record(ctx, q.RTTMs)
		}
	}
}
