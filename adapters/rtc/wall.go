package rtc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/transport/v5/packetio"
	"github.com/pion/webrtc/v4"

	"mediasvc/domain"
	"mediasvc/ports"
)

// A device wall is one PeerConnection carrying many devices' small
// streams, one sendonly video transceiver per tile. Each tile is a Peer
// of its own over the wall's connection (a tile peer): it reads its
// fanout's shared ring with its own cursor and sender goroutine like any
// viewer, so a tile costs what a viewer costs, minus the ICE and DTLS.
// The server makes the offers: its MediaEngine holds the H.264 profiles
// and VP8 a tile may carry, and each transceiver lists its stream's codec
// first, so its track binds to it (sendTrack.Bind takes the first of its
// MIME type).

// wallCodecs are what a wall may send: VP8, and H.264 packetization-mode
// 1 in the profiles devices and the wall rendition use. A stream's H.264
// is offered under the entry of its own profile (pion and browsers match
// H.264 by profile); the level is declared at 3.1 with asymmetry allowed.
var wallCodecs = []struct {
	pt   webrtc.PayloadType
	mime string
	plid string
}{
	{96, webrtc.MimeTypeVP8, ""},
	{102, webrtc.MimeTypeH264, "42e01f"},
	{104, webrtc.MimeTypeH264, "42001f"},
	{106, webrtc.MimeTypeH264, "4d001f"},
	{108, webrtc.MimeTypeH264, "64001f"},
}

func wallCodec(i int) webrtc.RTPCodecParameters {
	c := wallCodecs[i]
	fmtp := ""
	if c.plid != "" {
		fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + c.plid
	}
	return webrtc.RTPCodecParameters{PayloadType: c.pt, RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: c.mime, ClockRate: videoClock, SDPFmtpLine: fmtp, RTCPFeedback: videoFeedback,
	}}
}

// wallCodecFor returns the index in wallCodecs of what carries s, false
// when none does.
func wallCodecFor(s streamCodec) (int, bool) {
	switch s.codec {
	case domain.CodecVP8:
		return 0, true
	case domain.CodecH264:
	default:
		return 0, false
	}
	send, err := domain.ParseProfileLevelID(s.plid)
	if err != nil {
		return 1, true // unknown: Constrained Baseline, what every decoder takes
	}
	for i, c := range wallCodecs {
		if c.plid == "" {
			continue
		}
		if recv, _ := domain.ParseProfileLevelID(c.plid); recv.Profile == send.Profile {
			return i, true
		}
	}
	return 0, false
}

// Wall is one device wall's PeerConnection and its tiles.
//
// Goroutines: each tile's RTCP reader and, while it drains the tile
// itself, its sender (see Peer), started when the connection is up or the
// tile is added, whichever is later; Close ends them all.
type Wall struct {
	t      *Transport
	opts   ports.PeerOptions
	limits domain.ICELimits
	log    *slog.Logger
	pc     *webrtc.PeerConnection

	mu        sync.Mutex // guards what follows; nothing under it blocks on the network
	tiles     map[string]*wallTile
	connected bool
	closed    bool
	remoteSet bool
	pending   []webrtc.ICECandidateInit
	ncand     int

	sigMu sync.Mutex // serializes Offer and Answer

	stateMu   sync.Mutex
	lastState ports.PeerState

	unknownSSRCs atomic.Int64
	closeOnce    sync.Once
	closeErr     error
}

type wallTile struct {
	p *Peer
	x *webrtc.RTPTransceiver
}

var _ ports.WallPeer = (*Wall)(nil)

