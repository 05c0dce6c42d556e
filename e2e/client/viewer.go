// Package client is a pion-based viewer of mediasvc, used by the end-to-end
// tests and by the load generator. It signals over REST + WebSocket or over
// WHEP, receives the demo device's H.264 and Opus, and checks and measures
// what arrives: access units that decode structurally, time to the first
// keyframe, and the age of each frame from the SEI timestamp the service
// stamps on it.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"mediasvc/domain"
)

// Mode is how a viewer signals.
type Mode string

// Signaling modes.
const (
	ModeWS   Mode = "ws"
	ModeWHEP Mode = "whep"
)

// NewAPI returns a pion API for receiving viewers on loopback: H.264
// (constrained baseline, packetization-mode 1) and Opus, host candidates on
// loopback only, no mDNS. With light set it registers only the RTCP
// receiver-report interceptor (no NACK generator, no TWCC), to keep a load
// generator's CPU low; otherwise pion's defaults.
func NewAPI(light bool) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
	for i, plid := range []string{"42e01f", "42001f"} {
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
				SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + plid,
				RTCPFeedback: fb,
			},
			PayloadType: webrtc.PayloadType(102 + 2*i),
		}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, fmt.Errorf("register h264: %w", err)
		}
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1",
		},
		PayloadType: 111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("register opus: %w", err)
	}
	ir := &interceptor.Registry{}
	if light {
		if err := webrtc.ConfigureRTCPReports(ir); err != nil {
			return nil, fmt.Errorf("rtcp reports: %w", err)
		}
	} else if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, fmt.Errorf("default interceptors: %w", err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// Config says how a viewer connects and what it checks.
type Config struct {
	BaseURL string // http://127.0.0.1:port
	Device  string // default "demo"
	Mode    Mode   // default ModeWS
	Role    string // default "viewer"
	APIKey  string
	HTTP    *http.Client // default http.DefaultClient
	API     *webrtc.API  // default NewAPI(!Analyze)
	// Analyze depacketizes every access unit, checks its structure and reads
	// its SEI timestamp. Without it the viewer only counts packets, bytes and
	// frames and notes the first keyframe.
	Analyze bool
	// KeepAnnexB keeps up to this many bytes of the received Annex-B stream
	// (needs Analyze), for an external decoder.
	KeepAnnexB int
	// TrickleWHEP posts the WHEP offer before gathering and trickles the
	// client's candidates with PATCH; otherwise the offer carries them all.
	TrickleWHEP bool
	// WSHeader is sent on the WebSocket handshake (an Origin, say).
	WSHeader http.Header
	// MaxAges bounds how many frame ages are kept (default 10000).
	MaxAges int
	// SenderReports reads the video receiver's RTCP and keeps the sender
	// reports of the video stream (up to MaxAges).
	SenderReports bool
}

// Stats is what a viewer saw. Times are zero until the event happens.
type Stats struct {
	Start          time.Time // session POST (ws) or WHEP POST sent
	OfferSent      time.Time
	AnswerReceived time.Time
	Connected      time.Time // peer connection state "connected"
	FirstVideo     time.Time // first video RTP packet
	FirstKeyframe  time.Time // last packet of the first complete keyframe
	FirstAudio     time.Time
	LastVideo      time.Time

	VideoPackets, VideoBytes uint64
	AudioPackets, AudioBytes uint64
	LostPackets              uint64 // sequence gaps, in packets
	Frames                   int    // access units completed (marker bits)
	Keyframes                int
	BadFrames                int // access units that failed a structural check

	// FirstPacketKeyframe: the very first video packet starts a keyframe.
	FirstPacketKeyframe bool
	// FirstAUTypes are the NAL unit types of the first access unit (Analyze).
	FirstAUTypes []int
	// FirstAUKeyframe: the first access unit holds SPS, PPS and an IDR slice.
	FirstAUKeyframe bool
	// SEIFrames counts access units whose SEI timestamp parsed.
	SEIFrames int
	// FrameAges are arrival − ingest for frames with an SEI timestamp, and
	// FrameArrivals when each of them arrived (same index).
	FrameAges     []time.Duration
	FrameArrivals []time.Time
	// FrameRTP is each of those frames' RTP timestamp (same index).
	FrameRTP []uint32
	// SenderReports are the video stream's sender reports, in arrival
	// order (Config.SenderReports).
	SenderReports []SenderReport
	// FirstLoss is when the first sequence gap was seen.
	FirstLoss time.Time
	// Problems are the first structural errors seen, for a test to show.
	Problems []string
}

// SenderReport is one RTCP sender report of the video stream: the
// sender's wall-clock time NTP at which its RTP clock read RTP.
type SenderReport struct {
	Received time.Time
	NTP      time.Time
	RTP      uint32
}

// Map returns the sender's wall-clock time of RTP timestamp ts at clock
// Hz, by this report's NTP/RTP pair.
func (r SenderReport) Map(ts uint32, clock int64) time.Time {
	d := int32(ts - r.RTP) // RTP timestamps wrap; a frame is near its report
	return r.NTP.Add(time.Duration(int64(d) * int64(time.Second) / clock))
}

// ntpToTime converts a 64-bit NTP timestamp.
func ntpToTime(ntp uint64) time.Time {
	const ntpEpochOffset = 2208988800
	sec := int64(ntp>>32) - ntpEpochOffset
	frac := int64((ntp & 0xffffffff) * 1e9 >> 32)
	return time.Unix(sec, frac)
}

// Viewer is one connected viewer.
type Viewer struct {
	cfg  Config
	pc   *webrtc.PeerConnection
	ws   *websocket.Conn
	sess SessionInfo
	whep WHEPAnswer

	ctx    context.Context // lives as long as the viewer; ends its goroutines
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.Mutex
	st          Stats
	annexB      []byte
	msgs        []Message
	notify      chan struct{} // closed and replaced when something changes
	wsErr       error
	wsDone      chan struct{}
	remoteSet   bool
	pendingRem  []webrtc.ICECandidateInit
	signalReady bool // local candidates may be sent
	pendingLoc  []webrtc.ICECandidateInit
	answerCh    chan string
	pcState     webrtc.PeerConnectionState
	closed      bool
	deleted     bool
	localSent   int
}

// Dial creates a session (or WHEP resource), negotiates, and returns once
// the answer is applied. Media then flows in the background; use Wait*,
// Stats and Close. The viewer's goroutines end at Close (ctx only bounds
// the negotiation).
func Dial(ctx context.Context, cfg Config) (*Viewer, error) {
	if cfg.Device == "" {
		cfg.Device = "demo"
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeWS
	}
	if cfg.Role == "" {
		cfg.Role = "viewer"
	}
	if cfg.HTTP == nil {
		cfg.HTTP = http.DefaultClient
	}
	if cfg.MaxAges == 0 {
		cfg.MaxAges = 10000
	}
	if cfg.API == nil {
		api, err := NewAPI(!cfg.Analyze)
		if err != nil {
			return nil, err
		}
		cfg.API = api
	}
	vctx, cancel := context.WithCancel(context.Background())
	v := &Viewer{cfg: cfg, ctx: vctx, cancel: cancel, notify: make(chan struct{}), wsDone: make(chan struct{}), answerCh: make(chan string, 1)}
	if err := v.dial(ctx); err != nil {
		_ = v.Close()
		return nil, err
	}
	return v, nil
}

func (v *Viewer) dial(ctx context.Context) error {
	pc, err := v.cfg.API.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return fmt.Errorf("new peer connection: %w", err)
	}
	v.pc = pc
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return fmt.Errorf("add %s transceiver: %w", k, err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		v.wg.Add(1)
		go func() {
			defer v.wg.Done()
			if tr.Kind() == webrtc.RTPCodecTypeVideo {
				v.readVideo(tr)
			} else {
				v.readAudio(tr)
			}
		}()
		if v.cfg.SenderReports && tr.Kind() == webrtc.RTPCodecTypeVideo {
			v.wg.Add(1)
			go func() { defer v.wg.Done(); v.readSenderReports(recv, uint32(tr.SSRC())) }()
		}
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		v.mu.Lock()
		v.pcState = s
		if s == webrtc.PeerConnectionStateConnected && v.st.Connected.IsZero() {
			v.st.Connected = time.Now()
		}
		v.changedLocked()
		v.mu.Unlock()
	})
	trickle := v.cfg.Mode == ModeWS || v.cfg.TrickleWHEP
	if trickle {
		pc.OnICECandidate(func(c *webrtc.ICECandidate) {
			if c == nil {
				return
			}
			init := c.ToJSON()
			v.mu.Lock()
			if !v.signalReady {
				v.pendingLoc = append(v.pendingLoc, init)
				v.mu.Unlock()
				return
			}
			v.mu.Unlock()
			v.sendLocalCandidates([]webrtc.ICECandidateInit{init})
		})
	}

	v.mu.Lock()
	v.st.Start = time.Now()
	v.mu.Unlock()
	switch v.cfg.Mode {
	case ModeWS:
		return v.dialWS(ctx)
	case ModeWHEP:
		return v.dialWHEP(ctx)
	}
	return fmt.Errorf("unknown mode %q", v.cfg.Mode)
}

