package rtc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"mediasvc/domain"
	"mediasvc/ports"
)

// testClient is an in-process pion viewer: recvonly video and audio.
type testClient struct {
	pc    *webrtc.PeerConnection
	video chan *rtp.Packet
	audio chan *rtp.Packet
	ssrc  atomic.Uint32 // video SSRC, once the first packet arrived
}

func newTestClient(t *testing.T) *testClient {
	t.Helper()
	return newTestClientWith(t, clientH264)
}

// Codec sets a test client offers.
var (
	clientH264 = []webrtc.RTPCodecParameters{
		{PayloadType: 102, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", RTCPFeedback: videoFeedback}},
		{PayloadType: 104, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", RTCPFeedback: videoFeedback}},
	}
	clientVP8 = []webrtc.RTPCodecParameters{
		{PayloadType: 96, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFeedback}},
	}
)

func newTestClientWith(t *testing.T, video []webrtc.RTPCodecParameters) *testClient {
	t.Helper()
	return newTestClientOn(t, video, []webrtc.NetworkType{webrtc.NetworkTypeUDP4})
}

func newTestClientOn(t *testing.T, video []webrtc.RTPCodecParameters, networks []webrtc.NetworkType) *testClient {
	t.Helper()
	m := &webrtc.MediaEngine{}
	for _, c := range video {
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: audioClock, Channels: 2, SDPFmtpLine: opusFmtp}}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes(networks)
	se.DisableSRTPReplayProtection(true) // to see NACKed retransmissions of received packets
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	c := &testClient{pc: pc, video: make(chan *rtp.Packet, 8192), audio: make(chan *rtp.Packet, 8192)}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		ch := c.video
		if tr.Kind() == webrtc.RTPCodecTypeAudio {
			ch = c.audio
		} else {
			c.ssrc.Store(uint32(tr.SSRC()))
		}
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			select {
			case ch <- p:
			default:
			}
		}
	})
	t.Cleanup(func() { _ = pc.Close() })
	return c
}

// connect negotiates c with a new Peer of f (non-trickle) and waits until
// media flows.
func connect(t *testing.T, tp *Transport, f *Fanout, c *testClient, opts ports.PeerOptions) *Peer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := tp.newPeer(ctx, f, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	offer, err := c.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	answer, err := p.Answer(ctx, c.pc.LocalDescription().SDP)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	return p
}

// pump writes a synthetic 100 fps stream (a keyframe every gop frames or on
// request, 20 ms Opus packets) until stopped.
type pump struct {
	f      *Fanout
	stop   chan struct{}
	wg     sync.WaitGroup
	force  atomic.Bool
	key    atomic.Int64 // keyframes written
	frames atomic.Int64 // video frames written
}

func startPump(t *testing.T, f *Fanout, gop int, honorRequests bool) *pump {
	p := &pump{f: f, stop: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			if honorRequests {
				select {
				case <-f.KeyframeRequests():
					p.force.Store(true)
				default:
				}
			}
			key := i%gop == 0 || p.force.Swap(false)
			if key {
				p.key.Add(1)
			}
			pts := time.Duration(i) * 10 * time.Millisecond
			if err := f.WriteFrame(domain.Frame{Kind: domain.KindVideo, Data: testAU(key, map[bool]int{true: 6000, false: 900}[key], byte(i)), PTS: pts, Keyframe: key}); err != nil {
				return
			}
			p.frames.Add(1)
			if i%2 == 0 {
				_ = f.WriteFrame(domain.Frame{Kind: domain.KindAudio, Data: []byte{0xfc, 0xff, 0xfe, byte(i)}, PTS: pts, Duration: 20 * time.Millisecond})
			}
		}
	}()
	t.Cleanup(p.halt)
	return p
}

func (p *pump) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.wg.Wait()
}

func newTestTransport(t *testing.T, cfg Config) (*Transport, *Fanout) {
	t.Helper()
	tp, err := New(cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.Close() })
	f, err := tp.newFanout("dev1", domain.StreamInfo{Video: domain.CodecH264, Audio: domain.CodecOpus, ProfileLevelID: "42e01f"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return tp, f
}

func recv(t *testing.T, ch chan *rtp.Packet) *rtp.Packet {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for RTP")
		return nil
	}
}

// firstAU reads packets up to the first marker and returns the NAL types of
// the depacketized access unit.
func firstAU(t *testing.T, c *testClient) (types []byte, first *rtp.Packet) {
	t.Helper()
	var au []byte
	for {
		p := recv(t, c.video)
		if first == nil {
			first = p
		}
		var d codecs.H264Packet
		b, err := d.Unmarshal(p.Payload)
		if err != nil {
			t.Fatalf("depacketize: %v", err)
		}
		au = append(au, b...)
		if p.Marker {
			return nalTypes(au), first
		}
	}
}

