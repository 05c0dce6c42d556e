// Package rtc is the WebRTC transport (pion/webrtc v4): it packetizes each
// device stream into RTP once, into a ring shared by all its viewers, and
// sends it to every viewer's PeerConnection with the viewer's own SSRC,
// sequence numbers and timestamps, answering NACKs from the shared ring and
// turning PLI/FIR into coalesced keyframe requests.
package rtc

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"go.opentelemetry.io/otel/metric"

	"mediasvc/domain"
	"mediasvc/ports"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultGatherTimeout    = 5 * time.Second
	DefaultMTU              = 1200
	DefaultKeyframeInterval = 500 * time.Millisecond
)

// ErrClosed is returned by operations on a closed Fanout or Transport.
var ErrClosed = errors.New("rtc: closed")

// Config configures the transport. The zero value works on one machine
// (ephemeral UDP ports, host and loopback candidates, no STUN/TURN).
type Config struct {
	// ICEServers are the STUN/TURN servers used by the server's agents and
	// handed to clients by ICEServers.
	ICEServers []domain.ICEServer
	// NAT1To1IPs are public IPs advertised as host candidates in place of
	// the local addresses (the server sits behind a 1:1 NAT).
	NAT1To1IPs []string
	// UDPPort is the one UDP port every peer shares per local address (ICE
	// UDP mux); 0 lets the system pick one. Not with EphemeralPorts.
	UDPPort int
	// EphemeralPorts gives each peer its own UDP socket on an ephemeral
	// port instead of the shared ones; writes are then not batched.
	EphemeralPorts bool
	// UDPPortMin and UDPPortMax bound the ephemeral ports (EphemeralPorts
	// only). Both 0 means any port.
	UDPPortMin, UDPPortMax uint16
	// SendBatch is how many packets a shared socket queues and sends in
	// one system call (sendmmsg); 0 means DefaultSendBatch, 1 sends each
	// packet on its own.
	SendBatch int
	// NoGSO keeps the shared sockets from sending a run of datagrams to one
	// peer as one UDP GSO message (the kernel splits it), which they do
	// where the kernel offers it.
	NoGSO bool
	// NoIPv6 gathers IPv4 candidates only: each peer then holds half the
	// host candidates (a socket reader, a buffer and a mux entry each) on
	// a dual-stack host.
	NoIPv6 bool
	// Interfaces, when not empty, restricts candidates to these network
	// interface names. Loopback candidates are always gathered so that
	// everything works on 127.0.0.1.
	Interfaces []string
	// GatherTimeout bounds how long a non-trickle Answer waits for
	// candidate gathering; the answer then carries what was gathered.
	GatherTimeout time.Duration
	// RingHistory is how long each stream's ring keeps packets for NACKs
	// (0 means DefaultRingHistory); it always keeps the current group of
	// pictures too, for late joiners, so its memory follows the bitrate and
	// GOP length.
	RingHistory time.Duration
	// RingMaxBytes caps each ring's memory (0 means DefaultRingMaxBytes);
	// past it even the current GOP's oldest packets go.
	RingMaxBytes int
	// MTU is the largest RTP payload the video packetizer produces, at
	// most 1400.
	MTU int
	// KeyframeInterval is the minimum time between two keyframe requests a
	// Fanout delivers.
	KeyframeInterval time.Duration
	// Meter records the transport's metrics (sent frames, packets and
	// bytes, NACKs, PLIs, retransmissions, keyframe requests and skips);
	// nil records nothing.
	Meter metric.Meter
}

// Transport makes viewer peers and stream fanouts sharing one pion API (one
// MediaEngine, SettingEngine and, in single-port mode, one UDP mux).
type Transport struct {
	cfg     Config
	log     *slog.Logger
	api     *webrtc.API
	mux     ice.UDPMux
	servers []webrtc.ICEServer

	batch *batchGroup // nil unless writes are batched
	udp   udpTotals   // the batched sockets' system calls and datagrams

	keyframeSkips atomic.Uint64
	sent          sentTotals
	m             instruments
	closeOnce     sync.Once
	closed        atomic.Bool
}