func (v *Viewer) dialWS(ctx context.Context) error {
	si, err := CreateSession(ctx, v.cfg.HTTP, v.cfg.BaseURL, v.cfg.APIKey, v.cfg.Device, v.cfg.Role)
	if err != nil {
		return err
	}
	v.sess = si
	u, err := WSURL(v.cfg.BaseURL, si, "")
	if err != nil {
		return err
	}
	c, _, err := DialWS(ctx, u, v.cfg.WSHeader)
	if err != nil {
		return err
	}
	v.ws = c
	v.wg.Add(1)
	go v.readWS()

	offer, err := v.pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("create offer: %w", err)
	}
	if err := v.pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("set local description: %w", err)
	}
	if err := v.SendJSON(ctx, Message{Type: "offer", SDP: offer.SDP}); err != nil {
		return err
	}
	v.mu.Lock()
	v.st.OfferSent = time.Now()
	v.mu.Unlock()
	v.flushLocal()

	select {
	case sdp := <-v.answerCh:
		if err := v.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
			return fmt.Errorf("set remote description: %w", err)
		}
		v.mu.Lock()
		v.remoteSet = true
		pend := v.pendingRem
		v.pendingRem = nil
		v.mu.Unlock()
		for _, c := range pend {
			if err := v.pc.AddICECandidate(c); err != nil {
				return fmt.Errorf("add server candidate %q: %w", c.Candidate, err)
			}
		}
		return nil
	case <-v.wsDone:
		v.mu.Lock()
		err := v.wsErr
		msgs := v.msgs
		v.mu.Unlock()
		for _, m := range msgs {
			if m.Type == "error" {
				return fmt.Errorf("websocket closed before answer: error %s: %s (%v)", m.Code, m.Message, err)
			}
		}
		return fmt.Errorf("websocket closed before answer: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("wait for answer: %w", ctx.Err())
	}
}