// countAUs reads video until n frames (markers) arrived.
func countAUs(t *testing.T, c *testClient, n int) {
	t.Helper()
	for got := 0; got < n; {
		if recv(t, c.video).Marker {
			got++
		}
	}
}

func TestViewerGetsKeyframeFirstThenManyFrames(t *testing.T) {
	tp, f := newTestTransport(t, Config{})
	pu := startPump(t, f, 50, true)
	time.Sleep(150 * time.Millisecond) // the viewer joins mid-GOP
	var states sync.Map
	c := newTestClient(t)
	p := connect(t, tp, f, c, ports.PeerOptions{Session: "s1", OnState: func(s ports.PeerState) { states.Store(s, true) }})
	types, _ := firstAU(t, c)
	if string(types) != string([]byte{7, 8, 5}) {
		t.Fatalf("first AU nal types = %v, want SPS PPS IDR", types)
	}
	countAUs(t, c, 60)
	recv(t, c.audio)
	if _, ok := states.Load(ports.PeerConnected); !ok {
		t.Error("OnState never saw connected")
	}
	if f.Viewers() != 1 {
		t.Errorf("viewers = %d", f.Viewers())
	}
	// Stats: counters now, rates after a tick.
	time.Sleep(1100 * time.Millisecond)
	s := p.Stats()
	if s.FramesSent < 60 || s.AudioPackets == 0 || s.FrameRate <= 0 || s.BitrateBps <= 0 || s.State != "connected" {
		t.Errorf("stats %+v", s)
	}
	pu.halt()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if f.Viewers() != 0 {
		t.Errorf("viewers after close = %d", f.Viewers())
	}
}

func TestLateJoinerStartsAtKeyframeAndSSRCsDiffer(t *testing.T) {
	tp, f := newTestTransport(t, Config{})
	startPump(t, f, 40, false)
	c1 := newTestClient(t)
	connect(t, tp, f, c1, ports.PeerOptions{Session: "s1"})
	if types, _ := firstAU(t, c1); types[0] != 7 {
		t.Fatalf("viewer 1 first AU %v", types)
	}
	countAUs(t, c1, 25) // well into the GOP
	// Drain any request made so far; the late joiner must not need one.
	select {
	case <-f.KeyframeRequests():
	default:
	}
	c2 := newTestClient(t)
	connect(t, tp, f, c2, ports.PeerOptions{Session: "s2"})
	types, first := firstAU(t, c2)
	if string(types) != string([]byte{7, 8, 5}) {
		t.Fatalf("late joiner first AU %v", types)
	}
	countAUs(t, c2, 10)
	if c1.ssrc.Load() == c2.ssrc.Load() {
		t.Fatalf("both viewers use SSRC %d", c1.ssrc.Load())
	}
	if first.SSRC != c2.ssrc.Load() {
		t.Fatalf("packet SSRC %d, track SSRC %d", first.SSRC, c2.ssrc.Load())
	}
	select {
	case <-f.KeyframeRequests():
		t.Error("late joiner requested a keyframe although the ring held one")
	default:
	}
}

func TestJoinWithoutKeyframeRequestsOne(t *testing.T) {
	tp, f := newTestTransport(t, Config{})
	// Deltas only: the ring has no keyframe until asked for one.
	startPump(t, f, 1<<30, true)
	time.Sleep(50 * time.Millisecond)
	c := newTestClient(t)
	connect(t, tp, f, c, ports.PeerOptions{Session: "s1"})
	types, _ := firstAU(t, c)
	if types[0] != 7 {
		t.Fatalf("first AU %v", types)
	}
}

