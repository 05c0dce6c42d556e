package memstore

import (
	"container/heap"
	"math"
	"time"

	"mediasvc/domain"
)

// expiry is a wall-clock instant in Unix nanoseconds: it orders like
// time.Time without the monotonic reading and compares in one instruction.
// Instants outside int64 nanoseconds (before 1678 or after 2262, the zero
// time included) are clamped, which keeps them first or last.
type expiry int64

func keyOf(t time.Time) expiry {
	const maxSec = math.MaxInt64 / int64(time.Second)
	switch sec := t.Unix(); {
	case sec < -maxSec:
		return math.MinInt64
	case sec >= maxSec:
		return math.MaxInt64
	default:
		return expiry(sec*int64(time.Second) + int64(t.Nanosecond()))
	}
}

// before reports whether k is earlier than o.
func (k expiry) before(o expiry) bool { return k < o }

// entry is one stored session. Its slot names it in its shard's expiry
// heap.
type entry struct {
	s    domain.Session
	key  expiry // keyOf(s.ExpiresAt) as last indexed
	slot int32
}

// item is one heap position: an expiry, the slot of the entry it belongs
// to and the slot's generation when it was pushed.
type item struct {
	key  expiry
	slot int32
	gen  uint32
}

// expiryHeap is a 4-ary min-heap of a shard's entries by expiry, cleaned
// lazily: re-indexing an entry (Touch, Update) pushes a new item and bumps
// the slot's generation, which makes the old item stale; removing an entry
// bumps it too. Stale items are dropped when they reach the top, or all at
// once when they outnumber the live ones (maybeCompact, which the store
// calls once an operation is complete), so the heap holds at most 2n+64
// items for n entries between operations.
//
// push, reindex and release only index slices at positions the invariants
// guarantee and append, so they cannot panic; the store calls them after
// every check that can fail, which makes each of its operations
// all-or-nothing. maybeCompact changes the layout, never what the heap
// holds.
//
// Lazy cleaning beats re-indexing in place (heap.Fix with an index in the
// entry) because a touched session moves to the back of the order: in
// place it sinks through every level, a cache miss each among a million
// sessions, where a new item at the back is already where it belongs.
// Delete costs O(1) for the same reason. The heap is written out rather
// than built on container/heap: 4-ary is half as deep as binary, a sift
// moves a hole instead of swapping, and heap.Push would box an item and
// allocate. Sifting touches only the items and the dense gen array, never
// the entries, which are scattered in memory.
type expiryHeap struct {
	items []item
	gen   []uint32 // gen[slot]: generation of the slot's live item
	ents  []*entry // ents[slot]: the entry in that slot, nil if free
	free  []int32  // slots not in use
	live  int      // slots in use
}

const arity = 4

// push adds e, indexed by its session's expiry.
func (h *expiryHeap) push(e *entry) {
	if n := len(h.free); n > 0 {
		e.slot = h.free[n-1]
		h.free = h.free[:n-1]
		h.ents[e.slot] = e
	} else {
		e.slot = int32(len(h.ents))
		h.ents = append(h.ents, e)
		h.gen = append(h.gen, 0)
	}
	h.live++
	e.key = keyOf(e.s.ExpiresAt)
	h.add(e.slot, e.key)
}

// reindex re-indexes e after its session's expiry may have changed.
func (h *expiryHeap) reindex(e *entry) {
	if k := keyOf(e.s.ExpiresAt); k != e.key {
		e.key = k
		h.add(e.slot, k)
	}
}

// add pushes the live item of slot, making its earlier items stale.
func (h *expiryHeap) add(slot int32, k expiry) {
	h.gen[slot]++
	h.items = append(h.items, item{key: k, slot: slot, gen: h.gen[slot]})
	h.up(len(h.items) - 1)
}

// release frees e's slot and makes its item stale; the caller has taken
// that item off the top or leaves it for later.
func (h *expiryHeap) release(e *entry) {
	h.gen[e.slot]++
	h.ents[e.slot] = nil
	h.free = append(h.free, e.slot)
	h.live--
	e.slot = -1
}

// min drops stale items off the top and returns the earliest entry and its
// key; ok is false if the heap holds no entry.
func (h *expiryHeap) min() (k expiry, e *entry, ok bool) {
	for len(h.items) > 0 {
		top := h.items[0]
		if top.gen == h.gen[top.slot] {
			return top.key, h.ents[top.slot], true
		}
		h.popTop()
	}
	return 0, nil, false
}

