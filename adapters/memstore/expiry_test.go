package memstore

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"mediasvc/domain"
)

// checkHeap verifies the heap's invariants: every item in heap order,
// exactly one live item per entry at the entry's key, free slots empty,
// the counts in agreement, and at most 2n+64 items.
func checkHeap(h *expiryHeap) error {
	if h.live+len(h.free) != len(h.ents) || len(h.gen) != len(h.ents) {
		return fmt.Errorf("%d live, %d free, %d slots, %d gens", h.live, len(h.free), len(h.ents), len(h.gen))
	}
	if len(h.items) > 2*h.live+64 {
		return fmt.Errorf("%d items for %d live entries", len(h.items), h.live)
	}
	for _, slot := range h.free {
		if h.ents[slot] != nil {
			return fmt.Errorf("free slot %d holds %s", slot, h.ents[slot].s.ID)
		}
	}
	liveItems := make(map[int32]int, h.live)
	for j, it := range h.items {
		if p := (j - 1) / arity; j > 0 && it.key.before(h.items[p].key) {
			return fmt.Errorf("heap order broken at %d", j)
		}
		if int(it.slot) >= len(h.gen) || it.slot < 0 {
			return fmt.Errorf("item %d names slot %d of %d", j, it.slot, len(h.gen))
		}
		if it.gen != h.gen[it.slot] {
			continue // stale
		}
		liveItems[it.slot]++
		e := h.ents[it.slot]
		if e == nil || e.slot != it.slot {
			return fmt.Errorf("live item %d names slot %d holding %v", j, it.slot, e)
		}
		if it.key != keyOf(e.s.ExpiresAt) || it.key != e.key {
			return fmt.Errorf("entry %s indexed at a stale expiry", e.s.ID)
		}
	}
	n := 0
	for slot, e := range h.ents {
		if e == nil {
			continue
		}
		n++
		if e.slot != int32(slot) || liveItems[int32(slot)] != 1 {
			return fmt.Errorf("entry %s in slot %d (says %d) has %d live items", e.s.ID, slot, e.slot, liveItems[int32(slot)])
		}
	}
	if n != h.live {
		return fmt.Errorf("%d entries in slots, %d live", n, h.live)
	}
	return nil
}

// heapModel drives an expiryHeap and a reference (each entry's expiry in
// a plain slice, scanned for the minimum) with the same operations, as the
// store does: push, reindex, release of any entry, pop of the minimum, each
// followed by maybeCompact.
type heapModel struct {
	h       expiryHeap
	ents    []*entry // the reference: the live entries
	keys    []expiry // and their expiries
	next    int
	ops     int
	compact int // compactions the heap made
	renum   int // compactions that renumbered the slots
}

func newHeapModel() *heapModel { return &heapModel{} }

func (m *heapModel) at(k int64) time.Time { return time.Unix(0, k) }

// done runs maybeCompact, as the store does after every operation, and
// counts what it did.
func (m *heapModel) done() {
	m.ops++
	slots := len(m.h.ents)
	if len(m.h.items) > 2*m.h.live+64 || m.h.sparse() {
		m.compact++
	}
	m.h.maybeCompact()
	if len(m.h.ents) < slots {
		m.renum++
	}
}

func (m *heapModel) push(k int64) {
	e := &entry{}
	e.s.ID = domain.SessionID("e" + strconv.Itoa(m.next))
	m.next++
	e.s.ExpiresAt = m.at(k)
	m.h.push(e)
	m.ents = append(m.ents, e)
	m.keys = append(m.keys, keyOf(e.s.ExpiresAt))
	m.done()
}

func (m *heapModel) reindex(i int, k int64) {
	e := m.ents[i]
	e.s.ExpiresAt = m.at(k)
	m.h.reindex(e)
	m.keys[i] = keyOf(e.s.ExpiresAt)
	m.done()
}

// drop removes the i-th entry from the reference.
func (m *heapModel) drop(i int) {
	n := len(m.ents) - 1
	m.ents[i], m.keys[i] = m.ents[n], m.keys[n]
	m.ents, m.keys = m.ents[:n], m.keys[:n]
}

func (m *heapModel) release(i int) {
	m.h.release(m.ents[i])
	m.drop(i)
	m.done()
}

