package rtc

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"mediasvc/domain"
	"mediasvc/ports"
)

// Peer is one viewer's PeerConnection: a sendonly H.264 track and, when the
// stream has audio, a sendonly Opus track, fed from its Fanout's ring.
//
// Goroutines: none in steady state. The viewer's own sender goroutine
// runs only while it drains the viewer itself — from the connection's
// first "connected" through the paced catch-up, and whenever a worker
// hands the viewer back — and ends when it hands the viewer to its
// Fanout's send workers (sendpool.go). Sender reports go out from the
// Fanout's ticker, RTCP is handled on pion's SRTCP read loop (rtcpSink).
// Close ends the sender and waits for it.
type Peer struct {
	t      *Transport
	f      *Fanout
	opts   ports.PeerOptions
	limits domain.ICELimits
	log    *slog.Logger
	// pc is made by the first Answer, for the codec its offer chose.
	pc atomic.Pointer[webrtc.PeerConnection]
	// choice is what the first offer chose; guarded by sigMu.
	choice videoChoice

	video, audio *sendTrack

	// tile marks a wall tile's peer (wall.go): its PeerConnection is the
	// wall's, which Close leaves open. paused stops its sending; the
	// sender restarts at the latest keyframe when it is cleared.
	tile   bool
	paused atomic.Bool

	wake chan struct{} // capacity 1, non-blocking notify to a running sender goroutine
	// sched says who drains the viewer: its own sender goroutine or a
	// send worker (sendpool.go).
	sched atomic.Int32
	done  chan struct{} // closed by Close
	wg    sync.WaitGroup

	runMu   sync.Mutex // guards started and sender starts against Close
	started bool
	begun   bool // the first sender has started the cursor; sender only
	closed  atomic.Bool

	closeOnce sync.Once
	closeErr  error

	sigMu     sync.Mutex // serializes remote description and candidates
	remoteSet bool
	pending   []webrtc.ICECandidateInit
	ncand     int

	stateMu   sync.Mutex // serializes OnState delivery
	lastState ports.PeerState

	// Whoever sched names (the sender goroutine or a send worker).
	cur       cursor
	buf       []byte
	paced     int         // backlog packets sent since the last pause
	pauses    int         // catch-up pauses taken (tests read it)
	paceTimer *time.Timer // reused for catch-up pauses
	framed    bool        // OnFirstFrame has been called
	wasPaused bool        // a tile that has been paused: restart at a keyframe
	// tickMu guards what the Fanout's ticker keeps (tick, foldSent).
	tickMu     sync.Mutex
	ticking    bool // the sender has started: sender reports are due
	lastTick   time.Time
	lastFrames uint64
	lastBytes  uint64
	folded     sentMark // what foldSent has added to the Transport's totals

	nacks       atomic.Uint64
	plis        atomic.Uint64
	retransmits atomic.Uint64
	skips       atomic.Uint64

	budget             *viewerBudget
	ownSSRC            [2]atomic.Uint64 // the senders' SSRCs + 1, once setup made them
	unknownSSRCs       atomic.Int64     // SSRCs RTCP named that no sender has
	aborted            bool             // guarded by runMu
	rtcpDropped        atomic.Uint64    // over the RTCP rate, or malformed
	plisDropped        atomic.Uint64    // PLI/FIR within the viewer's keyframe interval
	retransmitsDropped atomic.Uint64    // NACKed packets over the retransmission budget

	statMu    sync.Mutex
	frameRate float64
	bitrate   float64
	rr        [2]rrStats // video, audio
	remb      float64    // the viewer's latest REMB estimate, bits/s
}

// rrStats is what the last receiver report said about one track.
type rrStats struct {
	loss     float64
	lost     int64
	jitterMs float64
	rttMs    float64
}

var _ ports.Peer = (*Peer)(nil)

// NewPeer makes a viewer peer for f, which must come from t. Media flows
// once Answer has been called and the connection is up. It returns an error
// when f is foreign or closed, or pion cannot create the connection;
// nothing is held then. The caller must Close the peer.
func (t *Transport) NewPeer(ctx context.Context, f ports.Fanout, opts ports.PeerOptions) (ports.Peer, error) {
	return t.newPeer(ctx, f, opts)
}

