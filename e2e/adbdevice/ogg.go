package adbdevice

import (
	"bytes"
	"errors"
	"fmt"
)

var errBadOgg = errors.New("malformed ogg")

// oggPackets returns the packets of the first logical bitstream of the Ogg
// file b (RFC 3533), headers included, joining packets continued across
// pages. CRCs are not checked. It returns an error wrapping errBadOgg for a
// malformed page and never panics.
func oggPackets(b []byte) ([][]byte, error) {
	var (
		packets [][]byte
		cur     []byte
		serial  uint32
		first   = true
	)
	for off := 0; off < len(b); {
		p := b[off:]
		if len(p) < 27 || !bytes.Equal(p[:4], []byte("OggS")) {
			return nil, fmt.Errorf("ogg page at %d: %w", off, errBadOgg)
		}
		nseg := int(p[26])
		if len(p) < 27+nseg {
			return nil, fmt.Errorf("ogg page at %d: truncated: %w", off, errBadOgg)
		}
		s := uint32(p[14]) | uint32(p[15])<<8 | uint32(p[16])<<16 | uint32(p[17])<<24
		if first {
			serial, first = s, false
		}
		body := 27 + nseg
		size := body
		for _, l := range p[27 : 27+nseg] {
			size += int(l)
		}
		if len(p) < size {
			return nil, fmt.Errorf("ogg page at %d: truncated body: %w", off, errBadOgg)
		}
		if s == serial {
			pos := body
			for _, l := range p[27 : 27+nseg] {
				cur = append(cur, p[pos:pos+int(l)]...)
				pos += int(l)
				if l < 255 {
					packets = append(packets, cur)
					cur = nil
				}
			}
		}
		off += size
	}
	return packets, nil
}