func (v *Viewer) dialWHEP(ctx context.Context) error {
	offer, err := v.pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("create offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(v.pc)
	if err := v.pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("set local description: %w", err)
	}
	sdp := offer.SDP
	if !v.cfg.TrickleWHEP {
		select {
		case <-gathered:
		case <-ctx.Done():
			return fmt.Errorf("gather candidates: %w", ctx.Err())
		}
		sdp = v.pc.LocalDescription().SDP
	}
	v.mu.Lock()
	v.st.OfferSent = time.Now()
	v.mu.Unlock()
	ans, err := WHEPOffer(ctx, v.cfg.HTTP, v.cfg.BaseURL, v.cfg.APIKey, v.cfg.Device, sdp)
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.whep = ans
	v.st.AnswerReceived = time.Now()
	v.mu.Unlock()
	if err := v.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.SDP}); err != nil {
		return fmt.Errorf("set remote description: %w", err)
	}
	if v.cfg.TrickleWHEP {
		v.flushLocal()
	}
	return nil
}

// flushLocal marks signaling ready and sends the candidates gathered so far.
func (v *Viewer) flushLocal() {
	v.mu.Lock()
	v.signalReady = true
	pend := v.pendingLoc
	v.pendingLoc = nil
	v.mu.Unlock()
	if len(pend) > 0 {
		v.sendLocalCandidates(pend)
	}
}