func (t *Transport) newPeer(ctx context.Context, pf ports.Fanout, opts ports.PeerOptions) (*Peer, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("new peer for session %s: %w", opts.Session, err)
	}
	if t.closed.Load() {
		return nil, fmt.Errorf("new peer for session %s: %w", opts.Session, ErrClosed)
	}
	f, ok := pf.(*Fanout)
	if !ok || f.t != t {
		return nil, fmt.Errorf("new peer for session %s: fanout is not from this transport", opts.Session)
	}
	limits := opts.Limits
	if limits.MaxCandidates <= 0 {
		limits.MaxCandidates = domain.DefaultICELimits.MaxCandidates
	}
	if limits.MaxCandidateLen <= 0 {
		limits.MaxCandidateLen = domain.DefaultICELimits.MaxCandidateLen
	}
	p := &Peer{
		t:      t,
		f:      f,
		opts:   opts,
		limits: limits,
		log:    f.log.With("session_id", string(opts.Session)),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		buf:    make([]byte, slotCap),
		budget: newViewerBudget(t.cfg.ViewerBudget),
	}
	streamID := "mediasvc-" + string(f.device)
	mime := webrtc.MimeTypeH264
	if f.info.Video == domain.CodecVP8 {
		mime = webrtc.MimeTypeVP8
	}
	p.video = newSendTrack(webrtc.RTPCodecTypeVideo, mime, videoClock, streamID)
	if f.info.Audio == domain.CodecOpus {
		p.audio = newSendTrack(webrtc.RTPCodecTypeAudio, webrtc.MimeTypeOpus, audioClock, streamID)
	}
	if err := f.attach(p); err != nil {
		return nil, fmt.Errorf("new peer for session %s: %w", opts.Session, err)
	}
	return p, nil
}

// setup makes the PeerConnection for the codec chosen from the first
// offer: a MediaEngine with that one video codec (and Opus), so pion
// negotiates exactly the offered entry chosen, the tracks' transceivers,
// the callbacks and the RTCP readers. The caller holds sigMu.
func (p *Peer) setup(choice videoChoice) error {
	m := &webrtc.MediaEngine{}
	err := m.RegisterCodec(webrtc.RTPCodecParameters{PayloadType: webrtc.PayloadType(choice.offered.pt), RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: choice.mimeType(), ClockRate: videoClock, SDPFmtpLine: choice.registeredFmtp(), RTCPFeedback: videoFeedback,
	}}, webrtc.RTPCodecTypeVideo)
	if err == nil && p.audio != nil {
		err = m.RegisterCodec(webrtc.RTPCodecParameters{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: audioClock, Channels: 2, SDPFmtpLine: opusFmtp,
		}}, webrtc.RTPCodecTypeAudio)
	}
	if err != nil {
		return fmt.Errorf("register codecs: %w", err)
	}
	// An empty interceptor registry on purpose: pion's default NACK
	// responder keeps a copy of the last packets per viewer; we answer
	// NACKs from the shared ring and send our own sender reports instead.
	se := p.t.se
	se.BufferFactory = p.bufferFactory
	api := webrtc.NewAPI(
		webrtc.WithMediaEngine(m),
		webrtc.WithSettingEngine(se),
		webrtc.WithInterceptorRegistry(&interceptor.Registry{}),
	)
	pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: p.t.iceServers(p.opts)})
	if err != nil {
		return err
	}
	tracks := []*sendTrack{p.video}
	if p.audio != nil {
		tracks = append(tracks, p.audio)
	}
	for i, tr := range tracks {
		x, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			_ = pc.Close()
			return fmt.Errorf("add %s track: %w", tr.id, err)
		}
		// The SSRC is known before pion opens its SRTCP stream, so
		// bufferFactory gives that stream our sink (no RTCP reader).
		if enc := x.Sender().GetParameters().Encodings; len(enc) > 0 {
			p.ownSSRC[i].Store(uint64(enc[0].SSRC) + 1)
		}
	}
	pc.OnICECandidate(p.onCandidate)
	pc.OnConnectionStateChange(p.onState)
	p.runMu.Lock()
	defer p.runMu.Unlock()
	if p.closed.Load() {
		_ = pc.Close()
		return ErrClosed
	}
	p.pc.Store(pc)
	p.choice = choice
	return nil
}

