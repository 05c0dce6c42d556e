package domain

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// H.264 NAL unit types (ITU-T H.264 Table 7-1) that mediasvc looks at.
const (
	NALTypeSlice uint8 = 1  // coded slice of a non-IDR picture
	NALTypeIDR   uint8 = 5  // coded slice of an IDR picture
	NALTypeSEI   uint8 = 6  // supplemental enhancement information
	NALTypeSPS   uint8 = 7  // sequence parameter set
	NALTypePPS   uint8 = 8  // picture parameter set
	NALTypeAUD   uint8 = 9  // access unit delimiter
	NALTypeFill  uint8 = 12 // filler data
)

// AnnexBStartCode is the 4-byte start code put in front of each NAL unit of
// an access unit in Annex-B form.
var AnnexBStartCode = []byte{0, 0, 0, 1}

var startCode3 = []byte{0, 0, 1}

// NextNAL returns the first non-empty NAL unit of the Annex-B stream b,
// without its start code and without the zero bytes that precede the next
// start code, and rest, the part of b after that NAL unit (to pass to the
// next call). Bytes before the first start code are skipped. nal is nil when
// b holds no further NAL unit. It never allocates: nal and rest alias b.
func NextNAL(b []byte) (nal, rest []byte) {
	for {
		i := bytes.Index(b, startCode3)
		if i < 0 {
			return nil, nil
		}
		b = b[i+3:]
		end := bytes.Index(b, startCode3)
		if end < 0 {
			nal, rest = b, nil
		} else {
			nal, rest = b[:end], b[end:]
		}
		for len(nal) > 0 && nal[len(nal)-1] == 0 {
			nal = nal[:len(nal)-1]
		}
		if len(nal) > 0 {
			return nal, rest
		}
		if rest == nil {
			return nil, nil
		}
		b = rest
	}
}

// SplitAnnexB returns the NAL units of the Annex-B stream b, without start
// codes (3- or 4-byte) and trailing zero bytes, in order. Bytes before the
// first start code and empty NAL units are dropped; a b without any start
// code yields nil. The units alias b. It never panics, whatever b holds.
func SplitAnnexB(b []byte) [][]byte {
	var out [][]byte
	for {
		var nal []byte
		nal, b = NextNAL(b)
		if nal == nil {
			return out
		}
		out = append(out, nal)
	}
}

// NALType returns the nal_unit_type of a NAL unit given without its start
// code, or 0 (unspecified) for an empty one.
func NALType(nal []byte) uint8 {
	if len(nal) == 0 {
		return 0
	}
	return nal[0] & 0x1f
}

// IsIDR reports whether nal (without start code) is a slice of an IDR
// picture.
func IsIDR(nal []byte) bool { return NALType(nal) == NALTypeIDR }

// IsKeyframe reports whether the Annex-B access unit au contains an IDR
// slice.
func IsKeyframe(au []byte) bool {
	for {
		var nal []byte
		nal, au = NextNAL(au)
		if nal == nil {
			return false
		}
		if IsIDR(nal) {
			return true
		}
	}
}

// ProfileLevelID returns the profile-level-id that the SPS NAL unit sps
// (without start code) declares, as six lower-case hex digits of
// profile_idc, the constraint flags and level_idc (RFC 6184 §8.1), such as
// "42e01f". It returns "" when sps is not an SPS or is too short.
func ProfileLevelID(sps []byte) string {
	if len(sps) < 4 || NALType(sps) != NALTypeSPS {
		return ""
	}
	return hex.EncodeToString(sps[1:4])
}

// SEITimestampUUID is the uuid_iso_iec_11578 of the user-data-unregistered
// SEI message (payload type 5) with which mediasvc stamps a video access
// unit with the wall-clock time it entered the service. It is the version 4
// UUID 6d656469-6173-4776-8374-696d65737461, which reads "medias", "v" and
// "timesta" in ASCII around its version (0x47) and variant (0x83) bytes, easy
// to spot in a hex dump. It
// holds no zero byte, so it never needs emulation prevention.
var SEITimestampUUID = [16]byte{
	0x6d, 0x65, 0x64, 0x69, 0x61, 0x73, 0x47, 0x76,
	0x83, 0x74, 0x69, 0x6d, 0x65, 0x73, 0x74, 0x61,
}

