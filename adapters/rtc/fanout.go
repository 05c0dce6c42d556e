package rtc

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
)

// Fanout is one device stream packetized once into a shared ring and read by
// every viewer peer of that device.
type Fanout struct {
	t      *Transport
	device domain.DeviceID
	info   domain.StreamInfo
	log    *slog.Logger

	ring *ring
	pkt  h264Packetizer
	vp8  vp8Packetizer

	// sps holds the profile-level-id bytes of the latest SPS seen (0 =
	// none yet): answers declare the profile the stream has now, which
	// changes when a capture restarts with another SPS.
	sps atomic.Uint32

	keyReq      chan struct{}
	lastKeyReq  atomic.Int64 // unix nanos of the last delivered request
	keyInterval time.Duration

	// epoch is the wall-clock time of PTS 0 in unix nanos (0 = unset); it
	// maps "now" to a source RTP timestamp for sender reports.
	epoch atomic.Int64

	pool *sendPool // drains the viewers (sendpool.go)

	mu      sync.Mutex // serializes attach/detach
	viewers atomic.Pointer[[]*Peer]
	closed  atomic.Bool
}

var _ ports.Fanout = (*Fanout)(nil)

// NewFanout prepares the shared packetizer and ring for one device stream.
// It returns an error when info names a codec the transport cannot send
// (video other than H.264, audio other than Opus). The caller must Close
// the Fanout.
func (t *Transport) NewFanout(device domain.DeviceID, info domain.StreamInfo) (ports.Fanout, error) {
	return t.newFanout(device, info)
}

func (t *Transport) newFanout(device domain.DeviceID, info domain.StreamInfo) (*Fanout, error) {
	if t.closed.Load() {
		return nil, fmt.Errorf("new fanout for %s: %w", device, ErrClosed)
	}
	if info.Video != domain.CodecH264 && info.Video != domain.CodecVP8 {
		return nil, fmt.Errorf("new fanout for %s: unsupported video codec %q", device, info.Video)
	}
	if info.Audio != domain.CodecNone && info.Audio != domain.CodecOpus {
		return nil, fmt.Errorf("new fanout for %s: unsupported audio codec %q", device, info.Audio)
	}
	f := &Fanout{
		t:           t,
		device:      device,
		info:        info,
		log:         t.log.With("device_id", string(device)),
		ring:        newRing(ringLimits{history: t.cfg.RingHistory, maxBytes: t.cfg.RingMaxBytes}),
		pkt:         h264Packetizer{mtu: t.cfg.MTU},
		vp8:         vp8Packetizer{mtu: t.cfg.MTU},
		keyReq:      make(chan struct{}, 1),
		keyInterval: t.cfg.KeyframeInterval,
		pool:        newSendPool(t.batch),
	}
	f.pool.tick = f.tick
	if pl, err := domain.ParseProfileLevelID(info.ProfileLevelID); err == nil && info.Video == domain.CodecH264 {
		b, _ := hex.DecodeString(pl.ID)
		f.sps.Store(uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]))
	}
	empty := []*Peer{}
	f.viewers.Store(&empty)
	return f, nil
}

// stream is what the fanout sends now: its codec and, for H.264, the
// profile-level-id of the latest SPS (the StreamInfo's until one is seen).
func (f *Fanout) stream() streamCodec {
	s := streamCodec{codec: f.info.Video}
	if v := f.sps.Load(); v != 0 && s.codec == domain.CodecH264 {
		s.plid = fmt.Sprintf("%06x", v)
	}
	return s
}

// ProfileLevelID returns the profile-level-id of the latest SPS the stream
// carried, "" for a stream other than H.264 or before any SPS.
func (f *Fanout) ProfileLevelID() string { return f.stream().plid }

