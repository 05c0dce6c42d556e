package demo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// This file holds a minimal reader for Ogg-encapsulated Opus (RFC 3533,
// RFC 7845), enough to cut the embedded clip into Opus packets. pion's
// oggreader returns whole page payloads and drops the lacing values, so it
// cannot split the several packets ffmpeg puts in one page; hence this one.

var errBadOgg = errors.New("malformed ogg")

const oggPageHeaderLen = 27

// opusHead is what the OpusHead identification header says (RFC 7845 §5.1).
type opusHead struct {
	Channels   int
	PreSkip    int
	SampleRate int
}

// readOggOpus returns the identification header and the audio packets of the
// first logical bitstream in the Ogg file b, skipping OpusHead and OpusTags.
// Packets that sit inside one page alias b; a packet continued across pages
// is copied. It verifies each page's CRC when checkCRC is set. It returns an
// error wrapping errBadOgg, naming the page offset, for anything malformed;
// it never panics.
func readOggOpus(b []byte, checkCRC bool) (opusHead, [][]byte, error) {
	var (
		head    opusHead
		packets [][]byte
		partial []byte // a packet continued from the previous page
		serial  uint32
		n       int // packets seen, headers included
	)
	for off := 0; off < len(b); {
		page := b[off:]
		if len(page) < oggPageHeaderLen || !bytes.Equal(page[:4], []byte("OggS")) || page[4] != 0 {
			return head, nil, fmt.Errorf("read ogg page at %d: bad header: %w", off, errBadOgg)
		}
		flags := page[5]
		nseg := int(page[26])
		if len(page) < oggPageHeaderLen+nseg {
			return head, nil, fmt.Errorf("read ogg page at %d: truncated segment table: %w", off, errBadOgg)
		}
		lacing := page[oggPageHeaderLen : oggPageHeaderLen+nseg]
		size := oggPageHeaderLen + nseg
		for _, l := range lacing {
			size += int(l)
		}
		if len(page) < size {
			return head, nil, fmt.Errorf("read ogg page at %d: truncated body: %w", off, errBadOgg)
		}
		page = page[:size]
		if checkCRC && binary.LittleEndian.Uint32(page[22:26]) != oggCRC(page) {
			return head, nil, fmt.Errorf("read ogg page at %d: crc mismatch: %w", off, errBadOgg)
		}
		pageSerial := binary.LittleEndian.Uint32(page[14:18])
		if off == 0 {
			serial = pageSerial
		}
		off += size
		if pageSerial != serial {
			continue // another logical bitstream: not ours
		}
		// A continued packet whose start we never saw is dropped, and so is
		// a started one the next page does not continue.
		orphan := flags&0x01 != 0 && partial == nil
		if flags&0x01 == 0 {
			partial = nil
		}
		body := page[oggPageHeaderLen+nseg:]
		start := 0
		pos := 0
		for i, l := range lacing {
			pos += int(l)
			if l == 255 && i < len(lacing)-1 {
				continue
			}
			if l == 255 { // packet goes on in the next page
				if orphan {
					break
				}
				partial = append(partial, body[start:pos]...)
				start = pos
				continue
			}
			pkt := body[start:pos]
			if orphan {
				orphan = false
				start = pos
				continue
			}
			if partial != nil {
				pkt = append(partial, pkt...)
				partial = nil
			}
			start = pos
			switch n {
			case 0:
				h, err := parseOpusHead(pkt)
				if err != nil {
					return head, nil, fmt.Errorf("read ogg page at %d: %w", off-size, err)
				}
				head = h
			case 1:
				if !bytes.HasPrefix(pkt, []byte("OpusTags")) {
					return head, nil, fmt.Errorf("read ogg page at %d: second packet is not OpusTags: %w", off-size, errBadOgg)
				}
			default:
				if len(pkt) > 0 {
					packets = append(packets, pkt)
				}
			}
			n++
		}
	}
	if n == 0 {
		return head, nil, fmt.Errorf("read ogg: no packets: %w", errBadOgg)
	}
	return head, packets, nil
}

// parseOpusHead parses the OpusHead packet (RFC 7845 §5.1).
func parseOpusHead(p []byte) (opusHead, error) {
	if len(p) < 19 || !bytes.HasPrefix(p, []byte("OpusHead")) {
		return opusHead{}, fmt.Errorf("parse OpusHead: missing or short: %w", errBadOgg)
	}
	if p[8]>>4 != 0 {
		return opusHead{}, fmt.Errorf("parse OpusHead: unsupported version %d: %w", p[8], errBadOgg)
	}
	h := opusHead{
		Channels:   int(p[9]),
		PreSkip:    int(binary.LittleEndian.Uint16(p[10:12])),
		SampleRate: int(binary.LittleEndian.Uint32(p[12:16])),
	}
	if h.Channels == 0 {
		return opusHead{}, fmt.Errorf("parse OpusHead: zero channels: %w", errBadOgg)
	}
	return h, nil
}

// opusPacketDuration returns how long the Opus packet p plays, from its TOC
// byte (RFC 6716 §3.1) and, for code 3, its frame count byte. It returns
// false for an empty or malformed packet or one longer than 120 ms.
func opusPacketDuration(p []byte) (time.Duration, bool) {
	if len(p) == 0 {
		return 0, false
	}
	toc := p[0]
	config := toc >> 3
	var frame time.Duration
	switch {
	case config < 12: // SILK-only: 10, 20, 40, 60 ms
		frame = [4]time.Duration{10, 20, 40, 60}[config&3] * time.Millisecond
	case config < 16: // hybrid: 10, 20 ms
		frame = [2]time.Duration{10, 20}[config&1] * time.Millisecond
	default: // CELT-only: 2.5, 5, 10, 20 ms
		frame = [4]time.Duration{2500, 5000, 10000, 20000}[config&3] * time.Microsecond
	}
	frames := 1
	switch toc & 3 {
	case 1, 2:
		frames = 2
	case 3:
		if len(p) < 2 {
			return 0, false
		}
		frames = int(p[1] & 0x3f)
	}
	d := time.Duration(frames) * frame
	if frames == 0 || d > 120*time.Millisecond {
		return 0, false
	}
	return d, true
}

// oggCRCTable is the table of Ogg's CRC-32: polynomial 0x04c11db7, not
// reflected, initial value 0, no final xor.
var oggCRCTable = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

// oggCRC returns the CRC of an Ogg page, computed with its CRC field as zero.
func oggCRC(page []byte) uint32 {
	var crc uint32
	for i, c := range page {
		if i >= 22 && i < 26 {
			c = 0
		}
		crc = crc<<8 ^ oggCRCTable[byte(crc>>24)^c]
	}
	return crc
}
