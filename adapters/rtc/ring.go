package rtc

import (
	"sync"
	"time"
	"unsafe"

	"mediasvc/domain"
)

// slotCap is the most bytes one packet in the ring may take: enough for a
// video payload of the largest MTU we allow and for any Opus packet.
const slotCap = 1500

// Ring sizing. A ring keeps what viewers can still ask for: the current
// group of pictures (a late joiner starts at its keyframe) and, for NACKs,
// the last history of packets, whatever their count; its memory follows
// the stream's bitrate and GOP instead of a fixed slot count.
const (
	// DefaultRingHistory is how far back NACKs are answered by default.
	DefaultRingHistory = 2 * time.Second
	// DefaultRingMaxBytes caps a ring's memory (a very long GOP at a high
	// bitrate): past it the oldest packets go, even those of the current
	// GOP, and a joiner waits for the next keyframe.
	DefaultRingMaxBytes = 32 << 20
	// chunkSize is the unit in which a ring takes and gives back payload
	// memory.
	chunkSize = 64 << 10
	// slotCharge is what a packet's bookkeeping costs besides its payload,
	// counted against the byte cap.
	slotCharge = 64
	minSlots   = 256
	maxSpare   = 2
)

// ringLimits size a ring.
type ringLimits struct {
	history  time.Duration // keep packets younger than this
	maxBytes int           // never hold more than this
}