// popTop removes the top item.
func (h *expiryHeap) popTop() {
	n := len(h.items) - 1
	h.items[0] = h.items[n]
	h.items = h.items[:n]
	if n > 0 {
		h.down(0)
	}
}

// maybeCompact drops every stale item once they outnumber the live ones,
// and renumbers the slots densely once most are free, giving back the
// memory of a mass expiry. It costs O(n) and runs after at least n+64
// pushes or removals, so O(1) amortized. It leaves the heap holding the
// same entries at the same keys, so the store calls it last, once an
// operation's changes are all made.
func (h *expiryHeap) maybeCompact() {
	if len(h.items) <= 2*h.live+64 && !h.sparse() {
		return
	}
	live := h.items[:0]
	for _, it := range h.items {
		if it.gen == h.gen[it.slot] {
			live = append(live, it)
		}
	}
	clear(h.items[len(live):])
	h.items = live
	if h.sparse() {
		h.renumber()
	}
	h.heapify()
}

// sparse reports whether most of many slots are free.
func (h *expiryHeap) sparse() bool { return len(h.ents) > 1024 && h.live < len(h.ents)/4 }

// renumber gives the live items, which are exactly one per entry after a
// compaction, the slots 0..n-1 in fresh arrays sized for them. The new
// arrays are complete before any entry learns its new slot.
func (h *expiryHeap) renumber() {
	n := len(h.items)
	items, ents, gen := make([]item, n, 2*n), make([]*entry, n, 2*n), make([]uint32, n, 2*n)
	for i, it := range h.items {
		items[i] = item{key: it.key, slot: int32(i), gen: 1}
		ents[i] = h.ents[it.slot]
		gen[i] = 1
	}
	for i, e := range ents {
		e.slot = int32(i)
	}
	*h = expiryHeap{items: items, gen: gen, ents: ents, live: n}
}

// heapify restores the heap order of all items, bottom-up from the last
// parent. A heap of fewer than two items is in order: (n-2)/arity is 0 for
// n = 0 as for n = 1 and 2, because Go truncates towards zero, so the loop
// must not start on an empty heap (issue 8: down(0) on no items).
func (h *expiryHeap) heapify() {
	n := len(h.items)
	if n < 2 {
		return
	}
	for i := (n - 2) / arity; i >= 0; i-- {
		h.down(i)
	}
}

// up moves the item at i towards the root while it is earlier than its
// parent.
func (h *expiryHeap) up(i int) {
	items := h.items
	it := items[i]
	for i > 0 {
		p := (i - 1) / arity
		if !it.key.before(items[p].key) {
			break
		}
		items[i] = items[p]
		i = p
	}
	items[i] = it
}

// down moves the item at i towards the leaves while a child is earlier.
func (h *expiryHeap) down(i int) {
	items := h.items
	it, n := items[i], len(items)
	for {
		c := arity*i + 1
		if c >= n {
			break
		}
		m := c
		for j := c + 1; j < min(c+arity, n); j++ {
			if items[j].key.before(items[m].key) {
				m = j
			}
		}
		if !items[m].key.before(it.key) {
			break
		}
		items[i] = items[m]
		i = m
	}
	items[i] = it
}

// head is the earliest expiry of one shard, as PopExpired merges them.
type head struct {
	key   expiry
	shard int
}

// headHeap is a min-heap of shard heads, for PopExpired's k-way merge.
type headHeap []head

func (h headHeap) Len() int           { return len(h) }
func (h headHeap) Less(i, j int) bool { return h[i].key.before(h[j].key) }
func (h headHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *headHeap) Push(x any)        { *h = append(*h, x.(head)) }

func (h *headHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// dropRoot removes the root without boxing it in an interface, as
// heap.Pop would.
func (h *headHeap) dropRoot() {
	n := len(*h) - 1
	(*h)[0] = (*h)[n]
	*h = (*h)[:n]
	if n > 0 {
		heap.Fix(h, 0)
	}
}

// second returns the smaller key among the root's children: the earliest
// head after the root. It requires len(h) > 1.
func (h headHeap) second() expiry {
	if len(h) > 2 && h[2].key.before(h[1].key) {
		return h[2].key
	}
	return h[1].key
}