// NewWall makes a wall PeerConnection with no tiles. It returns an error
// when the transport is closed or pion cannot create the connection.
func (t *Transport) NewWall(ctx context.Context, opts ports.PeerOptions) (ports.WallPeer, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("new wall %s: %w", opts.Session, err)
	}
	if t.closed.Load() {
		return nil, fmt.Errorf("new wall %s: %w", opts.Session, ErrClosed)
	}
	limits := opts.Limits
	if limits.MaxCandidates <= 0 {
		limits.MaxCandidates = domain.DefaultICELimits.MaxCandidates
	}
	if limits.MaxCandidateLen <= 0 {
		limits.MaxCandidateLen = domain.DefaultICELimits.MaxCandidateLen
	}
	w := &Wall{t: t, opts: opts, limits: limits, log: t.log.With("wall", string(opts.Session)), tiles: make(map[string]*wallTile)}
	m := &webrtc.MediaEngine{}
	for i := range wallCodecs {
		if err := m.RegisterCodec(wallCodec(i), webrtc.RTPCodecTypeVideo); err != nil {
			return nil, fmt.Errorf("new wall %s: register codecs: %w", opts.Session, err)
		}
	}
	se := t.se
	se.BufferFactory = w.bufferFactory
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
	pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: t.iceServers(opts)})
	if err != nil {
		return nil, fmt.Errorf("new wall %s: %w", opts.Session, err)
	}
	w.pc = pc
	pc.OnICECandidate(w.onCandidate)
	pc.OnConnectionStateChange(w.onState)
	return w, nil
}

// AddTile adds a tile for f's video (see ports.WallPeer).
func (w *Wall) AddTile(key string, pf ports.Fanout) error {
	f, ok := pf.(*Fanout)
	if !ok || f.t != w.t {
		return fmt.Errorf("add tile %s: fanout is not from this transport: %w", key, domain.ErrInvalidRequest)
	}
	ci, ok := wallCodecFor(f.stream())
	if !ok {
		return fmt.Errorf("add tile %s: the wall sends no %s: %w", key, f.stream().describe(), domain.ErrInvalidRequest)
	}
	w.mu.Lock()
	_, dup := w.tiles[key]
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return fmt.Errorf("add tile %s: %w", key, ErrClosed)
	}
	if dup {
		return fmt.Errorf("add tile %s: %w", key, domain.ErrConflict)
	}
	p := &Peer{
		t: w.t, f: f, tile: true, opts: ports.PeerOptions{Session: w.opts.Session}, limits: w.limits,
		log:  w.log.With("tile", key),
		wake: make(chan struct{}, 1), done: make(chan struct{}), buf: make([]byte, slotCap),
		budget: newViewerBudget(w.t.cfg.ViewerBudget),
	}
	mime := webrtc.MimeTypeH264
	if f.info.Video == domain.CodecVP8 {
		mime = webrtc.MimeTypeVP8
	}
	p.video = newSendTrack(webrtc.RTPCodecTypeVideo, mime, videoClock, "wall-"+key)
	x, err := w.pc.AddTransceiverFromTrack(p.video, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return fmt.Errorf("add tile %s: %w", key, err)
	}
	// The tile's own codec first, then every other: the browser's answer
	// keeps them all (pion's MediaEngine knows only the codecs the first
	// answer negotiated, so a later tile of another codec needs them), and
	// the track binds to the first of its kind, its own.
	prefs := []webrtc.RTPCodecParameters{wallCodec(ci)}
	for i := range wallCodecs {
		if i != ci {
			prefs = append(prefs, wallCodec(i))
		}
	}
	if err := x.SetCodecPreferences(prefs); err != nil {
		_ = w.pc.RemoveTrack(x.Sender())
		return fmt.Errorf("add tile %s: %w", key, err)
	}
	if enc := x.Sender().GetParameters().Encodings; len(enc) > 0 {
		p.ownSSRC[0].Store(uint64(enc[0].SSRC) + 1)
	}
	p.pc.Store(w.pc)
	if err := f.attach(p); err != nil {
		_ = w.pc.RemoveTrack(x.Sender())
		return fmt.Errorf("add tile %s: %w", key, err)
	}
	p.wg.Add(1)
	go p.readRTCP(x.Sender(), p.video, 0)
	w.mu.Lock()
	_, dup = w.tiles[key]
	if w.closed || dup {
		w.mu.Unlock()
		_ = w.pc.RemoveTrack(x.Sender())
		_ = p.Close()
		return fmt.Errorf("add tile %s: %w", key, domain.ErrConflict)
	}
	w.tiles[key] = &wallTile{p: p, x: x}
	if w.connected {
		p.startSender()
	}
	w.mu.Unlock()
	return nil
}