// Answer validates and applies the remote offer (an initial offer or a
// renegotiation such as an ICE restart) and returns the local answer SDP.
// The answer declares the stream's own codec: for H.264 the
// profile-level-id of the stream's latest SPS. Without trickle it waits
// for candidate gathering, bounded by ctx and Config.GatherTimeout (on
// timeout the answer carries what was gathered).
// It returns domain.ErrInvalidOffer (wrapped) when the offer is oversized,
// malformed, has no video or pion rejects it; a *domain.NoCommonCodecError
// (errors.Is domain.ErrNoCommonCodec) when its video codecs cannot carry
// the stream; ctx.Err() when ctx ends first; ErrClosed after Close.
// With trickle, local candidates may reach OnCandidate before Answer
// returns; the caller must send them after the answer.
func (p *Peer) Answer(ctx context.Context, offer string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("answer: %w", err)
	}
	if p.closed.Load() {
		return "", fmt.Errorf("answer: %w", ErrClosed)
	}
	codecs, err := parseOffer(offer)
	if err != nil {
		return "", fmt.Errorf("answer: %w", err)
	}
	p.sigMu.Lock()
	pc := p.pc.Load()
	if pc == nil {
		choice, err := chooseVideo(codecs, p.f.stream(), nil)
		if err == nil {
			err = p.setup(choice)
		}
		if err != nil {
			p.sigMu.Unlock()
			return "", fmt.Errorf("answer: %w", err)
		}
		pc = p.pc.Load()
	} else if _, _, ok := offerTakes(codecs, p.choice.sent()); !ok {
		p.sigMu.Unlock()
		_, err := chooseVideo(codecs, p.choice.sent(), nil)
		return "", fmt.Errorf("answer: renegotiation: %w", err)
	}
	plid := p.choice.answerPLID
	err = pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer})
	if err != nil {
		p.sigMu.Unlock()
		return "", fmt.Errorf("answer: apply offer: %v: %w", err, domain.ErrInvalidOffer)
	}
	p.remoteSet = true
	pending := p.pending
	p.pending = nil
	for _, c := range pending {
		if err := pc.AddICECandidate(c); err != nil {
			p.log.Warn("queued remote candidate rejected", "err", err)
		}
	}
	p.sigMu.Unlock()

	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("answer: create answer: %v: %w", err, domain.ErrInvalidOffer)
	}
	var gathered <-chan struct{}
	if !p.opts.Trickle {
		gathered = webrtc.GatheringCompletePromise(pc)
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("answer: set local description: %w", err)
	}
	if !p.opts.Trickle {
		timer := time.NewTimer(p.t.cfg.GatherTimeout)
		defer timer.Stop()
		select {
		case <-gathered:
		case <-timer.C:
			p.log.Warn("candidate gathering timed out; answering with what was gathered", "timeout", p.t.cfg.GatherTimeout)
		case <-ctx.Done():
			return "", fmt.Errorf("answer: wait for candidates: %w", ctx.Err())
		case <-p.done:
			return "", fmt.Errorf("answer: %w", ErrClosed)
		}
	}
	ld := pc.LocalDescription()
	if ld == nil {
		return "", fmt.Errorf("answer: no local description")
	}
	return setAnswerProfile(ld.SDP, plid), nil
}

// Codec returns what the peer sends since its first offer: the codec
// ("H264", "VP8") and, for H.264, the profile-level-id its answer
// declared; empty before the first Answer.
func (p *Peer) Codec() (domain.Codec, string) {
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	return p.choice.codec, p.choice.plid
}

// AddCandidate adds a remote candidate; an empty one is the end-of-candidates
// marker, accepted and not counted. Candidates that arrive before the offer
// are queued (within the same limit) and applied by Answer. It returns
// domain.ErrTooManyCandidates past opts.Limits.MaxCandidates and
// domain.ErrInvalidCandidate (wrapped) when the line is malformed or pion
// rejects it; the peer is unchanged then. ErrClosed after Close.
func (p *Peer) AddCandidate(c domain.Candidate) error {
	if p.closed.Load() {
		return fmt.Errorf("add candidate: %w", ErrClosed)
	}
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	if c.Candidate == "" {
		if p.remoteSet {
			_ = p.pc.Load().AddICECandidate(webrtc.ICECandidateInit{})
		}
		return nil
	}
	if p.ncand >= p.limits.MaxCandidates {
		return fmt.Errorf("add candidate beyond %d: %w", p.limits.MaxCandidates, domain.ErrTooManyCandidates)
	}
	if err := domain.ValidateCandidate(c.Candidate, p.limits.MaxCandidateLen); err != nil {
		return fmt.Errorf("add candidate: %w", err)
	}
	init := webrtc.ICECandidateInit{
		Candidate:        strings.TrimPrefix(c.Candidate, "a="),
		SDPMid:           c.SDPMid,
		SDPMLineIndex:    c.SDPMLineIndex,
		UsernameFragment: c.UsernameFragment,
	}
	if !p.remoteSet {
		p.pending = append(p.pending, init)
		p.ncand++
		return nil
	}
	if err := p.pc.Load().AddICECandidate(init); err != nil {
		return fmt.Errorf("add candidate: %v: %w", err, domain.ErrInvalidCandidate)
	}
	p.ncand++
	return nil
}

