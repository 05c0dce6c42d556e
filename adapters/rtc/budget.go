package rtc

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/transport/v5/packetio"

	"mediasvc/ports"
)

// Defaults of ViewerBudget, applied by New to zero fields.
const (
	// DefaultRetransmitRate is how many packets a viewer's NACKs may have
	// retransmitted per second (and at once): about twice what 20 % loss
	// of a 2.5 Mbit/s stream needs. One NACK packet can name ~1,000.
	DefaultRetransmitRate = 400
	// DefaultRetransmitBytes is the same budget in payload bytes per
	// second, 4 Mbit/s.
	DefaultRetransmitBytes = 512 * 1024
	// DefaultRTCPRate is how many RTCP packets per second (and at once) a
	// viewer may send before the rest are dropped unread; a browser sends
	// a few per second, more under loss.
	DefaultRTCPRate = 200
	// DefaultViewerKeyframeInterval is the least time between two keyframe
	// requests (PLI/FIR) one viewer passes to the source.
	DefaultViewerKeyframeInterval = time.Second
)

// ViewerBudget is what one viewer's RTCP may cost the service. Each rate is
// a token bucket whose burst is one second's worth; what is over it is
// dropped and counted (media_rtcp_dropped_total{reason="rate"},
// media_retransmits_dropped_total, media_keyframe_requests_total{from=
// "viewer",result="throttled"}) and in the viewer's stats.
type ViewerBudget struct {
	// RetransmitRate bounds retransmitted packets per second.
	RetransmitRate int
	// RetransmitBytes bounds retransmitted payload bytes per second.
	RetransmitBytes int
	// RTCPRate bounds the RTCP packets per second that are read at all
	// (each packet of a compound counts).
	RTCPRate int
	// KeyframeInterval is the least time between two PLI/FIR of this
	// viewer that reach the source; the ones between are dropped (the
	// fanout coalesces what it passes on across viewers too).
	KeyframeInterval time.Duration
}

// withDefaults fills zero fields and refuses negative ones.
func (b ViewerBudget) withDefaults() (ViewerBudget, error) {
	if b.RetransmitRate < 0 || b.RetransmitBytes < 0 || b.RTCPRate < 0 || b.KeyframeInterval < 0 {
		return b, fmt.Errorf("rtc config: negative viewer budget %+v", b)
	}
	if b.RetransmitRate == 0 {
		b.RetransmitRate = DefaultRetransmitRate
	}
	if b.RetransmitBytes == 0 {
		b.RetransmitBytes = DefaultRetransmitBytes
	}
	if b.RTCPRate == 0 {
		b.RTCPRate = DefaultRTCPRate
	}
	if b.KeyframeInterval == 0 {
		b.KeyframeInterval = DefaultViewerKeyframeInterval
	}
	return b, nil
}

// bucket is a token bucket of rate tokens per second holding at most
// burst; it starts full. Not safe for concurrent use.
type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newBucket(rate int) bucket {
	return bucket{rate: float64(rate), burst: float64(rate), tokens: float64(rate)}
}

func (b *bucket) refill(now time.Time) {
	if !b.last.IsZero() {
		if dt := now.Sub(b.last).Seconds(); dt > 0 {
			b.tokens = min(b.burst, b.tokens+dt*b.rate)
		}
	}
	b.last = now
}

// viewerBudget holds one viewer's buckets. Its RTCP readers (one per
// track) share it, so it has a lock; it is taken per RTCP packet and per
// retransmission, never across I/O.
type viewerBudget struct {
	mu       sync.Mutex
	rtcp     bucket
	rtxPkts  bucket
	rtxBytes bucket
	keyEvery time.Duration
	lastKey  time.Time
}

func newViewerBudget(b ViewerBudget) *viewerBudget {
	return &viewerBudget{
		rtcp: newBucket(b.RTCPRate), rtxPkts: newBucket(b.RetransmitRate), rtxBytes: newBucket(b.RetransmitBytes),
		keyEvery: b.KeyframeInterval,
	}
}

// allowRTCP takes one RTCP packet's token.
func (v *viewerBudget) allowRTCP(now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.rtcp.refill(now)
	if v.rtcp.tokens < 1 {
		return false
	}
	v.rtcp.tokens--
	return true
}

// allowRetransmit takes the tokens of one retransmitted packet of n bytes:
// both or neither.
func (v *viewerBudget) allowRetransmit(now time.Time, n int) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.rtxPkts.refill(now)
	v.rtxBytes.refill(now)
	if v.rtxPkts.tokens < 1 || v.rtxBytes.tokens < float64(n) {
		return false
	}
	v.rtxPkts.tokens--
	v.rtxBytes.tokens -= float64(n)
	return true
}

// retransmitSpent reports whether not even one more packet may be
// retransmitted now, so the rest of a NACK need not be looked up.
func (v *viewerBudget) retransmitSpent(now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.rtxPkts.refill(now)
	return v.rtxPkts.tokens < 1
}

// allowKeyframe reports whether the viewer's last keyframe request that
// was let through is at least the interval old, and if so takes its place.
func (v *viewerBudget) allowKeyframe(now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.lastKey.IsZero() && now.Sub(v.lastKey) < v.keyEvery {
		return false
	}
	v.lastKey = now
	return true
}