// pop takes the minimum off the heap, as PopExpired does, and checks it
// is the reference's minimum (any of several at the same key).
func (m *heapModel) pop() error {
	k, e, ok := m.h.min()
	if len(m.ents) == 0 {
		if ok {
			return fmt.Errorf("min of an empty heap = %v, %s", k, e.s.ID)
		}
		m.done()
		return nil
	}
	if !ok {
		return fmt.Errorf("min = none, want one of %d", len(m.ents))
	}
	want := slices.Min(m.keys)
	i := slices.Index(m.ents, e)
	if i < 0 || k != want || m.keys[i] != k {
		return fmt.Errorf("min = %v (%s, reference index %d), want %v", k, e.s.ID, i, want)
	}
	m.h.popTop()
	m.h.release(e)
	m.drop(i)
	m.done()
	return nil
}

// drain pops every entry and checks they come in the order of a sort of
// the reference.
func (m *heapModel) drain() error {
	sorted := slices.Sorted(slices.Values(m.keys))
	for i, want := range sorted {
		k, _, ok := m.h.min()
		if !ok || k != want {
			return fmt.Errorf("drain: pop %d = %v (%v), want %v", i, k, ok, want)
		}
		if err := m.pop(); err != nil {
			return fmt.Errorf("drain: pop %d: %w", i, err)
		}
	}
	return m.pop() // of an empty heap
}

// heapOp is one operation of the heap model: kind 0 push, 1 reindex,
// 2 release, 3 pop; pick chooses the entry, d the key after the clock.
type heapOp struct {
	kind int
	pick int
	d    int64 // ns after the clock; math.MinInt64 or MaxInt64 as such
}

// apply runs op at clock now.
func (m *heapModel) apply(op heapOp, now int64) error {
	key := now + op.d
	switch op.d {
	case math.MinInt64, math.MaxInt64:
		key = op.d
	}
	if len(m.ents) == 0 && (op.kind == 1 || op.kind == 2) {
		op.kind = 0
	}
	switch op.kind {
	case 0:
		m.push(key)
	case 1:
		m.reindex(op.pick%len(m.ents), key)
	case 2:
		m.release(op.pick % len(m.ents))
	default:
		if err := m.pop(); err != nil {
			return err
		}
	}
	if m.h.live != len(m.ents) || len(m.h.items) > 2*m.h.live+64 {
		return fmt.Errorf("%d live in the heap, %d in the reference, %d items", m.h.live, len(m.ents), len(m.h.items))
	}
	return nil
}

// heapPhases weighs push, reindex, release and pop in each phase: growth,
// churn over a few entries, touch storms on a few entries (stale items),
// mass expiry and drain (renumbering once most slots are free).
var heapPhases = [...][4]int{
	{70, 15, 5, 10},
	{30, 20, 25, 25},
	{2, 90, 3, 5},
	{1, 2, 2, 95},
	{5, 5, 85, 5},
}

// randomHeapOps returns a generator of heap operations in phases.
func randomHeapOps(r *rand.Rand) func(size int) heapOp {
	phase, left := 0, 0
	return func(size int) heapOp {
		if left == 0 {
			phase, left = r.IntN(len(heapPhases)), 100+r.IntN(6000)
		}
		left--
		w := heapPhases[phase]
		if phase == 1 && size > 64 || size > 5000 {
			w = [4]int{1, 1, 49, 49} // keep churn small and growth bounded
		}
		op := heapOp{pick: r.IntN(1 << 20), d: r.Int64N(int64(30 * time.Second))}
		if phase == 2 {
			op.pick %= 8
		}
		switch r.IntN(64) {
		case 0:
			op.d = math.MinInt64
		case 1:
			op.d = math.MaxInt64
		case 2, 3, 4, 5:
			op.d = op.d / int64(time.Second) * int64(time.Second) // ties
		}
		p := r.IntN(w[0] + w[1] + w[2] + w[3])
		for op.kind = 0; op.kind < 3 && p >= w[op.kind]; op.kind++ {
			p -= w[op.kind]
		}
		return op
	}
}