func (p *Peer) onCandidate(c *webrtc.ICECandidate) {
	if !p.opts.Trickle || p.opts.OnCandidate == nil || p.closed.Load() {
		return
	}
	if c == nil {
		p.opts.OnCandidate(domain.Candidate{})
		return
	}
	j := c.ToJSON()
	p.opts.OnCandidate(domain.Candidate{
		Candidate:        j.Candidate,
		SDPMid:           j.SDPMid,
		SDPMLineIndex:    j.SDPMLineIndex,
		UsernameFragment: j.UsernameFragment,
	})
}

// peerState is the port's name for a connection state; ok is false for
// the states the port does not report (new, unknown).
func peerState(cs webrtc.PeerConnectionState) (ps ports.PeerState, ok bool) {
	switch cs {
	case webrtc.PeerConnectionStateConnecting:
		return ports.PeerConnecting, true
	case webrtc.PeerConnectionStateConnected:
		return ports.PeerConnected, true
	case webrtc.PeerConnectionStateDisconnected:
		return ports.PeerDisconnected, true
	case webrtc.PeerConnectionStateFailed:
		return ports.PeerFailed, true
	case webrtc.PeerConnectionStateClosed:
		return ports.PeerClosed, true
	}
	return "", false
}

// onState runs on a goroutine pion starts per change, so changes can race;
// it reports the connection's current state, deduplicated, in order.
func (p *Peer) onState(webrtc.PeerConnectionState) {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	pc := p.pc.Load()
	if pc == nil {
		return
	}
	ps, ok := peerState(pc.ConnectionState())
	if !ok {
		return
	}
	if ps == ports.PeerConnected {
		p.startSender()
	}
	if ps == p.lastState {
		return
	}
	p.lastState = ps
	p.log.Debug("peer state", "state", string(ps))
	if p.opts.OnState != nil {
		p.opts.OnState(ps)
	}
}

func (p *Peer) startSender() {
	p.runMu.Lock()
	defer p.runMu.Unlock()
	if p.started || p.closed.Load() {
		return
	}
	p.started = true
	p.tickMu.Lock()
	p.ticking, p.lastTick = true, time.Now()
	p.tickMu.Unlock()
	p.wg.Add(1)
	go p.run()
}

// run is the sender goroutine: it drains the viewer itself while it owns
// it (sched is schedOwn) — from the join through the paced catch-up, or
// after a worker handed it back — and ends when it leaves the viewer to
// the Fanout's send workers, or when the peer or the ring closes. Only one
// runs at a time: the first is started by startSender, the next ones by
// handBack, each while the viewer is schedOwn.
func (p *Peer) run() {
	defer p.wg.Done()
	if !p.begun {
		p.begun = true
		p.f.ring.start(&p.cur) // sched is schedOwn until we hand over below
		p.keyframeNeeded()
	}
	for {
		if !p.drain() {
			return
		}
		if !p.sched.CompareAndSwap(schedOwn, schedIdle) {
			return // closed
		}
		// A frame that came while we drained found the viewer schedOwn
		// and only woke us: take the viewer back unless a worker has it
		// by now. (A stale wake-up costs one empty drain.)
		select {
		case <-p.wake:
			if p.sched.CompareAndSwap(schedIdle, schedOwn) {
				continue
			}
		default:
		}
		return
	}
}

