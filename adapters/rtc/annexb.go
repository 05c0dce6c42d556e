package rtc

import "bytes"

var startCode3 = []byte{0, 0, 1}

// nextNAL returns the first NAL unit of the Annex-B byte stream b, without
// its start code and trailing zero bytes, and the rest of b after it. Bytes
// before the first start code are skipped. When b holds no start code at all
// it is taken as one bare NAL unit. A nil nal means b is exhausted. It never
// allocates.
func nextNAL(b []byte) (nal, rest []byte) {
	for len(b) > 0 {
		i := bytes.Index(b, startCode3)
		if i < 0 {
			// No (further) start code: the remainder is one bare NAL unit.
			if nal = trimZeros(b); len(nal) == 0 {
				return nil, nil
			}
			return nal, nil
		}
		b = b[i+3:]
		j := bytes.Index(b, startCode3)
		if j < 0 {
			nal, rest = trimZeros(b), nil
		} else {
			nal, rest = trimZeros(b[:j]), b[j:]
		}
		if len(nal) > 0 {
			return nal, rest
		}
		b = rest
	}
	return nil, nil
}

func trimZeros(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}