func TestPLIYieldsOneCoalescedRequest(t *testing.T) {
	tp, f := newTestTransport(t, Config{KeyframeInterval: time.Hour})
	startPump(t, f, 1000, false)
	c := newTestClient(t)
	p := connect(t, tp, f, c, ports.PeerOptions{Session: "s1"})
	firstAU(t, c)
	ssrc := c.ssrc.Load()
	for i := 0; i < 20; i++ {
		if err := c.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.pc.WriteRTCP([]rtcp.Packet{&rtcp.FullIntraRequest{MediaSSRC: ssrc, FIR: []rtcp.FIREntry{{SSRC: ssrc}}}})
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().PLIs < 21 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := p.Stats().PLIs; got != 21 {
		t.Fatalf("PLIs = %d, want 21", got)
	}
	n := 0
	for done := false; !done; {
		select {
		case <-f.KeyframeRequests():
			n++
		case <-time.After(100 * time.Millisecond):
			done = true
		}
	}
	if n != 1 {
		t.Fatalf("keyframe requests = %d, want 1", n)
	}
}

func TestNACKRetransmitsFromRing(t *testing.T) {
	tp, f := newTestTransport(t, Config{})
	startPump(t, f, 1000, false)
	c := newTestClient(t)
	p := connect(t, tp, f, c, ports.PeerOptions{Session: "s1"})
	_, first := firstAU(t, c)
	countAUs(t, c, 5)
	want := first.SequenceNumber + 1 // an FU-A fragment of the IDR
	_ = c.pc.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{
		MediaSSRC: c.ssrc.Load(),
		Nacks:     []rtcp.NackPair{{PacketID: want}},
	}})
	deadline := time.After(5 * time.Second)
	for {
		select {
		case pk := <-c.video:
			if pk.SequenceNumber != want {
				continue
			}
			if pk.Timestamp != first.Timestamp {
				t.Fatalf("retransmission timestamp %d, want %d", pk.Timestamp, first.Timestamp)
			}
			// The counter moves after the write returns, so the packet can
			// arrive first: wait for it rather than race it.
			statsDeadline := time.Now().Add(2 * time.Second)
			for {
				s := p.Stats()
				if s.NACKs == 1 && s.Retransmits == 1 {
					return
				}
				if time.Now().After(statsDeadline) {
					t.Fatalf("stats nacks=%d retransmits=%d", s.NACKs, s.Retransmits)
				}
				time.Sleep(5 * time.Millisecond)
			}
		case <-deadline:
			t.Fatal("no retransmission")
		}
	}
}