// setPaused pauses or resumes a tile's sending and wakes its sender.
func (p *Peer) setPaused(paused bool) {
	p.paused.Store(paused)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Peer) keyframeNeeded() {
	if p.cur.needKey {
		p.cur.needKey = false
		p.f.requestKeyframeFrom(fromJoiner)
	}
}

// Outcomes of drainAs.
const (
	drainEmpty      = iota // everything available was sent
	drainStop              // the peer is closed
	drainRingClosed        // the fanout is closed
	drainPace              // a catch-up pause is due (workers only)
)

// drain sends every packet available to the viewer, pausing during a
// catch-up. It reports false when the peer or the ring is closed.
func (p *Peer) drain() bool { return p.drainAs(true) == drainEmpty }

// drainAs sends every packet available to the viewer. own is the viewer's
// own sender goroutine, which takes the catch-up pauses itself; a worker
// stops with drainPace instead.
func (p *Peer) drainAs(own bool) int {
	for {
		if p.closed.Load() {
			return drainStop
		}
		if p.paced >= catchupBurst {
			if p.cur.next >= p.cur.catchupEnd {
				p.paced = 0 // the backlog is sent: live packets are not paced
			} else {
				if !own {
					return drainPace
				}
				p.paced = 0
				p.pauses++
				if !p.pause(catchupGap) {
					return drainStop
				}
			}
		}
		if p.paused.Load() {
			// Nothing leaves while paused; the ring moves on without us.
			p.wasPaused = true
			return drainEmpty
		}
		if p.wasPaused {
			p.wasPaused = false
			p.f.ring.start(&p.cur)
			p.keyframeNeeded()
		}
		skips := p.cur.skips
		m, st := p.f.ring.read(&p.cur, p.buf)
		if p.cur.skips != skips {
			p.skips.Add(p.cur.skips - skips)
			p.t.keyframeSkips.Add(p.cur.skips - skips)
		}
		p.keyframeNeeded()
		switch st {
		case readClosed:
			return drainRingClosed
		case readEmpty:
			return drainEmpty
		}
		tr := p.video
		if m.kind == domain.KindAudio {
			if tr = p.audio; tr == nil {
				continue
			}
		}
		// A write error is a transient or closing transport; closing is
		// seen through p.done, and RTP loss is what NACK and PLI are for.
		_ = tr.send(&m, p.buf[:m.n])
		if !p.framed && tr == p.video && p.video.frames.Load() > 0 {
			p.framed = true
			if p.opts.OnFirstFrame != nil {
				p.opts.OnFirstFrame()
			}
		}
		if m.idx < p.cur.catchupEnd {
			p.paced++
		}
	}
}

// Catch-up pacing: a viewer that starts (or restarts after falling behind)
// at the cached keyframe has up to a GOP of backlog. Sent in one burst it
// overflows receive buffers (a 1 s GOP at 2 Mbps is ~300 KB, more than
// Linux's default 208 KiB socket buffer), and the joiner loses the very
// keyframe it waited for. The backlog goes out catchupBurst packets every
// catchupGap instead (~8 packets/ms, ~75 Mbit/s): a 1 s GOP in ~35 ms.
const (
	catchupBurst = 16
	catchupGap   = 2 * time.Millisecond
)

// pause sleeps d on the reused pace timer; false if the peer closed.
func (p *Peer) pause(d time.Duration) bool {
	if p.paceTimer == nil {
		p.paceTimer = time.NewTimer(d)
	} else {
		p.paceTimer.Reset(d)
	}
	select {
	case <-p.done:
		p.paceTimer.Stop()
		return false
	case <-p.paceTimer.C:
		return true
	}
}

// tick sends sender reports and updates the send rates once the sender has
// started; the Fanout's ticker calls it once a second. It holds tickMu
// for the bookkeeping only, not across the write.
func (p *Peer) tick(now time.Time) {
	p.tickMu.Lock()
	if !p.ticking || p.closed.Load() {
		p.tickMu.Unlock()
		return
	}
	pkts := p.account(now)
	p.tickMu.Unlock()
	if len(pkts) > 0 {
		if err := p.pc.Load().WriteRTCP(pkts); err != nil {
			p.log.Debug("send sender report", "err", err)
		}
	}
}

