package memstore

import (
	"context"
	"fmt"
	"testing"

	"mediasvc/ports/storetest"
)

// TestStoreModel runs the store-level model (ports/storetest) against a
// Store of one shard, where bursts and mass expiries renumber the heap's
// slots, and of four, checking the map, heaps and quota counters against
// each other every thousand operations.
func TestStoreModel(t *testing.T) {
	total := 0
	for _, shards := range []int{1, 4} {
		t.Run(fmt.Sprint("shards=", shards), func(t *testing.T) {
			st := New(Options{Shards: shards})
			renumbered, slots := 0, make([]int, shards)
			calls := storetest.RunModel(t, st, storetest.ModelConfig{
				Ops:  modelOps(t, 1_000_000),
				Seed: uint64(shards),
				Invariants: func(t *testing.T) {
					checkInvariants(t, st)
					for i := range st.shards {
						if n := len(st.shards[i].exp.ents); n < slots[i] {
							renumbered++
						} else {
							slots[i] = n
						}
					}
				},
			})
			if shards == 1 && renumbered == 0 {
				t.Fatal("the heap never renumbered its slots: the run misses a path")
			}
			total += calls
			t.Logf("%d store calls, %d renumberings seen", calls, renumbered)
		})
	}
	t.Logf("%d store calls in all", total)
}

// FuzzStore drives a Store and the model with operations decoded from
// bytes (storetest.DecodeOps), checking the store's invariants after every
// operation while it is small (and every 256th after) and at the end. The
// first byte picks one shard or four.
func FuzzStore(f *testing.F) {
	f.Add([]byte{0, 0, 1, 10, 1, 0, 7, 0, 255})
	f.Add([]byte{1, 9, 0, 5, 8, 0, 255, 7, 0, 255})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		ctx := context.Background()
		st := New(Options{Shards: 1 + 3*int(data[0]&1)})
		m := storetest.NewModel()
		for i, op := range storetest.DecodeOps(data[1:]) {
			if err := m.Apply(ctx, st, op); err != nil {
				t.Fatalf("op %d: %v", i, err)
			}
			// Full checks cost O(n): every operation while the store is
			// small, where the edge cases are, then every 256th.
			if m.Len() < 32 || i%256 == 0 {
				checkInvariants(t, st)
				if t.Failed() {
					t.Fatalf("after op %d %v", i, op)
				}
			}
		}
		if err := m.Check(ctx, st); err != nil {
			t.Fatal(err)
		}
		for _, op := range []storetest.Op{{Kind: storetest.OpAdvance, Arg: 1 << 40}, {Kind: storetest.OpPopExpired, Arg: storetest.MaxIDs}} {
			if err := m.Apply(ctx, st, op); err != nil {
				t.Fatal(err)
			}
		}
		checkInvariants(t, st)
		if n, _ := st.Count(ctx); n != 0 || m.Len() != 0 {
			t.Fatalf("%d stored, %d in the model after popping all", n, m.Len())
		}
	})
}

// The model compares the quota counters only of a QuotaReporter.
var _ storetest.QuotaReporter = (*Store)(nil)