var _ ports.Transport = (*Transport)(nil)

// New builds a Transport. It returns an error when cfg is invalid or the
// single UDP port cannot be bound; nothing is held then. The caller must
// Close the Transport after closing its peers.
func New(cfg Config, logger *slog.Logger) (*Transport, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.GatherTimeout <= 0 {
		cfg.GatherTimeout = DefaultGatherTimeout
	}
	if cfg.RingHistory == 0 {
		cfg.RingHistory = DefaultRingHistory
	}
	if cfg.RingMaxBytes == 0 {
		cfg.RingMaxBytes = DefaultRingMaxBytes
	}
	if cfg.RingHistory < 0 || cfg.RingMaxBytes < 0 {
		return nil, fmt.Errorf("rtc config: negative ring history %s or byte cap %d", cfg.RingHistory, cfg.RingMaxBytes)
	}
	if cfg.MTU <= 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.MTU < 100 || cfg.MTU > 1400 {
		return nil, fmt.Errorf("rtc config: mtu %d outside [100, 1400]", cfg.MTU)
	}
	if cfg.KeyframeInterval <= 0 {
		cfg.KeyframeInterval = DefaultKeyframeInterval
	}
	if cfg.UDPPort < 0 || cfg.UDPPort > 65535 {
		return nil, fmt.Errorf("rtc config: udp port %d out of range", cfg.UDPPort)
	}
	if cfg.UDPPortMin > cfg.UDPPortMax {
		return nil, fmt.Errorf("rtc config: udp port range %d-%d is empty", cfg.UDPPortMin, cfg.UDPPortMax)
	}
	if !cfg.EphemeralPorts && (cfg.UDPPortMax != 0) {
		return nil, fmt.Errorf("rtc config: a udp port range needs ephemeral ports")
	}
	if cfg.EphemeralPorts && cfg.UDPPort != 0 {
		return nil, fmt.Errorf("rtc config: udp port %d and ephemeral ports exclude each other", cfg.UDPPort)
	}
	if cfg.SendBatch == 0 {
		cfg.SendBatch = DefaultSendBatch
	}
	if cfg.SendBatch < 1 || cfg.SendBatch > maxSendBatch {
		return nil, fmt.Errorf("rtc config: send batch %d outside [1, %d]", cfg.SendBatch, maxSendBatch)
	}
	cfg.ICEServers = slices.Clone(cfg.ICEServers)

	t := &Transport{cfg: cfg, log: logger}
	in, err := newInstruments(cfg.Meter, &t.sent, &t.keyframeSkips, &t.udp)
	if err != nil {
		return nil, fmt.Errorf("rtc: metrics: %w", err)
	}
	t.m = in
	for _, s := range cfg.ICEServers {
		t.servers = append(t.servers, webrtc.ICEServer{
			URLs:       slices.Clone(s.URLs),
			Username:   s.Username,
			Credential: s.Credential,
		})
	}

	m := &webrtc.MediaEngine{}
	if err := registerCodecs(m); err != nil {
		return nil, fmt.Errorf("rtc: register codecs: %w", err)
	}

	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if cfg.NoIPv6 {
		networks = networks[:1]
	}
	se.SetNetworkTypes(networks)
	var ifFilter func(string) bool
	if len(cfg.Interfaces) > 0 {
		allow := slices.Clone(cfg.Interfaces)
		ifFilter = func(name string) bool { return slices.Contains(allow, name) || isLoopbackName(name) }
		se.SetInterfaceFilter(ifFilter)
	}
	if len(cfg.NAT1To1IPs) > 0 {
		// Host candidates carry the public addresses instead of the
		// local ones (what SetNAT1To1IPs with host candidates did).
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: slices.Clone(cfg.NAT1To1IPs), AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			return nil, fmt.Errorf("rtc: nat 1:1 ips %v: %w", cfg.NAT1To1IPs, err)
		}
	}
	if !cfg.EphemeralPorts {
		opts := []ice.UDPMuxFromPortOption{ice.UDPMuxFromPortWithLoopback()}
		if cfg.NoIPv6 {
			opts = append(opts, ice.UDPMuxFromPortWithNetworks(ice.NetworkTypeUDP4))
		}
		if ifFilter != nil {
			opts = append(opts, ice.UDPMuxFromPortWithInterfaceFilter(ifFilter))
		}
		if cfg.SendBatch > 1 {
			opt, err := t.batchedSockets(cfg.SendBatch, !cfg.NoGSO)
			if err != nil {
				return nil, fmt.Errorf("rtc: %w", err)
			}
			opts = append(opts, opt)
		}
		mux, err := ice.NewMultiUDPMuxFromPort(cfg.UDPPort, opts...)
		if err != nil {
			return nil, fmt.Errorf("rtc: listen on udp port %d: %w", cfg.UDPPort, err)
		}
		t.mux = mux
		se.SetICEUDPMux(mux)
	} else if cfg.UDPPortMax != 0 {
		if err := se.SetEphemeralUDPPortRange(cfg.UDPPortMin, cfg.UDPPortMax); err != nil {
			return nil, fmt.Errorf("rtc: udp port range: %w", err)
		}
	}

	// An empty interceptor registry on purpose: pion's default NACK
	// responder keeps a copy of the last packets per viewer; we answer
	// NACKs from the shared ring and send our own sender reports instead.
	t.api = webrtc.NewAPI(
		webrtc.WithMediaEngine(m),
		webrtc.WithSettingEngine(se),
		webrtc.WithInterceptorRegistry(&interceptor.Registry{}),
	)
	return t, nil
}