// modelOps is how many operations the model tests run: MEDIASVC_MODEL_OPS
// if set, else full under a plain run and scaled down under -race or
// -short, where each costs ten times as much.
func modelOps(t testing.TB, full int) int {
	if v := os.Getenv("MEDIASVC_MODEL_OPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("MEDIASVC_MODEL_OPS=%q: want a positive number", v)
		}
		return n
	}
	if raceEnabled || testing.Short() {
		return full / 20
	}
	return full
}

// TestExpiryHeapModel runs millions of random heap operations against the
// reference, checking every minimum and the full invariants every thousand
// operations, at every phase change and whenever the heap compacts small.
func TestExpiryHeapModel(t *testing.T) {
	n := modelOps(t, 2_000_000)
	for seed := range uint64(2) {
		r := rand.New(rand.NewPCG(seed, 77))
		m := newHeapModel()
		next := randomHeapOps(r)
		now := int64(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
		for i := range n / 2 {
			now += r.Int64N(int64(time.Millisecond))
			compactions := m.compact
			if err := m.apply(next(len(m.ents)), now); err != nil {
				t.Fatalf("seed %d, op %d: %v", seed, i, err)
			}
			if i%1000 == 0 || (m.compact != compactions && len(m.h.items) < 512) {
				if err := checkHeap(&m.h); err != nil {
					t.Fatalf("seed %d, op %d: %v", seed, i, err)
				}
			}
		}
		if err := m.drain(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if err := checkHeap(&m.h); err != nil {
			t.Fatalf("seed %d, emptied: %v", seed, err)
		}
		if m.compact == 0 || m.renum == 0 {
			t.Fatalf("seed %d: %d compactions, %d renumberings: the run misses a path", seed, m.compact, m.renum)
		}
		t.Logf("seed %d: %d heap operations, %d compactions, %d renumberings", seed, m.ops, m.compact, m.renum)
	}
}

// TestExpiryHeapEmptyCompaction is issue 8 at the heap: releasing the last
// of 65 entries compacts the heap to no item, which must leave it empty
// and usable.
func TestExpiryHeapEmptyCompaction(t *testing.T) {
	for _, n := range []int{1, 64, 65, 66, 130} {
		m := newHeapModel()
		for i := range n {
			m.push(int64(i))
		}
		for len(m.ents) > 0 {
			m.release(len(m.ents) - 1)
		}
		if len(m.h.items) > 64 || m.h.live != 0 {
			t.Fatalf("n=%d: %d items, %d live after releasing all", n, len(m.h.items), m.h.live)
		}
		m.push(1)
		if err := m.pop(); err != nil {
			t.Fatal(err)
		}
		if err := checkHeap(&m.h); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
	}
}

// decodeHeapOps turns bytes into heap operations, two bytes each.
func decodeHeapOps(data []byte) []heapOp {
	ops := make([]heapOp, 0, len(data)/2)
	for ; len(data) >= 2; data = data[2:] {
		op := heapOp{kind: int(data[0] & 3), pick: int(data[0] >> 2), d: int64(data[1]) * int64(100*time.Millisecond)}
		switch data[1] {
		case 0:
			op.d = math.MinInt64
		case 255:
			op.d = math.MaxInt64
		}
		if data[0]>>2 == 63 && op.kind == 0 { // a burst of 1500 pushes
			for range 1500 {
				ops = append(ops, heapOp{d: op.d})
			}
			continue
		}
		ops = append(ops, op)
	}
	return ops
}

// FuzzExpiryHeap drives the heap model with operations decoded from bytes
// and checks the invariants after every operation.
func FuzzExpiryHeap(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 3, 0, 3, 0})
	f.Add([]byte{0xfc, 10, 0xfc, 20, 0x03, 0, 0x03, 0, 0x02, 5})
	f.Fuzz(func(t *testing.T, data []byte) {
		m := newHeapModel()
		now := int64(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
		for i, op := range decodeHeapOps(data) {
			now += int64(time.Millisecond)
			if err := m.apply(op, now); err != nil {
				t.Fatalf("op %d %+v: %v", i, op, err)
			}
			if len(m.ents) < 200 || i%256 == 0 {
				if err := checkHeap(&m.h); err != nil {
					t.Fatalf("op %d %+v: %v", i, op, err)
				}
			}
		}
		if err := m.drain(); err != nil {
			t.Fatal(err)
		}
		if err := checkHeap(&m.h); err != nil {
			t.Fatal(err)
		}
	})
}
