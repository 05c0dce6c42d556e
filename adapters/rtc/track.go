package rtc

import (
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// histSize is how many recently sent packets per track a NACK can name.
const histSize = 1024

// rtpWriter is what a bound track writes through: pion's TrackLocalWriter,
// or a discard writer in benchmarks.
type rtpWriter interface {
	WriteRTP(header *rtp.Header, payload []byte) (int, error)
}

// binding is a track's negotiated send parameters.
type binding struct {
	id   string
	ssrc uint32
	pt   uint8
	w    rtpWriter
}

// sendTrack is one viewer's outgoing track (a webrtc.TrackLocal). It
// rewrites the shared ring's packets with the viewer's SSRC, its own
// contiguous sequence numbers and a random timestamp offset, and remembers
// which ring packet each sequence number carried so NACKs can be answered
// from the ring.
type sendTrack struct {
	id, streamID string
	kind         webrtc.RTPCodecType
	mime         string
	clock        int64

	bound atomic.Pointer[binding]

	// Sender goroutine only.
	hdr rtp.Header
	seq uint16

	// tsOff is fixed before the first packet is sent; read by the RTCP
	// goroutine after started is set.
	tsOff   atomic.Uint32
	started atomic.Bool

	// hist[seq%histSize] = seq<<48 | (ring index + 1); video only: audio
	// is not negotiated with NACK, so an audio track keeps no history.
	hist []atomic.Uint64

	packets atomic.Uint64
	octets  atomic.Uint64
	frames  atomic.Uint64

	// RTCP goroutine only: retransmission scratch.
	rtxMu  sync.Mutex
	rtxHdr rtp.Header
	rtxBuf []byte
}

func newSendTrack(kind webrtc.RTPCodecType, mime string, clock int64, streamID string) *sendTrack {
	t := &sendTrack{
		id:       strings.ToLower(kind.String()),
		streamID: streamID,
		kind:     kind,
		mime:     mime,
		clock:    clock,
		seq:      uint16(rand.Uint32()),
	}
	if kind == webrtc.RTPCodecTypeVideo {
		t.hist = make([]atomic.Uint64, histSize)
		t.rtxBuf = make([]byte, slotCap)
	}
	t.hdr.Version = 2
	t.rtxHdr.Version = 2
	return t
}

var _ webrtc.TrackLocal = (*sendTrack)(nil)

// Bind picks our codec among the negotiated ones and keeps the writer.
func (t *sendTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, c := range ctx.CodecParameters() {
		if !strings.EqualFold(c.MimeType, t.mime) {
			continue
		}
		if strings.EqualFold(t.mime, webrtc.MimeTypeH264) && !strings.Contains(c.SDPFmtpLine, "packetization-mode=1") {
			continue
		}
		t.bound.Store(&binding{id: ctx.ID(), ssrc: uint32(ctx.SSRC()), pt: uint8(c.PayloadType), w: ctx.WriteStream()})
		return c, nil
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

// Unbind forgets the writer bound under ctx.
func (t *sendTrack) Unbind(ctx webrtc.TrackLocalContext) error {
	if b := t.bound.Load(); b != nil && b.id == ctx.ID() {
		t.bound.CompareAndSwap(b, nil)
	}
	return nil
}

// ID is the track id ("video" or "audio").
func (t *sendTrack) ID() string { return t.id }

// RID is empty: no simulcast.
func (t *sendTrack) RID() string { return "" }

// StreamID is the media stream the track belongs to.
func (t *sendTrack) StreamID() string { return t.streamID }

// Kind is audio or video.
func (t *sendTrack) Kind() webrtc.RTPCodecType { return t.kind }

// send rewrites one ring packet for this viewer and writes it. It is called
// by the viewer's sender goroutine only and does not allocate.
func (t *sendTrack) send(m *pktMeta, payload []byte) error {
	b := t.bound.Load()
	if b == nil {
		return nil
	}
	if !t.started.Load() {
		t.tsOff.Store(rand.Uint32() - m.ts)
		t.started.Store(true)
	}
	seq := t.seq
	t.seq++
	if t.hist != nil {
		t.hist[seq%histSize].Store(uint64(seq)<<48 | (m.idx+1)&(1<<48-1))
	}
	h := &t.hdr
	h.PayloadType = b.pt
	h.SSRC = b.ssrc
	h.SequenceNumber = seq
	h.Timestamp = m.ts + t.tsOff.Load()
	h.Marker = m.marker
	t.packets.Add(1)
	t.octets.Add(uint64(len(payload)))
	if m.marker && t.kind == webrtc.RTPCodecTypeVideo {
		t.frames.Add(1)
	}
	_, err := b.w.WriteRTP(h, payload)
	return err
}

// Outcomes of a retransmission.
const (
	rtxMissing = iota // the ring no longer holds it (or never sent it)
	rtxSent
	rtxOverBudget // the viewer's retransmission budget is spent
)

// retransmit re-sends the packet that carried seq if the ring still holds
// it and budget allows its size, with the same sequence number and
// timestamp. It reports rtxSent, rtxMissing or rtxOverBudget.
func (t *sendTrack) retransmit(r *ring, seq uint16, budget *viewerBudget, now time.Time) int {
	b := t.bound.Load()
	if b == nil || !t.started.Load() || t.hist == nil {
		return rtxMissing
	}
	e := t.hist[seq%histSize].Load()
	if e == 0 || uint16(e>>48) != seq {
		return rtxMissing
	}
	idx := e&(1<<48-1) - 1
	t.rtxMu.Lock()
	defer t.rtxMu.Unlock()
	m, ok := r.readAt(idx, t.rtxBuf)
	if !ok {
		return rtxMissing
	}
	if !budget.allowRetransmit(now, m.n) {
		return rtxOverBudget
	}
	h := &t.rtxHdr
	h.PayloadType = b.pt
	h.SSRC = b.ssrc
	h.SequenceNumber = seq
	h.Timestamp = m.ts + t.tsOff.Load()
	h.Marker = m.marker
	if _, err := b.w.WriteRTP(h, t.rtxBuf[:m.n]); err != nil {
		return rtxMissing
	}
	return rtxSent
}