func isLoopbackName(name string) bool { return name == "lo" || name == "lo0" }

// H.264 and Opus as the transport offers them.
const (
	h264FmtpCB       = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
	h264FmtpBaseline = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"
	opusFmtp         = "minptime=10;useinbandfec=1"
	videoClock       = 90000
	audioClock       = 48000
)

// videoFeedback is what viewers may send about video: NACK, PLI and FIR,
// and REMB (goog-remb), the receiver's bandwidth estimate, shown in stats.
var videoFeedback = []webrtc.RTCPFeedback{
	{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}, {Type: "goog-remb"},
}

func registerCodecs(m *webrtc.MediaEngine) error {
	codecs := []struct {
		c webrtc.RTPCodecParameters
		k webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecParameters{PayloadType: 102, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: videoClock, SDPFmtpLine: h264FmtpCB, RTCPFeedback: videoFeedback,
		}}, webrtc.RTPCodecTypeVideo},
		// Constrained baseline is decodable as baseline: accept offers
		// that only name 42001f.
		{webrtc.RTPCodecParameters{PayloadType: 104, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: videoClock, SDPFmtpLine: h264FmtpBaseline, RTCPFeedback: videoFeedback,
		}}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: audioClock, Channels: 2, SDPFmtpLine: opusFmtp,
		}}, webrtc.RTPCodecTypeAudio},
	}
	for _, c := range codecs {
		if err := m.RegisterCodec(c.c, c.k); err != nil {
			return err
		}
	}
	return nil
}

// ICEServers returns a copy of the configured STUN/TURN servers.
func (t *Transport) ICEServers() []domain.ICEServer {
	out := make([]domain.ICEServer, len(t.cfg.ICEServers))
	for i, s := range t.cfg.ICEServers {
		out[i] = domain.ICEServer{URLs: slices.Clone(s.URLs), Username: s.Username, Credential: s.Credential}
	}
	return out
}

// KeyframeSkips returns how many times, over the Transport's life, a viewer
// fell behind its stream's ring and skipped to a keyframe.
func (t *Transport) KeyframeSkips() uint64 { return t.keyframeSkips.Load() }

// Close releases the shared UDP mux, if any. Peers and fanouts should be
// closed first. It is safe to call more than once.
func (t *Transport) Close() error {
	var err error
	t.closeOnce.Do(func() {
		t.closed.Store(true)
		if t.mux != nil {
			err = t.mux.Close()
		}
	})
	return err
}
