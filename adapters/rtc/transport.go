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
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/transport/v5/stdnet"
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
	// TCPPort, when not 0, makes every peer also offer ICE-TCP passive
	// candidates on this one TCP port (pion's ICE TCP mux), for viewers
	// behind networks that block UDP.
	TCPPort int
	// NoUDP gathers no UDP candidates at all: viewers reach the server
	// over ICE-TCP (TCPPort) or through a TURN relay only.
	NoUDP bool
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
	// LoopbackOnly gathers host candidates on loopback addresses only:
	// the shared UDP sockets bind 127.0.0.1 and ::1, the ICE-TCP listener
	// 127.0.0.1, so nothing of the service listens beyond the machine. For a
	// service whose HTTP listener is on loopback; not with Interfaces or
	// NAT1To1IPs. Relay (TURN) and server-reflexive candidates are
	// gathered as usual.
	LoopbackOnly bool
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
	// ViewerBudget bounds what each viewer's RTCP may cost (zero fields
	// take the defaults in budget.go).
	ViewerBudget ViewerBudget
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
	se      webrtc.SettingEngine
	mux     ice.UDPMux
	tcpMux  ice.TCPMux
	iceMu   sync.RWMutex
	ice     []domain.ICEServer // handed to clients
	servers []webrtc.ICEServer // the same, for pion

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
	var err error
	if cfg.ViewerBudget, err = cfg.ViewerBudget.withDefaults(); err != nil {
		return nil, err
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
	if cfg.TCPPort < 0 || cfg.TCPPort > 65535 {
		return nil, fmt.Errorf("rtc config: tcp port %d out of range", cfg.TCPPort)
	}
	if cfg.NoUDP && cfg.TCPPort == 0 && len(cfg.ICEServers) == 0 {
		return nil, fmt.Errorf("rtc config: without UDP a viewer needs a tcp port or a TURN server")
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
	if cfg.LoopbackOnly && (len(cfg.Interfaces) > 0 || len(cfg.NAT1To1IPs) > 0) {
		return nil, fmt.Errorf("rtc config: loopback only excludes interfaces and nat 1:1 ips")
	}
	cfg.ICEServers = slices.Clone(cfg.ICEServers)

	t := &Transport{cfg: cfg, log: logger}
	in, err := newInstruments(cfg.Meter, &t.sent, &t.keyframeSkips, &t.udp)
	if err != nil {
		return nil, fmt.Errorf("rtc: metrics: %w", err)
	}
	t.m = in
	t.SetICEServers(cfg.ICEServers)

	se := webrtc.SettingEngine{}
	// One network and one set of loggers for every peer: left unset, pion
	// makes each ICE agent its own stdnet.Net (a netlink dump of the
	// interfaces, ~6 KiB kept per peer) and each PeerConnection its own
	// loggers (five log.Loggers per scope, ~5 KiB per peer). Agents only
	// read the shared Net (pion refreshes it only under a continual
	// gathering policy, which we do not set).
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, fmt.Errorf("rtc: network interfaces: %w", err)
	}
	se.SetNet(n)
	se.LoggerFactory = &pionLoggers{f: logging.NewDefaultLoggerFactory()}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	var networks []webrtc.NetworkType
	if !cfg.NoUDP {
		networks = append(networks, webrtc.NetworkTypeUDP4)
		if !cfg.NoIPv6 {
			networks = append(networks, webrtc.NetworkTypeUDP6)
		}
	}
	if cfg.TCPPort != 0 {
		networks = append(networks, webrtc.NetworkTypeTCP4)
		if !cfg.NoIPv6 && !cfg.LoopbackOnly {
			networks = append(networks, webrtc.NetworkTypeTCP6)
		}
	}
	se.SetNetworkTypes(networks)
	var ifFilter func(string) bool
	if len(cfg.Interfaces) > 0 {
		allow := slices.Clone(cfg.Interfaces)
		ifFilter = func(name string) bool { return slices.Contains(allow, name) || isLoopbackName(name) }
		se.SetInterfaceFilter(ifFilter)
	}
	var ipFilter func(net.IP) bool
	if cfg.LoopbackOnly {
		ipFilter = func(ip net.IP) bool { return ip.IsLoopback() }
		se.SetIPFilter(ipFilter)
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
	if cfg.TCPPort != 0 {
		mux, err := listenTCP(cfg.TCPPort, cfg.NoIPv6, cfg.LoopbackOnly)
		if err != nil {
			return nil, fmt.Errorf("rtc: %w", err)
		}
		t.tcpMux = mux
		se.SetICETCPMux(t.tcpMux)
	}
	if cfg.NoUDP {
		// No UDP socket at all.
	} else if !cfg.EphemeralPorts {
		opts := []ice.UDPMuxFromPortOption{ice.UDPMuxFromPortWithLoopback()}
		if cfg.NoIPv6 {
			opts = append(opts, ice.UDPMuxFromPortWithNetworks(ice.NetworkTypeUDP4))
		}
		if ifFilter != nil {
			opts = append(opts, ice.UDPMuxFromPortWithInterfaceFilter(ifFilter))
		}
		if ipFilter != nil {
			opts = append(opts, ice.UDPMuxFromPortWithIPFilter(ipFilter))
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
			if t.tcpMux != nil {
				_ = t.tcpMux.Close()
			}
			return nil, fmt.Errorf("rtc: listen on udp port %d: %w", cfg.UDPPort, err)
		}
		t.mux = mux
		se.SetICEUDPMux(mux)
	} else if cfg.UDPPortMax != 0 {
		if err := se.SetEphemeralUDPPortRange(cfg.UDPPortMin, cfg.UDPPortMax); err != nil {
			return nil, fmt.Errorf("rtc: udp port range: %w", err)
		}
	}

	t.se = se
	return t, nil
}

// pionLoggers hands every peer the same logger per scope (pion's default
// factory, PION_LOG_* as usual), where pion would make new ones for each
// PeerConnection, agent and session.
type pionLoggers struct {
	f  logging.LoggerFactory
	mu sync.Mutex
	m  map[string]logging.LeveledLogger
}

func (l *pionLoggers) NewLogger(scope string) logging.LeveledLogger {
	l.mu.Lock()
	defer l.mu.Unlock()
	lg, ok := l.m[scope]
	if !ok {
		if l.m == nil {
			l.m = make(map[string]logging.LeveledLogger)
		}
		lg = l.f.NewLogger(scope)
		l.m[scope] = lg
	}
	return lg
}

func isLoopbackName(name string) bool { return name == "lo" || name == "lo0" }

// listenTCP opens the ICE-TCP listener on port: on every address, or with
// loopbackOnly on 127.0.0.1 alone (New gathers no TCP6 candidates then).
func listenTCP(port int, noIPv6, loopbackOnly bool) (ice.TCPMux, error) {
	p := strconv.Itoa(port)
	if !loopbackOnly {
		network := "tcp"
		if noIPv6 {
			network = "tcp4"
		}
		ln, err := net.Listen(network, ":"+p)
		if err != nil {
			return nil, fmt.Errorf("listen on tcp port %d: %w", port, err)
		}
		return webrtc.NewICETCPMux(nil, ln, 8), nil
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:"+p)
	if err != nil {
		return nil, fmt.Errorf("listen on tcp port %d: %w", port, err)
	}
	return webrtc.NewICETCPMux(nil, ln, 8), nil
}

// Codec parameters the transport answers with. Each peer's MediaEngine
// holds only the video codec its offer chose (see Peer.setup) and Opus.
const (
	opusFmtp   = "minptime=10;useinbandfec=1"
	videoClock = 90000
	audioClock = 48000
)

// videoFeedback is what viewers may send about video: NACK, PLI and FIR,
// and REMB (goog-remb), the receiver's bandwidth estimate, shown in stats.
var videoFeedback = []webrtc.RTCPFeedback{
	{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}, {Type: "goog-remb"},
}

// Negotiate returns the rendition of a device stream that a viewer's
// offer can take: the original when the offer decodes info's codec and
// profile (info.ProfileLevelID, the SPS's), else the first of renditions
// the offer takes. It returns domain.ErrInvalidOffer (wrapped) for an offer
// that is malformed or has no video, and a *domain.NoCommonCodecError
// (errors.Is domain.ErrNoCommonCodec) naming the offered codecs and what
// the device sends when nothing fits.
func (t *Transport) Negotiate(offer string, info domain.StreamInfo, renditions []domain.Rendition) (domain.Rendition, error) {
	codecs, err := parseOffer(offer)
	if err != nil {
		return "", fmt.Errorf("negotiate: %w", err)
	}
	c, err := chooseVideo(codecs, streamCodec{codec: info.Video, plid: info.ProfileLevelID}, renditions)
	if err != nil {
		return "", fmt.Errorf("negotiate: %w", err)
	}
	return c.rendition, nil
}

// ICEServers returns a copy of the configured STUN/TURN servers.
func (t *Transport) ICEServers() []domain.ICEServer {
	t.iceMu.RLock()
	defer t.iceMu.RUnlock()
	out := make([]domain.ICEServer, len(t.ice))
	for i, s := range t.ice {
		out[i] = domain.ICEServer{URLs: slices.Clone(s.URLs), Username: s.Username, Credential: s.Credential, Secret: s.Secret}
	}
	return out
}

// SetICEServers replaces the STUN/TURN servers for the peers made from now
// on and for ICEServers (a configuration reload); peers already made keep
// theirs. A server with a Secret (TURN REST) reaches a peer only through
// PeerOptions.ICEServers, with the session's credentials.
func (t *Transport) SetICEServers(servers []domain.ICEServer) {
	ice := make([]domain.ICEServer, len(servers))
	for i, s := range servers {
		ice[i] = domain.ICEServer{URLs: slices.Clone(s.URLs), Username: s.Username, Credential: s.Credential, Secret: s.Secret}
	}
	web := pionServers(ice)
	t.iceMu.Lock()
	t.ice, t.servers = ice, web
	t.iceMu.Unlock()
}

// pionServers converts servers for pion, leaving out those whose
// credentials are still to be minted.
func pionServers(servers []domain.ICEServer) []webrtc.ICEServer {
	web := make([]webrtc.ICEServer, 0, len(servers))
	for _, s := range servers {
		if s.Secret != "" {
			continue
		}
		web = append(web, webrtc.ICEServer{URLs: slices.Clone(s.URLs), Username: s.Username, Credential: s.Credential})
	}
	return web
}

// iceServers returns the servers for a new peer: those of its options
// when set, else the transport's.
func (t *Transport) iceServers(opts ports.PeerOptions) []webrtc.ICEServer {
	if opts.ICEServers != nil {
		return pionServers(opts.ICEServers)
	}
	t.iceMu.RLock()
	defer t.iceMu.RUnlock()
	return t.servers
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
		if t.tcpMux != nil {
			err = errors.Join(err, t.tcpMux.Close())
		}
	})
	return err
}