// account builds the sender reports due at now and updates the send
// rates and the Transport's totals. The caller holds tickMu.
func (p *Peer) account(now time.Time) []rtcp.Packet {
	var pkts []rtcp.Packet
	for _, tr := range []*sendTrack{p.video, p.audio} {
		if tr == nil || !tr.started.Load() {
			continue
		}
		b := tr.bound.Load()
		ts, ok := p.f.rtpNow(now, tr.clock)
		if b == nil || !ok {
			continue
		}
		pkts = append(pkts, &rtcp.SenderReport{
			SSRC:        b.ssrc,
			NTPTime:     ntpTime(now),
			RTPTime:     ts + tr.tsOff.Load(),
			PacketCount: uint32(tr.packets.Load()),
			OctetCount:  uint32(tr.octets.Load()),
		})
	}
	frames := p.video.frames.Load()
	bytes := p.video.octets.Load()
	if p.audio != nil {
		bytes += p.audio.octets.Load()
	}
	if dt := now.Sub(p.lastTick).Seconds(); dt > 0 {
		p.statMu.Lock()
		p.frameRate = float64(frames-p.lastFrames) / dt
		p.bitrate = float64(bytes-p.lastBytes) * 8 / dt
		p.statMu.Unlock()
	}
	p.lastTick, p.lastFrames, p.lastBytes = now, frames, bytes
	p.foldSent()
	return pkts
}

// ntpTime is t as a 64-bit NTP timestamp.
func ntpTime(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800
	sec := uint64(t.Unix() + ntpEpochOffset)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return sec<<32 | frac
}

// rtcpBufSize holds any RTCP packet the transport can deliver: pion reads
// each datagram into a buffer of its receive MTU (1500 bytes, as we leave
// the SettingEngine's), so a decrypted SRTCP packet is never longer.
const rtcpBufSize = 1500

// readRTCP reads the RTCP pion routes to one sender until the connection
// closes and hands each packet to onRTCP. Only a wall's tiles read so: a
// viewer's RTCP reaches onRTCP through its SRTCP buffers (rtcpSink), on
// pion's own SRTCP read loop, without a goroutine of ours.
func (p *Peer) readRTCP(s *webrtc.RTPSender, tr *sendTrack, kind int) {
	defer p.wg.Done()
	buf := make([]byte, rtcpBufSize)
	for {
		n, _, err := s.Read(buf)
		if err != nil {
			return
		}
		p.onRTCP(buf[:n], tr, kind)
	}
}

// onRTCP handles RTCP addressed to one sender (tr; kind 0 is video, 1
// audio): NACKs are answered from the ring, PLI/FIR become keyframe
// requests, receiver reports feed Stats — all within the viewer's budget
// (budget.go). pion hands over each packet of a compound on its own, and
// only those addressed to this sender's SSRC (others are dropped by pion
// before they reach us). A packet that does not parse is dropped and
// counted. b is not kept.
func (p *Peer) onRTCP(b []byte, tr *sendTrack, kind int) {
	ctx := context.Background()
	now := time.Now()
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		p.rtcpDropped.Add(1)
		p.t.m.rtcpDropped.Add(ctx, 1, rtcpDropMalformed)
		return
	}
	for _, pkt := range pkts {
		if !p.budget.allowRTCP(now) {
			p.rtcpDropped.Add(1)
			p.t.m.rtcpDropped.Add(ctx, 1, rtcpDropRate)
			continue
		}
		switch r := pkt.(type) {
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			p.plis.Add(1)
			p.t.m.plis.Add(ctx, 1)
			if !p.budget.allowKeyframe(now) {
				p.plisDropped.Add(1)
				p.t.m.keyframeReqs.Add(ctx, 1, keyframeThrottled)
				continue
			}
			p.f.requestKeyframeFrom(fromViewer)
		case *rtcp.TransportLayerNack:
			p.nacks.Add(1)
			p.t.m.nacks.Add(ctx, 1)
			p.answerNACK(r, tr, now)
		case *rtcp.ReceiverEstimatedMaximumBitrate:
			p.statMu.Lock()
			p.remb = float64(r.Bitrate)
			p.statMu.Unlock()
		case *rtcp.ReceiverReport:
			p.onReports(r.Reports, tr, kind, now)
		case *rtcp.SenderReport:
			p.onReports(r.Reports, tr, kind, now)
		}
	}
}