// slot is one packetized RTP payload in the shared ring, before any per-viewer
// rewriting.
type slot struct {
	id       uint64 // global packet index + 1; 0 means never written
	at       int64  // wall clock of the frame it belongs to, unix nanos
	ts       uint32 // source RTP timestamp (90 kHz video, 48 kHz audio)
	kind     domain.MediaKind
	marker   bool
	keyStart bool   // first packet of a keyframe access unit (SPS/PPS/IDR)
	data     []byte // within one of the ring's chunks
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

// chunk is a piece of payload memory from the process's chunk pool;
// packets are placed in it back to back and it is given back when the last
// of them leaves the ring (under the write lock: readers copy packets out
// under the read lock, so none still reads it).
type chunk struct {
	buf  []byte
	last uint64 // index of the last packet placed in it
	heap bool   // buf is on the Go heap (no mapping to be had)
}

// ring holds the packets of one stream shared by all its viewers, from
// index tail to head-1. Packets carry a monotonically increasing global
// index; the slot table grows (a power of two) with the packets held and
// payloads live in chunks taken and given back as the ring fills and
// empties. One writer (the capture pump) appends under mu and, after each
// frame, lets go of what is older than both the current GOP and the
// history (or anything past the byte cap); viewers copy packets out under
// the read lock, so a slot is never seen half written.
type ring struct {
	mu      sync.RWMutex
	lim     ringLimits
	slots   []slot
	mask    uint64
	head    uint64 // index of the next packet to write
	tail    uint64 // index of the oldest packet held
	lastKey uint64 // index of the latest keyframe start
	hasKey  bool
	closed  bool

	// Writer only (under mu).
	now     int64    // wall clock stamped on new slots
	bytes   int      // payload + slotCharge of the packets held
	chunks  []*chunk // oldest first; the last one is being filled
	spare   []*chunk // emptied chunks kept for reuse (at most maxSpare)
	open    *slot    // claimed, length not yet committed
	woff    int      // fill offset in the last chunk
	peakMem int      // most payload memory ever held (tests)
}

func newRing(lim ringLimits) *ring {
	if lim.maxBytes <= 0 {
		lim.maxBytes = DefaultRingMaxBytes
	}
	return &ring{lim: lim, slots: make([]slot, minSlots), mask: minSlots - 1}
}

// setNow sets the wall clock that the next claimed slots carry. The caller
// holds r.mu for writing.
func (r *ring) setNow(at time.Time) { r.now = at.UnixNano() }

// claim returns the next slot to fill (append to its data, at most slotCap
// bytes), stamped with the next global index. The caller holds r.mu for
// writing and calls r.commit when the frame is complete.
func (r *ring) claim(kind domain.MediaKind, ts uint32, keyStart bool) *slot {
	r.seal()
	if r.head-r.tail == uint64(len(r.slots)) {
		r.grow()
	}
	c := r.room()
	i := r.head
	s := &r.slots[i&r.mask]
	s.id = i + 1
	s.at = r.now
	s.ts = ts
	s.kind = kind
	s.marker = false
	s.keyStart = keyStart
	s.data = c.buf[r.woff:r.woff:min(r.woff+slotCap, len(c.buf))]
	c.last = i
	r.open = s
	r.head++
	if keyStart {
		r.lastKey = i
		r.hasKey = true
	}
	return s
}

// seal fixes the length of the open slot and moves the fill offset past it.
func (r *ring) seal() {
	if r.open == nil {
		return
	}
	r.woff += len(r.open.data)
	r.bytes += len(r.open.data) + slotCharge
	r.open = nil
}

// room returns the chunk the next packet goes in, with slotCap bytes free.
func (r *ring) room() *chunk {
	if n := len(r.chunks); n > 0 && r.woff+slotCap <= chunkSize {
		return r.chunks[n-1]
	}
	var c *chunk
	if n := len(r.spare); n > 0 {
		c = r.spare[n-1]
		r.spare[n-1] = nil
		r.spare = r.spare[:n-1]
	} else {
		c = chunks.get()
	}
	r.chunks = append(r.chunks, c)
	r.woff = 0
	r.peakMem = max(r.peakMem, len(r.chunks)*chunkSize)
	return c
}

// grow doubles the slot table.
func (r *ring) grow() {
	n := len(r.slots) * 2
	slots := make([]slot, n)
	mask := uint64(n - 1)
	for i := r.tail; i < r.head; i++ {
		slots[i&mask] = r.slots[i&r.mask]
	}
	r.slots, r.mask = slots, mask
}

// commit ends a frame: it seals the last packet and lets go of the packets
// the ring need not keep any more. The caller holds r.mu for writing.
func (r *ring) commit() {
	r.seal()
	horizon := r.now - int64(r.lim.history)
	for r.tail < r.head {
		s := &r.slots[r.tail&r.mask]
		over := r.bytes > r.lim.maxBytes
		inGOP := r.hasKey && r.tail >= r.lastKey
		if !over && (inGOP || s.at >= horizon) {
			break
		}
		r.bytes -= len(s.data) + slotCharge
		s.data = nil
		r.tail++
	}
	if r.hasKey && r.lastKey < r.tail {
		r.hasKey = false
	}
	// Give back the chunks whose packets are all gone (never the one
	// being filled).
	drop := 0
	for drop < len(r.chunks)-1 && r.chunks[drop].last < r.tail {
		drop++
	}
	if drop > 0 {
		for _, c := range r.chunks[:drop] {
			if len(r.spare) < maxSpare {
				r.spare = append(r.spare, c)
			} else {
				chunks.put(c)
			}
		}
		n := copy(r.chunks, r.chunks[drop:])
		clear(r.chunks[n:])
		r.chunks = r.chunks[:n]
	}
}

// memory is the payload and slot-table memory the ring holds. The caller
// holds r.mu.
func (r *ring) memory() int {
	n := (len(r.chunks) + len(r.spare)) * chunkSize
	return n + len(r.slots)*int(unsafe.Sizeof(slot{}))
}

// keyValidLocked reports whether the latest keyframe start is still held.
func (r *ring) keyValidLocked() bool {
	return r.hasKey && r.lastKey >= r.tail
}

// close frees the ring; readers then see it closed.
func (r *ring) close() {
	r.mu.Lock()
	if !r.closed {
		for _, c := range r.chunks {
			chunks.put(c)
		}
		for _, c := range r.spare {
			chunks.put(c)
		}
	}
	r.closed = true
	r.slots = nil
	r.chunks = nil
	r.spare = nil
	r.open = nil
	r.mu.Unlock()
}

// readAt copies packet idx into dst if the ring still holds it.
func (r *ring) readAt(idx uint64, dst []byte) (pktMeta, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed || idx >= r.head || idx < r.tail {
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
// ring has let go past (a viewer too slow to keep up) skips to the newest
// keyframe (or to the head, gated, with needKey set) and counts the skip.
// Video packets before the gate opens are consumed and not returned: read
// keeps going until it has a packet to send or nothing is left.
func (r *ring) read(c *cursor, dst []byte) (pktMeta, readStatus) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return pktMeta{}, readClosed
	}
	for c.next < r.head {
		if c.next < r.tail {
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