func TestReceiverReportsGiveRTT(t *testing.T) {
	tp, f := newTestTransport(t, Config{})
	startPump(t, f, 50, false)
	c := newTestClient(t)
	p := connect(t, tp, f, c, ports.PeerOptions{Session: "s1"})
	firstAU(t, c)
	// Wait for a sender report, then answer it as a browser would.
	recvr := c.pc.GetTransceivers()[0].Receiver()
	var sr *rtcp.SenderReport
	deadline := time.Now().Add(5 * time.Second)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // keep media flowing out of the channel
		defer wg.Done()
		for {
			select {
			case <-c.video:
			case <-stop:
				return
			}
		}
	}()
	defer wg.Wait()
	defer close(stop)
	for sr == nil {
		pkts, _, err := recvr.ReadRTCP()
		if err != nil {
			t.Fatal(err)
		}
		for _, pk := range pkts {
			if s, ok := pk.(*rtcp.SenderReport); ok && s.SSRC == c.ssrc.Load() {
				sr = s
			}
		}
	}
	time.Sleep(20 * time.Millisecond)
	lsr := uint32(sr.NTPTime >> 16)
	_ = c.pc.WriteRTCP([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{
		SSRC: sr.SSRC, FractionLost: 64, TotalLost: 7, Jitter: 900, LastSenderReport: lsr, Delay: 65536 / 100, // 10 ms held
	}}}})
	for time.Now().Before(deadline) {
		s := p.Stats()
		if s.PacketsLost == 7 {
			if s.LossFraction != 0.25 || s.JitterMs != 10 || s.RTTMs < 5 || s.RTTMs > 1000 {
				t.Fatalf("stats %+v", s)
			}
			if fs := f.Stats(); fs.LossFraction != 0.25 || fs.RTTMs != s.RTTMs {
				t.Fatalf("fanout stats %+v", fs)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("receiver report never reflected in stats")
}

func TestAddCandidateLimitsAndQueue(t *testing.T) {
	tp, f := newTestTransport(t, Config{})
	p, err := tp.newPeer(context.Background(), f, ports.PeerOptions{Session: "s1", Limits: domain.ICELimits{MaxCandidates: 50, MaxCandidateLen: 1024}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.AddCandidate(domain.Candidate{Candidate: "candidate:1 1 udp 1 nonsense"}); !errors.Is(err, domain.ErrInvalidCandidate) {
		t.Fatalf("malformed: %v", err)
	}
	if err := p.AddCandidate(domain.Candidate{}); err != nil {
		t.Fatalf("end of candidates: %v", err)
	}
	for i := 0; i < 50; i++ {
		c := fmt.Sprintf("candidate:%d 1 udp 2130706431 127.0.0.1 %d typ host", i, 40000+i)
		if err := p.AddCandidate(domain.Candidate{Candidate: c}); err != nil {
			t.Fatalf("candidate %d: %v", i, err)
		}
	}
	err = p.AddCandidate(domain.Candidate{Candidate: "candidate:99 1 udp 2130706431 127.0.0.1 50000 typ host"})
	if !errors.Is(err, domain.ErrTooManyCandidates) {
		t.Fatalf("51st candidate: %v", err)
	}
	if len(p.pending) != 50 {
		t.Fatalf("queued %d", len(p.pending))
	}
	// The queue is applied by Answer.
	c := newTestClient(t)
	offer, _ := c.pc.CreateOffer(nil)
	_ = c.pc.SetLocalDescription(offer)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := p.Answer(ctx, offer.SDP); err != nil {
		t.Fatal(err)
	}
	if len(p.pending) != 0 {
		t.Fatalf("queue not applied: %d left", len(p.pending))
	}
}

func TestAnswerRejectsBadOffers(t *testing.T) {
	tp, f := newTestTransport(t, Config{})
	p, err := tp.newPeer(context.Background(), f, ports.PeerOptions{Session: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	vp8Only := "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 VP8/90000\r\n"
	for name, offer := range map[string]string{
		"garbage":    "this is not sdp",
		"empty":      "",
		"huge":       strings.Repeat("a", MaxOfferSize+1),
		"audio only": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n",
	} {
		if _, err := p.Answer(context.Background(), offer); !errors.Is(err, domain.ErrInvalidOffer) {
			t.Errorf("%s: err = %v, want ErrInvalidOffer", name, err)
		}
	}
	// A well-formed offer the stream cannot go to is no invalid offer.
	if _, err := p.Answer(context.Background(), vp8Only); !errors.Is(err, domain.ErrNoCommonCodec) || errors.Is(err, domain.ErrInvalidOffer) {
		t.Errorf("vp8 only: err = %v, want ErrNoCommonCodec", err)
	}
}

func TestTrickleAndUDPMux(t *testing.T) {
	tpm, err := New(Config{UDPPort: freeUDPPort(t)}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer tpm.Close()
	fm, err := tpm.newFanout("dev", domain.StreamInfo{Video: domain.CodecH264})
	if err != nil {
		t.Fatal(err)
	}
	defer fm.Close()
	startPump(t, fm, 30, false)
	c := newTestClient(t)
	var ended atomic.Bool
	cands := make(chan domain.Candidate, 64)
	p, err := tpm.newPeer(context.Background(), fm, ports.PeerOptions{Session: "s1", Trickle: true, OnCandidate: func(c domain.Candidate) {
		if c.Candidate == "" {
			ended.Store(true)
			return
		}
		cands <- c
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c.pc.OnICECandidate(func(ci *webrtc.ICECandidate) {
		if ci != nil {
			_ = p.AddCandidate(domain.Candidate{Candidate: ci.ToJSON().Candidate})
		}
	})
	offer, _ := c.pc.CreateOffer(nil)
	_ = c.pc.SetLocalDescription(offer)
	answer, err := p.Answer(context.Background(), offer.SDP)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for cd := range cands {
			_ = c.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: cd.Candidate, SDPMid: cd.SDPMid, SDPMLineIndex: cd.SDPMLineIndex})
		}
	}()
	defer close(cands)
	if types, _ := firstAU(t, c); types[0] != 7 {
		t.Fatalf("first AU %v", types)
	}
	for deadline := time.Now().Add(5 * time.Second); !ended.Load() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if !ended.Load() {
		t.Error("no end-of-candidates marker")
	}
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func TestICERestartRenegotiation(t *testing.T) {
	tp, f := newTestTransport(t, Config{})
	startPump(t, f, 20, true)
	c := newTestClient(t)
	p := connect(t, tp, f, c, ports.PeerOptions{Session: "s1"})
	firstAU(t, c)
	offer, err := c.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answer, err := p.Answer(ctx, c.pc.LocalDescription().SDP)
	if err != nil {
		t.Fatalf("renegotiation: %v", err)
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	// Media keeps flowing after the restart.
	for len(c.video) > 0 {
		<-c.video
	}
	countAUs(t, c, 30)
}

func TestREMBShowsInStats(t *testing.T) {
	tp, f := newTestTransport(t, Config{})
	startPump(t, f, 50, false)
	c := newTestClient(t)
	p := connect(t, tp, f, c, ports.PeerOptions{Session: "s1"})
	firstAU(t, c)
	if err := c.pc.WriteRTCP([]rtcp.Packet{&rtcp.ReceiverEstimatedMaximumBitrate{
		SenderSSRC: 1, Bitrate: 1_500_000, SSRCs: []uint32{c.ssrc.Load()},
	}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().EstimatedBps == 0 {
		if time.Now().After(deadline) {
			t.Fatal("REMB never reflected in stats")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := p.Stats().EstimatedBps; got < 1_490_000 || got > 1_510_000 {
		t.Fatalf("estimate %v, want ~1.5 Mbps", got)
	}
	if got := f.Stats().EstimatedBps; got != p.Stats().EstimatedBps {
		t.Fatalf("fanout estimate %v", got)
	}
}