// RemoveTile stops a tile (see ports.WallPeer).
func (w *Wall) RemoveTile(key string) {
	w.mu.Lock()
	tl, ok := w.tiles[key]
	delete(w.tiles, key)
	w.mu.Unlock()
	if !ok {
		return
	}
	// The sender stops (its RTCP reader ends with it); the m-line goes
	// inactive at the next offer.
	if err := w.pc.RemoveTrack(tl.x.Sender()); err != nil && !w.isClosed() {
		w.log.Debug("remove tile track", "tile", key, "err", err)
	}
	_ = tl.p.Close()
}

// PauseTile pauses or resumes a tile (see ports.WallPeer).
func (w *Wall) PauseTile(key string, paused bool) error {
	w.mu.Lock()
	tl, ok := w.tiles[key]
	w.mu.Unlock()
	if !ok {
		return fmt.Errorf("pause tile %q: no such tile: %w", key, domain.ErrInvalidRequest)
	}
	tl.p.setPaused(paused)
	return nil
}

// Offer makes the next offer (see ports.WallPeer). Without trickle it
// waits for candidate gathering, bounded by ctx and the gather timeout.
func (w *Wall) Offer(ctx context.Context) (string, map[string]string, error) {
	w.sigMu.Lock()
	defer w.sigMu.Unlock()
	if w.isClosed() {
		return "", nil, fmt.Errorf("wall offer: %w", ErrClosed)
	}
	offer, err := w.pc.CreateOffer(nil)
	if err != nil {
		return "", nil, fmt.Errorf("wall offer: %w", err)
	}
	var gathered <-chan struct{}
	if !w.opts.Trickle {
		gathered = webrtc.GatheringCompletePromise(w.pc)
	}
	if err := w.pc.SetLocalDescription(offer); err != nil {
		return "", nil, fmt.Errorf("wall offer: set local description: %w", err)
	}
	if !w.opts.Trickle {
		timer := time.NewTimer(w.t.cfg.GatherTimeout)
		defer timer.Stop()
		select {
		case <-gathered:
		case <-timer.C:
		case <-ctx.Done():
			return "", nil, fmt.Errorf("wall offer: wait for candidates: %w", ctx.Err())
		}
	}
	ld := w.pc.LocalDescription()
	if ld == nil {
		return "", nil, fmt.Errorf("wall offer: no local description")
	}
	mids := make(map[string]string)
	w.mu.Lock()
	for k, tl := range w.tiles {
		mids[k] = tl.x.Mid()
	}
	w.mu.Unlock()
	return ld.SDP, mids, nil
}

// Answer applies the browser's answer (see ports.WallPeer).
func (w *Wall) Answer(ctx context.Context, answer string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("wall answer: %w", err)
	}
	if len(answer) == 0 || len(answer) > MaxOfferSize {
		return fmt.Errorf("wall answer of %d bytes (at most %d): %w", len(answer), MaxOfferSize, domain.ErrInvalidOffer)
	}
	w.sigMu.Lock()
	defer w.sigMu.Unlock()
	if w.pc.SignalingState() != webrtc.SignalingStateHaveLocalOffer {
		return fmt.Errorf("wall answer: no offer is waiting for one: %w", domain.ErrInvalidOffer)
	}
	if err := w.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("wall answer: %v: %w", err, domain.ErrInvalidOffer)
	}
	w.mu.Lock()
	w.remoteSet = true
	pending := w.pending
	w.pending = nil
	w.mu.Unlock()
	for _, c := range pending {
		if err := w.pc.AddICECandidate(c); err != nil {
			w.log.Warn("queued remote candidate rejected", "err", err)
		}
	}
	return nil
}