func (v *Viewer) sendLocalCandidates(cs []webrtc.ICECandidateInit) {
	ctx, cancel := context.WithTimeout(v.ctx, 5*time.Second)
	defer cancel()
	switch v.cfg.Mode {
	case ModeWS:
		for _, c := range cs {
			ci := &CandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
			if err := v.SendJSON(ctx, Message{Type: "candidate", Candidate: ci}); err != nil {
				v.problem("send candidate: %v", err)
				continue
			}
			v.mu.Lock()
			v.localSent++
			v.mu.Unlock()
		}
	case ModeWHEP:
		err := v.PatchCandidates(ctx, cs)
		if err != nil {
			v.problem("whep patch: %v", err)
			return
		}
		v.mu.Lock()
		v.localSent += len(cs)
		v.mu.Unlock()
	}
}

// PatchCandidates sends cs to the WHEP resource in one sdpfrag PATCH.
func (v *Viewer) PatchCandidates(ctx context.Context, cs []webrtc.ICECandidateInit) error {
	local := v.pc.LocalDescription()
	if local == nil {
		return errors.New("no local description")
	}
	ufrag, pwd := ICECredentials(local.SDP)
	lines := make([]string, 0, len(cs))
	for _, c := range cs {
		lines = append(lines, c.Candidate)
	}
	mid := FirstMid(local.SDP)
	if len(cs) > 0 && cs[0].SDPMid != nil {
		mid = *cs[0].SDPMid
	}
	v.mu.Lock()
	loc, etag := v.whep.Location, v.whep.ETag
	v.mu.Unlock()
	return WHEPPatch(ctx, v.cfg.HTTP, loc, v.cfg.APIKey, etag, SDPFrag(ufrag, pwd, mid, lines, false))
}

// readWS reads the session's WebSocket until it closes.
func (v *Viewer) readWS() {
	defer v.wg.Done()
	defer close(v.wsDone)
	for {
		_, b, err := v.ws.Read(v.ctx)
		if err != nil {
			v.mu.Lock()
			v.wsErr = err
			v.changedLocked()
			v.mu.Unlock()
			return
		}
		var m Message
		if err := json.Unmarshal(b, &m); err != nil {
			v.problem("bad websocket message %q: %v", truncate(string(b), 200), err)
			continue
		}
		m.Received = time.Now()
		switch m.Type {
		case "answer":
			v.mu.Lock()
			if v.st.AnswerReceived.IsZero() {
				v.st.AnswerReceived = m.Received
			}
			v.mu.Unlock()
			select {
			case v.answerCh <- m.SDP:
			default:
			}
		case "candidate":
			if m.Candidate == nil || m.Candidate.Candidate == "" {
				break
			}
			c := webrtc.ICECandidateInit{Candidate: m.Candidate.Candidate, SDPMid: m.Candidate.SDPMid, SDPMLineIndex: m.Candidate.SDPMLineIndex, UsernameFragment: m.Candidate.UsernameFragment}
			v.mu.Lock()
			if !v.remoteSet {
				v.pendingRem = append(v.pendingRem, c)
				v.mu.Unlock()
				break
			}
			v.mu.Unlock()
			if err := v.pc.AddICECandidate(c); err != nil {
				v.problem("add server candidate %q: %v", c.Candidate, err)
			}
		}
		v.mu.Lock()
		if len(v.msgs) < 10000 {
			v.msgs = append(v.msgs, m)
		}
		v.changedLocked()
		v.mu.Unlock()
	}
}

// SendJSON writes one JSON message on the session's WebSocket.
func (v *Viewer) SendJSON(ctx context.Context, m any) error {
	if v.ws == nil {
		return errors.New("no websocket (whep viewer)")
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	if err := v.ws.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("websocket write: %w", err)
	}
	return nil
}

// SendRaw writes b as one text message on the session's WebSocket.
func (v *Viewer) SendRaw(ctx context.Context, b []byte) error {
	if v.ws == nil {
		return errors.New("no websocket (whep viewer)")
	}
	return v.ws.Write(ctx, websocket.MessageText, b)
}

// LocalCandidatesSent returns how many of its own candidates the viewer has
// trickled to the service.
func (v *Viewer) LocalCandidatesSent() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.localSent
}

// Session returns the REST session (zero for WHEP viewers).
func (v *Viewer) Session() SessionInfo { return v.sess }

// WHEP returns the WHEP answer (zero for WebSocket viewers).
func (v *Viewer) WHEP() WHEPAnswer {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.whep
}

// PeerConnection returns the viewer's pion peer connection.
func (v *Viewer) PeerConnection() *webrtc.PeerConnection { return v.pc }