// scanH264 reports whether the access unit holds an IDR slice and records
// the profile of an SPS it carries. It does not allocate.
func (f *Fanout) scanH264(au []byte) bool {
	idr := false
	for rest := au; ; {
		var nal []byte
		nal, rest = domain.NextNAL(rest)
		if nal == nil {
			return idr
		}
		switch domain.NALType(nal) {
		case domain.NALTypeIDR:
			idr = true
		case domain.NALTypeSPS:
			if len(nal) >= 4 {
				v := uint32(nal[1])<<16 | uint32(nal[2])<<8 | uint32(nal[3])
				if old := f.sps.Swap(v); old != v && old != 0 {
					f.log.Info("stream profile changed", "from", fmt.Sprintf("%06x", old), "to", fmt.Sprintf("%06x", v))
				}
			}
		}
	}
}

// WriteFrame packetizes fr into the shared ring and wakes the viewers. Video
// must be one H.264 access unit in Annex-B form; audio one Opus packet
// (dropped when the stream has no audio). It returns ErrClosed after Close
// and an error for an Opus packet larger than a ring slot. It is called from
// one goroutine only and does not allocate.
func (f *Fanout) WriteFrame(fr domain.Frame) error {
	if f.closed.Load() {
		return fmt.Errorf("write frame to %s: %w", f.device, ErrClosed)
	}
	if len(fr.Data) == 0 {
		return nil
	}
	at := fr.Ingest
	if at.IsZero() {
		at = time.Now()
	}
	if f.epoch.Load() == 0 {
		f.epoch.Store(at.Add(-fr.PTS).UnixNano())
	}
	r := f.ring
	switch fr.Kind {
	case domain.KindVideo:
		var key bool
		if f.info.Video == domain.CodecVP8 {
			key = fr.Keyframe || vp8Keyframe(fr.Data)
		} else {
			key = f.scanH264(fr.Data) || fr.Keyframe
		}
		ts := rtpTime(fr.PTS, videoClock)
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return fmt.Errorf("write frame to %s: %w", f.device, ErrClosed)
		}
		r.setNow(at)
		if f.info.Video == domain.CodecVP8 {
			f.vp8.push(r, fr.Data, ts, key)
		} else {
			f.pkt.pushAU(r, fr.Data, ts, key)
		}
		r.commit()
		r.mu.Unlock()
	case domain.KindAudio:
		if f.info.Audio == domain.CodecNone {
			return nil
		}
		if len(fr.Data) > slotCap {
			return fmt.Errorf("write frame to %s: opus packet of %d bytes exceeds %d", f.device, len(fr.Data), slotCap)
		}
		ts := rtpTime(fr.PTS, audioClock)
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return fmt.Errorf("write frame to %s: %w", f.device, ErrClosed)
		}
		r.setNow(at)
		s := r.claim(domain.KindAudio, ts, false)
		s.data = append(s.data, fr.Data...)
		s.marker = true
		r.commit()
		r.mu.Unlock()
	default:
		return fmt.Errorf("write frame to %s: unknown media kind %d", f.device, fr.Kind)
	}
	f.wakeAll()
	return nil
}

// wakeAll has every viewer send what the ring has for it: those in steady
// state through the send workers, a chunk of viewers per worker woken
// (sendpool.go). With batched sockets each worker holds the batch until its
// chunk is written, so the frame's packets for every viewer queue up and
// leave together when the last worker is done (see batch.go).
func (f *Fanout) wakeAll() {
	f.pool.dispatch(*f.viewers.Load())
}

// rtpTime converts a presentation time to an RTP timestamp at clock Hz,
// without overflow for any PTS.
func rtpTime(pts time.Duration, clock int64) uint32 {
	sec := int64(pts / time.Second)
	frac := int64(pts % time.Second)
	return uint32(sec*clock + frac*clock/int64(time.Second))
}

// rtpNow is the source RTP timestamp at wall-clock time now.
func (f *Fanout) rtpNow(now time.Time, clock int64) (uint32, bool) {
	e := f.epoch.Load()
	if e == 0 {
		return 0, false
	}
	return rtpTime(time.Duration(now.UnixNano()-e), clock), true
}

// KeyframeRequests delivers one signal per burst of keyframe requests
// (viewers' PLI/FIR, late joiners with no keyframe in the ring): a channel
// of capacity 1 fed by non-blocking sends, at most one per
// Config.KeyframeInterval. It is never closed.
func (f *Fanout) KeyframeRequests() <-chan struct{} { return f.keyReq }