// AddCandidate adds a remote candidate (see ports.WallPeer); those that
// arrive before the first answer are queued within the same limit.
func (w *Wall) AddCandidate(c domain.Candidate) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("add candidate: %w", ErrClosed)
	}
	if c.Candidate == "" {
		if w.remoteSet {
			_ = w.pc.AddICECandidate(webrtc.ICECandidateInit{})
		}
		return nil
	}
	if w.ncand >= w.limits.MaxCandidates {
		return fmt.Errorf("add candidate beyond %d: %w", w.limits.MaxCandidates, domain.ErrTooManyCandidates)
	}
	if err := domain.ValidateCandidate(c.Candidate, w.limits.MaxCandidateLen); err != nil {
		return fmt.Errorf("add candidate: %w", err)
	}
	init := webrtc.ICECandidateInit{Candidate: strings.TrimPrefix(c.Candidate, "a="), SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
	w.ncand++
	if !w.remoteSet {
		w.pending = append(w.pending, init)
		return nil
	}
	if err := w.pc.AddICECandidate(init); err != nil {
		return fmt.Errorf("add candidate: %v: %w", err, domain.ErrInvalidCandidate)
	}
	return nil
}

// TileStats returns a tile's sending counters (see ports.WallPeer).
func (w *Wall) TileStats(key string) (domain.QualityStats, bool) {
	w.mu.Lock()
	tl, ok := w.tiles[key]
	w.mu.Unlock()
	if !ok {
		return domain.QualityStats{}, false
	}
	return tl.p.Stats(), true
}

// Close tears down the wall and every tile.
func (w *Wall) Close() error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		tiles := w.tiles
		w.tiles = map[string]*wallTile{}
		w.mu.Unlock()
		if err := w.pc.Close(); err != nil {
			w.closeErr = fmt.Errorf("close wall %s: %w", w.opts.Session, err)
		}
		for _, tl := range tiles {
			_ = tl.p.Close()
		}
	})
	return w.closeErr
}

func (w *Wall) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}

func (w *Wall) onCandidate(c *webrtc.ICECandidate) {
	if !w.opts.Trickle || w.opts.OnCandidate == nil || w.isClosed() {
		return
	}
	if c == nil {
		w.opts.OnCandidate(domain.Candidate{})
		return
	}
	j := c.ToJSON()
	w.opts.OnCandidate(domain.Candidate{Candidate: j.Candidate, SDPMid: j.SDPMid, SDPMLineIndex: j.SDPMLineIndex, UsernameFragment: j.UsernameFragment})
}

// onState reports the connection's state, deduplicated, and starts the
// tiles' senders once it is up.
func (w *Wall) onState(webrtc.PeerConnectionState) {
	w.stateMu.Lock()
	defer w.stateMu.Unlock()
	ps, ok := peerState(w.pc.ConnectionState())
	if !ok {
		return
	}
	if ps == ports.PeerConnected {
		w.mu.Lock()
		w.connected = true
		for _, tl := range w.tiles {
			tl.p.startSender()
		}
		w.mu.Unlock()
	}
	if ps == w.lastState {
		return
	}
	w.lastState = ps
	if w.opts.OnState != nil {
		w.opts.OnState(ps)
	}
}

// bufferFactory gives RTCP about a tile's SSRC a real buffer and
// discards (counting) RTCP about any other; past maxUnknownSSRCs the
// wall's connection is closed as hostile.
func (w *Wall) bufferFactory(kind packetio.BufferPacketType, ssrc uint32) io.ReadWriteCloser {
	if kind != packetio.RTCPBufferPacket {
		return newPionBuffer(srtpBufferSize)
	}
	w.mu.Lock()
	for _, tl := range w.tiles {
		if s := tl.p.ownSSRC[0].Load(); s != 0 && s == uint64(ssrc)+1 {
			w.mu.Unlock()
			return newPionBuffer(srtcpBufferSize)
		}
	}
	w.mu.Unlock()
	if w.unknownSSRCs.Add(1) == maxUnknownSSRCs {
		w.log.Warn("wall connection closed: rtcp for too many unknown ssrcs")
		go func() { _ = w.pc.Close() }()
	}
	return wallDiscard{w}
}

type wallDiscard struct{ w *Wall }

func (d wallDiscard) Write(b []byte) (int, error) {
	if len(b) > 1 && (b[1] == byte(rtcp.TypeSourceDescription) || b[1] == byte(rtcp.TypeGoodbye)) {
		return len(b), nil
	}
	d.w.t.m.rtcpDropped.Add(context.Background(), 1, rtcpDropUnknownSSRC)
	return len(b), nil
}

func (d wallDiscard) Read([]byte) (int, error) { return 0, io.EOF }
func (d wallDiscard) Close() error             { return nil }
