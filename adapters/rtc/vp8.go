package rtc

import "mediasvc/domain"

// vp8DescriptorLen is the size of the VP8 payload descriptor the packetizer
// writes (RFC 7741 §4.2): X=1 with I=1 and a 15-bit PictureID (M=1).
const vp8DescriptorLen = 4

// vp8Packetizer turns one VP8 frame into RTP payloads (RFC 7741) written
// straight into ring slots: each packet starts with a payload descriptor
// carrying the frame's PictureID, the first one with S=1 (start of
// partition 0), and holds up to mtu bytes. It never allocates. It is used
// by the capture pump only, with the ring's write lock held.
type vp8Packetizer struct {
	mtu       int
	pictureID uint16 // 15 bits, incremented per frame
}

// push packetizes frame into r and returns how many packets it wrote. The
// first packet of a keyframe is flagged keyStart; the last carries the
// marker bit.
func (p *vp8Packetizer) push(r *ring, frame []byte, ts uint32, keyframe bool) int {
	if len(frame) == 0 {
		return 0
	}
	pid := p.pictureID & 0x7fff
	p.pictureID = (pid + 1) & 0x7fff
	max := p.mtu - vp8DescriptorLen
	n := 0
	for first := true; len(frame) > 0; first = false {
		k := min(max, len(frame))
		s := r.claim(domain.KindVideo, ts, first && keyframe)
		b0 := byte(0x80) // X
		if first {
			b0 |= 0x10 // S, partition index 0
		}
		s.data = append(s.data, b0, 0x80, 0x80|byte(pid>>8), byte(pid))
		s.data = append(s.data, frame[:k]...)
		frame = frame[k:]
		n++
	}
	r.slots[(r.head-1)&r.mask].marker = true
	return n
}

// vp8Keyframe reports whether frame is a VP8 key frame: bit 0 of its frame
// tag is 0 (RFC 6386 §9.1) and the start code follows.
func vp8Keyframe(frame []byte) bool {
	return len(frame) >= 6 && frame[0]&1 == 0 && frame[3] == 0x9d && frame[4] == 0x01 && frame[5] == 0x2a
}
