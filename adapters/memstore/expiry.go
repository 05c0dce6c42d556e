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
	slot int32
}

// item is one heap position: an expiry and the slot of the entry it
// belongs to.
type item struct {
	key  expiry // keyOf(ents[slot].s.ExpiresAt) as last indexed
	slot int32
}

// expiryHeap is a 4-ary min-heap of a shard's entries by expiry, indexed so
// that a changed expiry is re-indexed in place (reindex) and a removed
// session is taken out at once (remove): it never holds stale items and
// never outgrows the map.
//
// Entries are scattered in memory, so sifting never touches them: an item
// carries its key, and the heap position of each entry lives in pos, a
// dense array by slot. A sift then stays within two small arrays that cache
// well, where storing the position in the entry cost a cache miss per level
// among a million sessions. The heap is written out rather than built on
// container/heap for the same reason: 4-ary is half as deep as binary, a
// sift moves a hole instead of swapping, and heap.Push/Remove would box an
// item and allocate.
type expiryHeap struct {
	items []item   // the heap
	pos   []int32  // pos[slot]: index in items, for every slot in use
	ents  []*entry // ents[slot]: the entry in that slot, nil if free
	free  []int32  // slots not in use
}

const arity = 4

// len returns the number of entries.
func (h *expiryHeap) len() int { return len(h.items) }

// min returns the earliest entry and its key. It requires len() > 0.
func (h *expiryHeap) min() (expiry, *entry) {
	return h.items[0].key, h.ents[h.items[0].slot]
}

// push adds e, indexed by its session's expiry.
func (h *expiryHeap) push(e *entry) {
	if n := len(h.free); n > 0 {
		e.slot = h.free[n-1]
		h.free = h.free[:n-1]
		h.ents[e.slot] = e
	} else {
		e.slot = int32(len(h.ents))
		h.ents = append(h.ents, e)
		h.pos = append(h.pos, 0)
	}
	h.items = append(h.items, item{key: keyOf(e.s.ExpiresAt), slot: e.slot})
	h.up(len(h.items) - 1)
}

// remove takes e out of the heap and frees its slot.
func (h *expiryHeap) remove(e *entry) {
	i, n := int(h.pos[e.slot]), len(h.items)-1
	last := h.items[n]
	h.items = h.items[:n]
	if i != n {
		h.items[i] = last
		h.pos[last.slot] = int32(i)
		h.fix(i)
	}
	h.ents[e.slot] = nil
	h.free = append(h.free, e.slot)
	if len(h.ents) > 1024 && n < len(h.ents)/4 {
		h.compact()
	}
}

// reindex re-indexes e after its session's expiry may have changed.
func (h *expiryHeap) reindex(e *entry) {
	i := int(h.pos[e.slot])
	k := keyOf(e.s.ExpiresAt)
	if k == h.items[i].key {
		return
	}
	h.items[i].key = k
	h.fix(i)
}

// compact renumbers the slots densely and gives back the memory of a mass
// expiry. It costs O(n) and runs after at least 3n removals.
func (h *expiryHeap) compact() {
	n := len(h.items)
	items := make([]item, n, 2*n)
	ents := make([]*entry, n, 2*n)
	pos := make([]int32, n, 2*n)
	for i, it := range h.items {
		e := h.ents[it.slot]
		e.slot = int32(i)
		items[i] = item{key: it.key, slot: int32(i)}
		ents[i] = e
		pos[i] = int32(i)
	}
	*h = expiryHeap{items: items, pos: pos, ents: ents}
}

// fix restores the order around the item at i.
func (h *expiryHeap) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

// up moves the item at i towards the root while it is earlier than its
// parent.
func (h *expiryHeap) up(i int) {
	items, pos := h.items, h.pos
	it := items[i]
	for i > 0 {
		p := (i - 1) / arity
		if !it.key.before(items[p].key) {
			break
		}
		items[i] = items[p]
		pos[items[i].slot] = int32(i)
		i = p
	}
	items[i] = it
	pos[it.slot] = int32(i)
}

// down moves the item at i towards the leaves while a child is earlier, and
// reports whether it moved.
func (h *expiryHeap) down(i int) bool {
	items, pos := h.items, h.pos
	it, start, n := items[i], i, len(items)
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
		pos[items[i].slot] = int32(i)
		i = m
	}
	items[i] = it
	pos[it.slot] = int32(i)
	return i != start
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