// requestKeyframeFrom is requestKeyframe, counted by origin and result.
func (f *Fanout) requestKeyframeFrom(from int) bool {
	ok := f.requestKeyframe()
	res := 0
	if ok {
		res = 1
	}
	f.t.m.keyframeReqs.Add(context.Background(), 1, keyframeAttrs[from][res])
	return ok
}

// requestKeyframe asks the source for a keyframe, coalesced. It never blocks.
func (f *Fanout) requestKeyframe() bool {
	now := time.Now().UnixNano()
	last := f.lastKeyReq.Load()
	if last != 0 && now-last < int64(f.keyInterval) {
		return false
	}
	if !f.lastKeyReq.CompareAndSwap(last, now) {
		return false
	}
	select {
	case f.keyReq <- struct{}{}:
		return true
	default:
		return false
	}
}

// RequestKeyframe asks the source for a keyframe on a client's explicit
// request, coalesced with the viewers' PLI/FIR. It never blocks.
func (f *Fanout) RequestKeyframe() { f.requestKeyframeFrom(fromClient) }

// Viewers returns the number of peers attached.
func (f *Fanout) Viewers() int { return len(*f.viewers.Load()) }

// Stats aggregates the attached viewers' quality for the bitrate policy:
// the worst loss fraction and jitter, the highest RTT, the lowest frame rate
// and the lowest bandwidth estimate reported; counters and bitrate are
// summed.
func (f *Fanout) Stats() domain.QualityStats {
	var agg domain.QualityStats
	agg.At = time.Now()
	first := true
	for _, p := range *f.viewers.Load() {
		s := p.Stats()
		agg.PacketsSent += s.PacketsSent
		agg.BytesSent += s.BytesSent
		agg.FramesSent += s.FramesSent
		agg.AudioPackets += s.AudioPackets
		agg.BitrateBps += s.BitrateBps
		agg.PacketsLost += s.PacketsLost
		agg.NACKs += s.NACKs
		agg.PLIs += s.PLIs
		agg.Retransmits += s.Retransmits
		agg.KeyframeSkips += s.KeyframeSkips
		agg.LossFraction = max(agg.LossFraction, s.LossFraction)
		agg.JitterMs = max(agg.JitterMs, s.JitterMs)
		agg.RTTMs = max(agg.RTTMs, s.RTTMs)
		if s.EstimatedBps > 0 && (agg.EstimatedBps == 0 || s.EstimatedBps < agg.EstimatedBps) {
			agg.EstimatedBps = s.EstimatedBps
		}
		if first || s.FrameRate < agg.FrameRate {
			agg.FrameRate = s.FrameRate
		}
		first = false
	}
	return agg
}

func (f *Fanout) attach(p *Peer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed.Load() {
		return fmt.Errorf("attach to %s: %w", f.device, ErrClosed)
	}
	cur := *f.viewers.Load()
	next := append(slices.Clip(cur), p)
	f.viewers.Store(&next)
	f.pool.start()
	return nil
}

func (f *Fanout) detach(p *Peer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := *f.viewers.Load()
	i := slices.Index(cur, p)
	if i < 0 {
		return
	}
	next := slices.Delete(slices.Clone(cur), i, i+1)
	f.viewers.Store(&next)
}

// tick sends every viewer's sender reports (Peer.tick); the send pool's
// ticker calls it once a second.
func (f *Fanout) tick(now time.Time) {
	for _, p := range *f.viewers.Load() {
		p.tick(now)
	}
}

// Close detaches every peer from the stream (their senders stop; the peers
// stay open until closed) and frees the ring. Safe to call more than once.
func (f *Fanout) Close() error {
	f.mu.Lock()
	if f.closed.Swap(true) {
		f.mu.Unlock()
		return nil
	}
	f.ring.close()
	empty := []*Peer{}
	f.viewers.Store(&empty)
	f.mu.Unlock()
	// The workers serve what is queued (the ring is closed: each viewer
	// goes back to a sender goroutine of its own, which ends at its first
	// read, as a running sender does) and end, and so does the ticker.
	f.pool.stop()
	return nil
}