// Unknown SSRCs. pion's SRTCP session makes a read stream (and a 100 KB
// buffer) for every SSRC an RTCP packet is addressed to, and keeps the ones
// no sender reads until the connection closes: a viewer naming a new
// random SSRC in each packet would grow the service's memory without
// bound. Each peer therefore builds its SRTCP buffers itself
// (SettingEngine.BufferFactory): its own senders' SSRCs get a real buffer,
// any other SSRC a shared buffer that counts and discards what is written
// to it (media_rtcp_dropped_total{reason="unknown_ssrc"}); and a viewer
// that has named maxUnknownSSRCs of them is taken for hostile and its
// connection failed.
const maxUnknownSSRCs = 16

// Buffer sizes pion's SRTP session uses by default.
const (
	srtpBufferSize  = 1000 * 1000
	srtcpBufferSize = 100 * 1000
)

// pionBuffer adapts a packetio.Buffer to the io.ReadWriteCloser a
// BufferFactory returns, with the attribute-carrying methods srtp uses
// when present (as srtp's own buffers do).
type pionBuffer struct{ *packetio.Buffer }

func newPionBuffer(limit int) pionBuffer {
	b := packetio.NewBuffer()
	b.SetLimitSize(limit)
	return pionBuffer{b}
}

func (b pionBuffer) Read(p []byte) (int, error) {
	n, _, err := b.Buffer.Read(p, nil)
	return n, err
}

func (b pionBuffer) Write(p []byte) (int, error) { return b.Buffer.Write(p, nil) }

func (b pionBuffer) ReadWithAttributes(p []byte, attrs packetio.Attributes) (int, packetio.Attributes, error) {
	return b.Buffer.Read(p, attrs)
}

func (b pionBuffer) WriteWithAttributes(p []byte, attrs packetio.Attributes) (int, error) {
	return b.Buffer.Write(p, attrs)
}

// discardBuffer is the SRTCP buffer of an SSRC the peer does not send:
// every write is dropped, and counted unless it is a source description
// or a goodbye (a browser's SDES names its own receiver SSRC: routine,
// not hostile); nothing ever reads it.
type discardBuffer struct{ p *Peer }

func (d discardBuffer) Write(b []byte) (int, error) {
	if len(b) > 1 && (b[1] == byte(rtcp.TypeSourceDescription) || b[1] == byte(rtcp.TypeGoodbye)) {
		return len(b), nil
	}
	d.p.rtcpDropped.Add(1)
	d.p.t.m.rtcpDropped.Add(context.Background(), 1, rtcpDropUnknownSSRC)
	return len(b), nil
}

func (d discardBuffer) Read([]byte) (int, error) { return 0, io.EOF }
func (d discardBuffer) Close() error             { return nil }

// rtcpSink is the SRTCP buffer of one of a viewer's own senders: pion's
// SRTCP read loop writes each decrypted packet addressed to it, and Write
// handles it at once (Peer.onRTCP) instead of queueing it for an RTCP
// reader goroutine: no goroutine, read buffer or queue per sender. It
// never returns an error, so pion's loop goes on; nothing reads it.
type rtcpSink struct {
	p         *Peer
	tr        *sendTrack
	kind      int
	closeOnce sync.Once
	closed    chan struct{}
}

func (s *rtcpSink) Write(b []byte) (int, error) {
	s.p.onRTCP(b, s.tr, s.kind)
	return len(b), nil
}

// Read blocks until Close: the packets were handled by Write.
func (s *rtcpSink) Read([]byte) (int, error) {
	<-s.closed
	return 0, io.EOF
}

func (s *rtcpSink) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}

// bufferFactory is the peer's SettingEngine.BufferFactory.
func (p *Peer) bufferFactory(kind packetio.BufferPacketType, ssrc uint32) io.ReadWriteCloser {
	if kind != packetio.RTCPBufferPacket {
		return newPionBuffer(srtpBufferSize)
	}
	for i := range p.ownSSRC {
		if s := p.ownSSRC[i].Load(); s != 0 && s == uint64(ssrc)+1 {
			tr := p.video
			if i == 1 {
				tr = p.audio
			}
			return &rtcpSink{p: p, tr: tr, kind: i, closed: make(chan struct{})}
		}
	}
	if p.unknownSSRCs.Add(1) == maxUnknownSSRCs {
		p.abort("rtcp for too many unknown ssrcs")
	}
	return discardBuffer{p}
}

// abort fails the peer's connection from a goroutine of the peer's own
// (its caller may hold pion's locks): OnState reports PeerFailed, then the
// PeerConnection closes. Close waits for it.
func (p *Peer) abort(why string) {
	p.runMu.Lock()
	defer p.runMu.Unlock()
	if p.closed.Load() || p.aborted {
		return
	}
	p.aborted = true
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.log.Warn("viewer connection failed: hostile rtcp", "why", why)
		p.stateMu.Lock()
		if p.lastState != ports.PeerFailed && p.lastState != ports.PeerClosed {
			p.lastState = ports.PeerFailed
			if p.opts.OnState != nil {
				p.opts.OnState(ports.PeerFailed)
			}
		}
		p.stateMu.Unlock()
		if pc := p.pc.Load(); pc != nil {
			_ = pc.Close()
		}
	}()
}
