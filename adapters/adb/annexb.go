package adb

import (
	"bytes"
	"errors"

	"mediasvc/domain"
)

var startCode3 = []byte{0, 0, 1}

// auSplitter cuts an Annex-B byte stream, arriving in arbitrary chunks, into
// access units. A NAL unit is complete when the next start code arrives, or
// when the caller flushes on an idle gap: screenrecord writes one encoded
// frame at a time and then nothing until the screen changes, so without
// the flush the last frame would wait for the next one. An access unit ends
// at an AUD, SPS, PPS or SEI after a slice, or at a slice whose
// first_mb_in_slice is 0 after another slice (a new picture).
type auSplitter struct {
	buf   []byte
	first int // index just after the start code of the pending NAL unit; -1 before any
	pos   int // where the search for the next start code resumes

	cur    [][]byte // NAL units of the access unit being built (owned copies)
	curVCL bool
	out    [][][]byte
}

func newAUSplitter() *auSplitter { return &auSplitter{first: -1} }

// maxPending bounds a NAL unit still waiting for its end; a stream that
// exceeds it is not H.264.
const maxPending = 8 << 20

// errNALTooLarge is returned when a NAL unit outgrows maxPending.
var errNALTooLarge = errors.New("h264 NAL unit over 8 MiB")

// Write consumes p and returns the access units it completed, each a list
// of NAL units without start codes. The units do not alias p.
func (s *auSplitter) Write(p []byte) ([][][]byte, error) {
	s.out = s.out[:0]
	s.buf = append(s.buf, p...)
	if s.first < 0 {
		i := bytes.Index(s.buf, startCode3)
		if i < 0 {
			// Garbage before the first start code: keep only what could be
			// the start of one.
			if len(s.buf) > 2 {
				s.buf = append(s.buf[:0], s.buf[len(s.buf)-2:]...)
			}
			return nil, nil
		}
		s.first, s.pos = i+3, i+3
	}
	for {
		j := bytes.Index(s.buf[s.pos:], startCode3)
		if j < 0 {
			s.pos = max(s.first, len(s.buf)-2)
			break
		}
		end := s.pos + j
		s.nal(s.buf[s.first:end])
		s.first, s.pos = end+3, end+3
	}
	// The pending NAL unit's header already says whether it begins a new
	// access unit: if so the current one is complete now, a frame earlier
	// than waiting for the pending unit's own end.
	if s.curVCL && len(s.buf)-s.first >= 2 && startsAU(s.buf[s.first:]) {
		s.emit()
	}
	if s.first > 0 {
		n := copy(s.buf, s.buf[s.first:])
		s.buf = s.buf[:n]
		s.pos -= s.first
		s.first = 0
	}
	if len(s.buf) > maxPending {
		return nil, errNALTooLarge
	}
	return s.out, nil
}

// Flush ends the pending NAL unit (the stream went idle) and returns the
// access unit it completes, if that holds a slice.
func (s *auSplitter) Flush() [][][]byte {
	s.out = s.out[:0]
	if s.first >= 0 && len(s.buf) > s.first {
		s.nal(s.buf[s.first:])
		s.buf = s.buf[:0]
		s.first, s.pos = -1, 0
	}
	if s.curVCL {
		s.emit()
	}
	return s.out
}

// Pending reports whether bytes of a NAL unit or an access unit wait.
func (s *auSplitter) Pending() bool {
	return len(s.cur) > 0 || (s.first >= 0 && len(s.buf) > s.first)
}

// nal adds one NAL unit (aliasing s.buf: copied here).
func (s *auSplitter) nal(b []byte) {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return
	}
	if s.curVCL && startsAU(b) {
		s.emit()
	}
	if t := domain.NALType(b); t >= 1 && t <= 5 {
		s.curVCL = true
	}
	s.cur = append(s.cur, bytes.Clone(b))
}

// startsAU reports whether a NAL unit that follows a slice begins a new
// access unit, from its first two bytes: an AUD, SPS, PPS, SEI or prefix
// unit, or a slice whose first_mb_in_slice is 0 (its ue(v) is the bit 1).
func startsAU(b []byte) bool {
	t := domain.NALType(b)
	switch {
	case t == domain.NALTypeAUD || t == domain.NALTypeSPS || t == domain.NALTypePPS || t == domain.NALTypeSEI || (t >= 14 && t <= 18):
		return true
	case t >= 1 && t <= 5:
		return len(b) > 1 && b[1]&0x80 != 0
	}
	return false
}

func (s *auSplitter) emit() {
	s.out = append(s.out, s.cur)
	s.cur, s.curVCL = nil, false
}