// Messages returns a copy of the WebSocket messages received so far.
func (v *Viewer) Messages() []Message {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]Message(nil), v.msgs...)
}

// WSClosed returns a channel closed when the WebSocket has closed, and the
// error that ended it (nil while open).
func (v *Viewer) WSClosed() (<-chan struct{}, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.wsDone, v.wsErr
}

// WaitMessage waits for a WebSocket message for which match is true and
// returns it. Messages already received count.
func (v *Viewer) WaitMessage(ctx context.Context, match func(Message) bool) (Message, error) {
	seen := 0
	for {
		v.mu.Lock()
		for ; seen < len(v.msgs); seen++ {
			if match(v.msgs[seen]) {
				m := v.msgs[seen]
				v.mu.Unlock()
				return m, nil
			}
		}
		ch, werr := v.notify, v.wsErr
		v.mu.Unlock()
		if werr != nil {
			return Message{}, fmt.Errorf("websocket closed: %w", werr)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return Message{}, fmt.Errorf("wait for message: %w", ctx.Err())
		}
	}
}

// WaitFrames waits until n access units have arrived that passed the
// structural checks (every one, without Analyze), and some audio when
// wantAudio, or ctx ends.
func (v *Viewer) WaitFrames(ctx context.Context, n int, wantAudio bool) error {
	for {
		v.mu.Lock()
		ok := v.st.Frames-v.st.BadFrames >= n && (!wantAudio || v.st.AudioPackets > 0)
		ch, state := v.notify, v.pcState
		st := v.st
		v.mu.Unlock()
		if ok {
			return nil
		}
		if state == webrtc.PeerConnectionStateFailed || state == webrtc.PeerConnectionStateClosed {
			return fmt.Errorf("peer connection %s after %d frames", state, st.Frames)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for %d frames: %w (pc %s, got %d frames, %d video packets, %d audio packets, problems %q)",
				n, ctx.Err(), state, st.Frames, st.VideoPackets, st.AudioPackets, st.Problems)
		}
	}
}

// Stats returns a copy of what the viewer saw so far.
func (v *Viewer) Stats() Stats {
	v.mu.Lock()
	defer v.mu.Unlock()
	st := v.st
	st.FrameAges = append([]time.Duration(nil), v.st.FrameAges...)
	st.FrameArrivals = append([]time.Time(nil), v.st.FrameArrivals...)
	st.FrameRTP = append([]uint32(nil), v.st.FrameRTP...)
	st.SenderReports = append([]SenderReport(nil), v.st.SenderReports...)
	st.Problems = append([]string(nil), v.st.Problems...)
	st.FirstAUTypes = append([]int(nil), v.st.FirstAUTypes...)
	return st
}

// AnnexB returns the Annex-B stream kept with Config.KeepAnnexB.
func (v *Viewer) AnnexB() []byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]byte(nil), v.annexB...)
}

// State returns the peer connection's state.
func (v *Viewer) State() webrtc.PeerConnectionState {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.pcState
}

// Close says bye (WebSocket) or deletes the WHEP resource, closes the peer
// connection and waits for the viewer's goroutines. It is safe to call more
// than once.
func (v *Viewer) Close() error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil
	}
	v.closed = true
	whepLoc, deleted := v.whep.Location, v.deleted
	v.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var errs []error
	if v.ws != nil {
		select {
		case <-v.wsDone:
		default:
			_ = v.SendJSON(ctx, Message{Type: "bye"})
		}
		_ = v.ws.Close(websocket.StatusNormalClosure, "bye")
	}
	if whepLoc != "" && !deleted {
		if err := Delete(ctx, v.cfg.HTTP, whepLoc, v.cfg.APIKey); err != nil {
			errs = append(errs, err)
		}
	}
	if v.pc != nil {
		if err := v.pc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close peer connection: %w", err))
		}
	}
	v.cancel()
	if v.ws != nil {
		_ = v.ws.CloseNow()
	}
	v.wg.Wait()
	return errors.Join(errs...)
}

// DropWS cuts the session's WebSocket without a close handshake, as a
// lost network does; the session and its peer connection live on.
func (v *Viewer) DropWS() {
	if v.ws != nil {
		_ = v.ws.CloseNow()
	}
}