const (
	seiUserDataUnregistered = 5
	seiTimestampPayloadSize = 16 + 8
)

// AppendSEITimestamp appends to dst a complete SEI NAL unit, without start
// code, that carries t: the NAL header 0x06, one user-data-unregistered
// message (payload type 5, size 24) made of SEITimestampUUID and t as
// big-endian Unix nanoseconds, and the RBSP trailing bits, with
// emulation-prevention bytes inserted where the RBSP needs them. t must lie
// within the range time.Time.UnixNano represents (years 1678 to 2262).
func AppendSEITimestamp(dst []byte, t time.Time) []byte {
	var rbsp [2 + seiTimestampPayloadSize + 1]byte
	rbsp[0] = seiUserDataUnregistered
	rbsp[1] = seiTimestampPayloadSize
	copy(rbsp[2:], SEITimestampUUID[:])
	binary.BigEndian.PutUint64(rbsp[18:], uint64(t.UnixNano()))
	rbsp[len(rbsp)-1] = 0x80
	dst = append(dst, NALTypeSEI) // forbidden_zero_bit 0, nal_ref_idc 0
	zeros := 0
	for _, c := range rbsp {
		if zeros >= 2 && c <= 3 {
			dst = append(dst, 3)
			zeros = 0
		}
		dst = append(dst, c)
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return dst
}

// rbspReader reads the RBSP of a NAL unit payload, dropping
// emulation-prevention bytes, without copying.
type rbspReader struct {
	b     []byte
	zeros int
}

func (r *rbspReader) readByte() (byte, bool) {
	if len(r.b) == 0 {
		return 0, false
	}
	c := r.b[0]
	r.b = r.b[1:]
	if r.zeros >= 2 && c == 3 {
		r.zeros = 0
		if len(r.b) == 0 {
			return 0, false
		}
		c = r.b[0]
		r.b = r.b[1:]
	}
	if c == 0 {
		r.zeros++
	} else {
		r.zeros = 0
	}
	return c, true
}

// readVarint reads an SEI payload type or size: 0xff bytes adding 255 each,
// then a final byte.
func (r *rbspReader) readVarint() (int, bool) {
	v := 0
	for {
		c, ok := r.readByte()
		if !ok || v > 1<<20 {
			return 0, false
		}
		v += int(c)
		if c != 0xff {
			return v, true
		}
	}
}

// UnescapeRBSP appends to dst the RBSP of a NAL unit payload b: b without
// its emulation-prevention bytes (00 00 03 becomes 00 00).
func UnescapeRBSP(dst, b []byte) []byte {
	r := rbspReader{b: b}
	for {
		c, ok := r.readByte()
		if !ok {
			return dst
		}
		dst = append(dst, c)
	}
}

// ParseSEITimestamp returns the time carried by the SEI NAL unit nal
// (without start code) when one of its messages is a user-data-unregistered
// message with SEITimestampUUID, as AppendSEITimestamp writes it. It removes
// emulation prevention, skips other SEI messages, and reports false for any
// other NAL unit or a malformed one. It never panics and never allocates.
func ParseSEITimestamp(nal []byte) (time.Time, bool) {
	if NALType(nal) != NALTypeSEI {
		return time.Time{}, false
	}
	r := rbspReader{b: nal[1:]}
	for len(r.b) > 1 || (len(r.b) == 1 && r.b[0] != 0x80) {
		typ, ok := r.readVarint()
		if !ok {
			return time.Time{}, false
		}
		size, ok := r.readVarint()
		if !ok {
			return time.Time{}, false
		}
		if typ == seiUserDataUnregistered && size >= seiTimestampPayloadSize {
			var p [seiTimestampPayloadSize]byte
			for i := range p {
				if p[i], ok = r.readByte(); !ok {
					return time.Time{}, false
				}
			}
			if [16]byte(p[:16]) == SEITimestampUUID {
				ns := int64(binary.BigEndian.Uint64(p[16:]))
				return time.Unix(0, ns), true
			}
			size -= seiTimestampPayloadSize
		}
		for range size {
			if _, ok := r.readByte(); !ok {
				return time.Time{}, false
			}
		}
	}
	return time.Time{}, false
}
