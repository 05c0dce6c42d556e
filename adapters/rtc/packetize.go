package rtc

import "mediasvc/domain"

// RTP payload structures of RFC 6184 §5.7 and §5.8, in the NAL header's
// type field (the H.264 NAL unit types themselves are domain's).
const (
	nalSTAPA = 24
	nalFUA   = 28
)

// maxAggregate bounds how many NAL units one STAP-A carries.
const maxAggregate = 16

// h264Packetizer turns one Annex-B access unit into RTP payloads (RFC 6184
// packetization-mode 1: single NAL units, STAP-A for runs of small NAL units
// such as SPS+PPS, FU-A for large ones) written straight into ring slots.
// It keeps fixed scratch space and never allocates. It is used by the
// capture pump only, with the ring's write lock held.
type h264Packetizer struct {
	mtu     int
	pending [maxAggregate][]byte
	np      int
	size    int // bytes the pending NAL units take in a STAP-A, header included
}

// pushAU packetizes au into r and returns how many packets it wrote. The first
// packet of a keyframe access unit is flagged keyStart; the last carries the
// marker bit. AUD and filler NAL units are dropped.
func (p *h264Packetizer) pushAU(r *ring, au []byte, ts uint32, keyframe bool) int {
	start := r.head
	p.np, p.size = 0, 1
	first := keyframe
	for rest := au; ; {
		var nal []byte
		nal, rest = domain.NextNAL(rest)
		if nal == nil {
			break
		}
		switch domain.NALType(nal) {
		case domain.NALTypeAUD, domain.NALTypeFill:
			continue
		}
		if p.np > 0 && (p.np == maxAggregate || p.size+2+len(nal) > p.mtu) {
			first = p.flush(r, ts, first)
		}
		if 1+2+len(nal) <= p.mtu {
			p.pending[p.np] = nal
			p.np++
			p.size += 2 + len(nal)
			continue
		}
		first = p.flush(r, ts, first)
		first = p.fragment(r, nal, ts, first)
	}
	p.flush(r, ts, first)
	n := int(r.head - start)
	if n > 0 {
		r.slots[(r.head-1)&r.mask].marker = true
	}
	for i := range p.pending {
		p.pending[i] = nil
	}
	return n
}

// flush writes the pending NAL units as a single NAL unit packet or a STAP-A.
func (p *h264Packetizer) flush(r *ring, ts uint32, first bool) bool {
	switch p.np {
	case 0:
		return first
	case 1:
		s := r.claim(domain.KindVideo, ts, first)
		s.data = append(s.data, p.pending[0]...)
	default:
		s := r.claim(domain.KindVideo, ts, first)
		var f, nri byte
		for _, nal := range p.pending[:p.np] {
			f |= nal[0] & 0x80
			if nal[0]&0x60 > nri {
				nri = nal[0] & 0x60
			}
		}
		s.data = append(s.data, f|nri|nalSTAPA)
		for _, nal := range p.pending[:p.np] {
			s.data = append(s.data, byte(len(nal)>>8), byte(len(nal)))
			s.data = append(s.data, nal...)
		}
	}
	p.np, p.size = 0, 1
	return false
}

// fragment writes nal as FU-A fragments.
func (p *h264Packetizer) fragment(r *ring, nal []byte, ts uint32, first bool) bool {
	indicator := nal[0]&0xe0 | nalFUA
	typ := domain.NALType(nal)
	body := nal[1:]
	max := p.mtu - 2
	for i := 0; len(body) > 0; i++ {
		n := min(max, len(body))
		hdr := typ
		if i == 0 {
			hdr |= 0x80
		}
		if n == len(body) {
			hdr |= 0x40
		}
		s := r.claim(domain.KindVideo, ts, first)
		first = false
		s.data = append(s.data, indicator, hdr)
		s.data = append(s.data, body[:n]...)
		body = body[n:]
	}
	return first
}