// DeleteWHEP deletes the WHEP resource now; Close will not delete it again.
func (v *Viewer) DeleteWHEP(ctx context.Context) error {
	v.mu.Lock()
	loc := v.whep.Location
	v.deleted = true
	v.mu.Unlock()
	return Delete(ctx, v.cfg.HTTP, loc, v.cfg.APIKey)
}

func (v *Viewer) changedLocked() {
	close(v.notify)
	v.notify = make(chan struct{})
}

func (v *Viewer) problem(format string, args ...any) {
	v.mu.Lock()
	v.problemLocked(format, args...)
	v.mu.Unlock()
}

func (v *Viewer) problemLocked(format string, args ...any) {
	if len(v.st.Problems) < 20 {
		v.st.Problems = append(v.st.Problems, fmt.Sprintf(format, args...))
	}
}

func (v *Viewer) readAudio(tr *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		now := time.Now()
		v.mu.Lock()
		if v.st.AudioPackets == 0 {
			v.st.FirstAudio = now
			v.changedLocked()
		}
		v.st.AudioPackets++
		v.st.AudioBytes += uint64(n)
		v.mu.Unlock()
	}
}

// readSenderReports keeps the sender reports of SSRC ssrc until the
// connection closes.
func (v *Viewer) readSenderReports(recv *webrtc.RTPReceiver, ssrc uint32) {
	for {
		pkts, _, err := recv.ReadRTCP()
		if err != nil {
			return
		}
		now := time.Now()
		for _, pk := range pkts {
			sr, ok := pk.(*rtcp.SenderReport)
			if !ok || sr.SSRC != ssrc {
				continue
			}
			v.mu.Lock()
			if len(v.st.SenderReports) < v.cfg.MaxAges {
				v.st.SenderReports = append(v.st.SenderReports, SenderReport{Received: now, NTP: ntpToTime(sr.NTPTime), RTP: sr.RTPTime})
				v.changedLocked()
			}
			v.mu.Unlock()
		}
	}
}

// auState is the access unit being assembled.
type auState struct {
	data    []byte
	ts      uint32
	have    bool
	corrupt bool
	inFU    bool
	last    time.Time
}

func (v *Viewer) readVideo(tr *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	var (
		pkt      rtp.Packet
		dep      codecs.H264Packet
		au       auState
		nextSeq  uint16
		haveSeq  bool
		keyStart bool // light: a keyframe has started
	)
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		now := time.Now()
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			v.problem("bad rtp packet: %v", err)
			continue
		}
		p := pkt.Payload
		v.mu.Lock()
		first := v.st.VideoPackets == 0
		if first {
			v.st.FirstVideo = now
			v.st.FirstPacketKeyframe = isKeyframeStart(p)
		}
		v.st.VideoPackets++
		v.st.VideoBytes += uint64(n)
		v.st.LastVideo = now
		gap := false
		if haveSeq && pkt.SequenceNumber != nextSeq {
			d := pkt.SequenceNumber - nextSeq
			if d < 0x8000 {
				if v.st.LostPackets == 0 {
					v.st.FirstLoss = now
				}
				v.st.LostPackets += uint64(d)
				gap = true
			} else {
				v.mu.Unlock()
				continue // late or duplicate: drop
			}
		}
		haveSeq, nextSeq = true, pkt.SequenceNumber+1
		if !v.cfg.Analyze {
			if !keyStart && isKeyframeStart(p) {
				keyStart = true
			}
			if pkt.Marker {
				v.st.Frames++
				if keyStart && v.st.FirstKeyframe.IsZero() {
					v.st.FirstKeyframe = now
					v.st.Keyframes++
				}
				v.changedLocked()
			}
			v.mu.Unlock()
			continue
		}
		v.mu.Unlock()

		if gap {
			au.corrupt = true
			dep = codecs.H264Packet{}
			au.inFU = false
		}
		if au.have && pkt.Timestamp != au.ts {
			v.problem("access unit at ts %d ended without a marker bit", au.ts)
			au.corrupt = true
			v.finishAU(&au, au.last)
		}
		if !au.have {
			au.have, au.ts = true, pkt.Timestamp
		}
		au.last = now
		if len(p) > 0 {
			switch p[0] & 0x1f {
			case nalFUA:
				if len(p) >= 2 {
					if p[1]&0x80 != 0 {
						if au.inFU {
							v.problem("FU-A restarted before its end (seq %d)", pkt.SequenceNumber)
							au.corrupt = true
						}
						au.inFU = true
					} else if !au.inFU {
						au.corrupt = true // continuation without a start
					}
					if p[1]&0x40 != 0 {
						au.inFU = false
					}
				}
			default:
				if au.inFU {
					v.problem("FU-A interrupted by NAL type %d (seq %d)", p[0]&0x1f, pkt.SequenceNumber)
					au.corrupt = true
					au.inFU = false
				}
			}
		}
		out, err := dep.Unmarshal(p)
		if err != nil {
			v.problem("depacketize seq %d: %v", pkt.SequenceNumber, err)
			au.corrupt = true
		}
		au.data = append(au.data, out...)
		if pkt.Marker {
			v.finishAU(&au, now)
		}
	}
}