// answerNACK retransmits what r names from the ring while the viewer's
// retransmission budget lasts; the rest of it is counted as dropped
// without being looked up.
func (p *Peer) answerNACK(r *rtcp.TransportLayerNack, tr *sendTrack, now time.Time) {
	var sent, dropped int64
	spent := false
	for i := range r.Nacks {
		r.Nacks[i].Range(func(seq uint16) bool {
			if !spent && p.budget.retransmitSpent(now) {
				spent = true
			}
			if spent {
				dropped++
				return true
			}
			switch tr.retransmit(p.f.ring, seq, p.budget, now) {
			case rtxSent:
				sent++
			case rtxOverBudget:
				dropped++
			}
			return true
		})
	}
	ctx := context.Background()
	if sent > 0 {
		p.retransmits.Add(uint64(sent))
		p.t.m.retransmits.Add(ctx, sent)
	}
	if dropped > 0 {
		p.retransmitsDropped.Add(uint64(dropped))
		p.t.m.retransmitsDropped.Add(ctx, dropped)
	}
}

func (p *Peer) onReports(reports []rtcp.ReceptionReport, tr *sendTrack, kind int, now time.Time) {
	b := tr.bound.Load()
	if b == nil {
		return
	}
	for _, rep := range reports {
		if rep.SSRC != b.ssrc {
			continue
		}
		p.statMu.Lock()
		st := &p.rr[kind]
		st.loss = float64(rep.FractionLost) / 256
		// The cumulative loss is a signed 24-bit field (duplicates can
		// make it negative); pion hands it over unsigned.
		st.lost = int64(int32(rep.TotalLost<<8) >> 8)
		st.jitterMs = float64(rep.Jitter) / float64(tr.clock) * 1000
		if rep.LastSenderReport != 0 {
			mid := uint32(ntpTime(now) >> 16)
			if rtt := mid - rep.LastSenderReport - rep.Delay; int32(rtt) >= 0 {
				st.rttMs = float64(rtt) / 65536 * 1000
			}
		}
		p.statMu.Unlock()
	}
}

// Stats returns the connection's current quality: counters from the sender,
// rates over the last second, and loss, jitter and RTT from the latest
// receiver reports (loss and jitter of the video track, the highest RTT).
func (p *Peer) Stats() domain.QualityStats {
	s := domain.QualityStats{
		At:            time.Now(),
		PacketsSent:   p.video.packets.Load(),
		BytesSent:     p.video.octets.Load(),
		FramesSent:    p.video.frames.Load(),
		NACKs:         p.nacks.Load(),
		PLIs:          p.plis.Load(),
		Retransmits:   p.retransmits.Load(),
		KeyframeSkips: p.skips.Load(),

		RTCPDropped:        p.rtcpDropped.Load(),
		PLIsDropped:        p.plisDropped.Load(),
		RetransmitsDropped: p.retransmitsDropped.Load(),
	}
	if pc := p.pc.Load(); pc != nil {
		s.State = pc.ConnectionState().String()
	}
	if p.audio != nil {
		s.AudioPackets = p.audio.packets.Load()
		s.PacketsSent += s.AudioPackets
		s.BytesSent += p.audio.octets.Load()
	}
	p.statMu.Lock()
	s.FrameRate = p.frameRate
	s.BitrateBps = p.bitrate
	s.LossFraction = p.rr[0].loss
	s.PacketsLost = p.rr[0].lost + p.rr[1].lost
	s.JitterMs = p.rr[0].jitterMs
	s.RTTMs = max(p.rr[0].rttMs, p.rr[1].rttMs)
	s.EstimatedBps = p.remb
	p.statMu.Unlock()
	return s
}

// Close tears the peer down: it closes the PeerConnection, detaches from the
// fanout and waits for the peer's goroutines. Safe to call more than once
// and concurrently; every call returns the first call's error.
func (p *Peer) Close() error {
	p.closeOnce.Do(func() {
		p.runMu.Lock()
		p.closed.Store(true)
		close(p.done)
		p.runMu.Unlock()
		if pc := p.pc.Load(); pc != nil && !p.tile {
			if err := pc.Close(); err != nil {
				p.closeErr = fmt.Errorf("close peer for session %s: %w", p.opts.Session, err)
			}
		}
		p.f.detach(p)
		p.unschedule()
		p.wg.Wait()
		p.tickMu.Lock()
		p.foldSent()
		p.tickMu.Unlock()
	})
	return p.closeErr
}
