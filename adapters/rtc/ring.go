package rtc

import (
	"sync"

	"mediasvc/domain"
)

// slotCap is the byte capacity of one ring slot: enough for a video payload
// of the largest MTU we allow and for any Opus packet.
const slotCap = 1500

// slot is one packetized RTP payload in the shared ring, before any per-viewer
// rewriting.
type slot struct {
	id       uint64 // global packet index + 1; 0 means never written
	ts       uint32 // source RTP timestamp (90 kHz video, 48 kHz audio)
	kind     domain.MediaKind
	marker   bool
	keyStart bool // first packet of a keyframe access unit (SPS/PPS/IDR)
	data     []byte
}

// pktMeta describes a packet copied out of the ring.
type pktMeta struct {
	idx      uint64
	ts       uint32
	kind     domain.MediaKind
	marker   bool
	keyStart bool
	n        int
}

// ring is a fixed-capacity ring of packets shared by all viewers of one
// stream. Packets carry a monotonically increasing global index; slot
// idx&mask holds packet idx until it is overwritten cap packets later.
// One writer (the capture pump) appends under mu; viewers copy packets out
// under the read lock, so a slot is never seen half written.
type ring struct {
	mu      sync.RWMutex
	slots   []slot
	mask    uint64
	head    uint64 // index of the next packet to write
	lastKey uint64 // index of the latest keyframe start
	hasKey  bool
	closed  bool
}

func newRing(size int) *ring {
	n := 1
	for n < size {
		n <<= 1
	}
	buf := make([]byte, n*slotCap)
	r := &ring{slots: make([]slot, n), mask: uint64(n - 1)}
	for i := range r.slots {
		r.slots[i].data = buf[i*slotCap : i*slotCap : (i+1)*slotCap]
	}
	return r
}

// capacity returns the number of slots.
func (r *ring) capacity() uint64 { return r.mask + 1 }

// claim returns the next slot to fill, stamped with the next global index.
// The caller holds r.mu for writing.
func (r *ring) claim(kind domain.MediaKind, ts uint32, keyStart bool) *slot {
	i := r.head
	s := &r.slots[i&r.mask]
	s.id = i + 1
	s.ts = ts
	s.kind = kind
	s.marker = false
	s.keyStart = keyStart
	s.data = s.data[:0]
	r.head++
	if keyStart {
		r.lastKey = i
		r.hasKey = true
	}
	return s
}

// keyValidLocked reports whether the latest keyframe start is still held.
func (r *ring) keyValidLocked() bool {
	return r.hasKey && r.head-r.lastKey <= r.capacity()
}

// close frees the ring; readers then see it closed.
func (r *ring) close() {
	r.mu.Lock()
	r.closed = true
	r.slots = nil
	r.mu.Unlock()
}

// readAt copies packet idx into dst if the ring still holds it.
func (r *ring) readAt(idx uint64, dst []byte) (pktMeta, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed || idx >= r.head || r.head-idx > r.capacity() {
		return pktMeta{}, false
	}
	s := &r.slots[idx&r.mask]
	if s.id != idx+1 {
		return pktMeta{}, false
	}
	n := copy(dst, s.data)
	return pktMeta{idx: idx, ts: s.ts, kind: s.kind, marker: s.marker, keyStart: s.keyStart, n: n}, true
}

// readStatus is the outcome of cursor.read.
type readStatus uint8

const (
	readOK readStatus = iota
	readEmpty
	readClosed
)

// cursor is one viewer's position in the ring and its keyframe gate. It is
// used by one goroutine only.
type cursor struct {
	next uint64 // global index of the next packet to read
	// gated: drop video until the next keyframe start.
	gated bool
	// needKey is set when the cursor has no keyframe to start from; the
	// owner turns it into a (coalesced) keyframe request and clears it.
	needKey bool
	skips   uint64
	// catchupEnd is the ring head when the cursor last jumped back to a
	// keyframe (start or skip): packets before it are backlog that the
	// owner paces instead of bursting.
	catchupEnd uint64
}

// start positions c for a new viewer: at the latest keyframe when the ring
// holds one, else at the head with the gate closed and needKey set.
func (r *ring) start(c *cursor) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c.gated = true
	c.catchupEnd = r.head
	if r.keyValidLocked() {
		c.next = r.lastKey
		return
	}
	c.next = r.head
	c.needKey = true
}

// read copies the next packet for c into dst, advancing c. A cursor that the
// writer has lapped skips to the newest keyframe (or to the head, gated,
// with needKey set) and counts the skip. Video packets before the gate opens
// are consumed and not returned: read keeps going until it has a packet to
// send or nothing is left.
func (r *ring) read(c *cursor, dst []byte) (pktMeta, readStatus) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return pktMeta{}, readClosed
	}
	for c.next < r.head {
		if r.head-c.next > r.capacity() {
			c.skips++
			c.gated = true
			c.catchupEnd = r.head
			if r.keyValidLocked() {
				c.next = r.lastKey
			} else {
				c.next = r.head
				c.needKey = true
				return pktMeta{}, readEmpty
			}
		}
		s := &r.slots[c.next&r.mask]
		idx := c.next
		c.next++
		if s.kind == domain.KindVideo && c.gated {
			if !s.keyStart {
				continue
			}
			c.gated = false
		}
		n := copy(dst, s.data)
		return pktMeta{idx: idx, ts: s.ts, kind: s.kind, marker: s.marker, keyStart: s.keyStart, n: n}, readOK
	}
	return pktMeta{}, readEmpty
}
