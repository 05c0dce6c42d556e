package client

// H.264 NAL unit types the client cares about (ITU-T H.264 table 7-1) and
// the RTP payload types of RFC 6184.
const (
	nalSlice = 1
	nalIDR   = 5
	nalSEI   = 6
	nalSPS   = 7
	nalPPS   = 8
	nalAUD   = 9
	nalSTAPA = 24
	nalFUA   = 28
)

// SplitAnnexB returns the NAL units of an Annex-B byte stream, without their
// start codes. The returned slices alias b.
func SplitAnnexB(b []byte) [][]byte {
	var nals [][]byte
	start := -1
	i := 0
	for i+3 <= len(b) {
		// A start code is 00 00 01 (a 4-byte 00 00 00 01 ends in one).
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				end := i
				// Drop the leading zero of a 4-byte start code.
				for end > start && b[end-1] == 0 {
					end--
				}
				if end > start {
					nals = append(nals, b[start:end])
				}
			}
			i += 3
			start = i
			continue
		}
		i++
	}
	if start >= 0 && start < len(b) {
		nals = append(nals, b[start:])
	} else if start < 0 && len(b) > 0 {
		nals = append(nals, b)
	}
	return nals
}

// NALTypes returns the nal_unit_type of each NAL unit.
func NALTypes(nals [][]byte) []int {
	t := make([]int, 0, len(nals))
	for _, n := range nals {
		if len(n) > 0 {
			t = append(t, int(n[0]&0x1f))
		}
	}
	return t
}

// isKeyframeStart reports whether an RTP payload starts a keyframe: an SPS,
// a STAP-A holding an SPS or IDR, an IDR slice, or the first FU-A fragment of
// an IDR slice.
func isKeyframeStart(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch p[0] & 0x1f {
	case nalSPS, nalIDR:
		return true
	case nalSTAPA:
		off := 1
		for off+2 < len(p) {
			n := int(p[off])<<8 | int(p[off+1])
			off += 2
			if off >= len(p) || n == 0 {
				return false
			}
			if t := p[off] & 0x1f; t == nalSPS || t == nalIDR {
				return true
			}
			off += n
		}
	case nalFUA:
		return len(p) >= 2 && p[1]&0x80 != 0 && p[1]&0x1f == nalIDR
	}
	return false
}