// finishAU checks and counts one access unit and resets au.
func (v *Viewer) finishAU(au *auState, arrival time.Time) {
	nals := SplitAnnexB(au.data)
	types := NALTypes(nals)
	var sps, pps, idr, slice bool
	for _, t := range types {
		switch t {
		case nalSPS:
			sps = true
		case nalPPS:
			pps = true
		case nalIDR:
			idr = true
		case nalSlice:
			slice = true
		}
	}
	var ingest time.Time
	for _, n := range nals {
		if len(n) > 0 && n[0]&0x1f == nalSEI {
			if t, ok := domain.ParseSEITimestamp(n); ok {
				ingest = t
			}
		}
	}
	bad := au.corrupt || au.inFU || (!idr && !slice) || (idr && slice)

	v.mu.Lock()
	defer v.mu.Unlock()
	v.st.Frames++
	if v.st.Frames == 1 {
		v.st.FirstAUTypes = types
		v.st.FirstAUKeyframe = sps && pps && idr && !bad
		if !v.st.FirstAUKeyframe {
			v.problemLocked("first access unit is not SPS+PPS+IDR: NAL types %v", types)
		}
	}
	if idr {
		v.st.Keyframes++
		if v.st.FirstKeyframe.IsZero() && !bad {
			v.st.FirstKeyframe = arrival
		}
	}
	if bad {
		v.st.BadFrames++
		v.problemLocked("bad access unit #%d (ts %d): NAL types %v, corrupt=%v, open FU-A=%v", v.st.Frames, au.ts, types, au.corrupt, au.inFU)
	} else if v.cfg.KeepAnnexB > 0 && len(v.annexB)+len(au.data) <= v.cfg.KeepAnnexB {
		v.annexB = append(v.annexB, au.data...)
	}
	if !ingest.IsZero() {
		v.st.SEIFrames++
		if len(v.st.FrameAges) < v.cfg.MaxAges {
			v.st.FrameAges = append(v.st.FrameAges, arrival.Sub(ingest))
			v.st.FrameArrivals = append(v.st.FrameArrivals, arrival)
			v.st.FrameRTP = append(v.st.FrameRTP, au.ts)
		}
	}
	v.changedLocked()
	au.data = au.data[:0]
	au.have, au.corrupt, au.inFU = false, false, false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// AgesAfter returns the frame ages of frames that arrived at or after t:
// the live stream, without a late joiner's catch-up from the cached
// keyframe.
func (s Stats) AgesAfter(t time.Time) []time.Duration {
	var out []time.Duration
	for i, a := range s.FrameArrivals {
		if !a.Before(t) && i < len(s.FrameAges) {
			out = append(out, s.FrameAges[i])
		}
	}
	return out
}

// String summarizes s on one line.
func (s Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "frames=%d keyframes=%d bad=%d video_pkts=%d lost=%d audio_pkts=%d sei=%d",
		s.Frames, s.Keyframes, s.BadFrames, s.VideoPackets, s.LostPackets, s.AudioPackets, s.SEIFrames)
	if !s.FirstKeyframe.IsZero() && !s.OfferSent.IsZero() {
		fmt.Fprintf(&b, " offer→keyframe=%s", s.FirstKeyframe.Sub(s.OfferSent).Round(time.Millisecond))
	}
	if !s.FirstKeyframe.IsZero() && !s.Connected.IsZero() {
		fmt.Fprintf(&b, " connected→keyframe=%s", s.FirstKeyframe.Sub(s.Connected).Round(time.Millisecond))
	}
	return b.String()
}
