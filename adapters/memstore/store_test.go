package memstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/goleak"

	"mediasvc/domain"
	"mediasvc/ports"
	"mediasvc/ports/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestContract(t *testing.T) {
	for _, shards := range []int{1, 4, 0} {
		t.Run(fmt.Sprint("shards=", shards), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) ports.SessionStore {
				st := New(Options{Shards: shards})
				t.Cleanup(func() { checkInvariants(t, st) })
				return st
			})
		})
	}
}

// TestContractBaseline runs the suite against the benchmarks' baseline, so
// the comparison is between two correct stores.
func TestContractBaseline(t *testing.T) {
	storetest.Run(t, func(t *testing.T) ports.SessionStore { return newBaseline() })
}

// checkInvariants verifies that map, heaps and quota counters agree.
func checkInvariants(t *testing.T, st *Store) {
	t.Helper()
	total := 0
	devices := map[domain.DeviceID]int{}
	owners := map[string]int{}
	for i := range st.shards {
		sh := &st.shards[i]
		sh.mu.RLock()
		h := &sh.exp
		if len(sh.m) != h.live || h.live+len(h.free) != len(h.ents) || len(h.gen) != len(h.ents) {
			t.Errorf("shard %d: %d in map, %d live, %d free, %d slots, %d gens", i, len(sh.m), h.live, len(h.free), len(h.ents), len(h.gen))
		}
		if len(h.items) > 2*h.live+64 {
			t.Errorf("shard %d: %d items for %d live entries", i, len(h.items), h.live)
		}
		for _, slot := range h.free {
			if h.ents[slot] != nil {
				t.Errorf("shard %d: free slot %d holds %s", i, slot, h.ents[slot].s.ID)
			}
		}
		liveItems := map[int32]int{}
		for j, it := range h.items {
			if p := (j - 1) / arity; j > 0 && it.key.before(h.items[p].key) {
				t.Errorf("shard %d: heap order broken at %d", i, j)
			}
			if it.gen != h.gen[it.slot] {
				continue // stale
			}
			liveItems[it.slot]++
			e := h.ents[it.slot]
			if e == nil || e.slot != it.slot {
				t.Fatalf("shard %d: live item %d names slot %d holding %v", i, j, it.slot, e)
			}
			if it.key != keyOf(e.s.ExpiresAt) || it.key != e.key {
				t.Errorf("shard %d: entry %s indexed at a stale expiry", i, e.s.ID)
			}
		}
		for id, e := range sh.m {
			if e.s.ID != id || h.ents[e.slot] != e || liveItems[e.slot] != 1 {
				t.Errorf("shard %d: entry %s in slot %d has %d live items", i, id, e.slot, liveItems[e.slot])
			}
			devices[e.s.DeviceID]++
			owners[e.s.Owner]++
		}
		total += len(sh.m)
		sh.mu.RUnlock()
	}
	st.quota.mu.Lock()
	defer st.quota.mu.Unlock()
	if got := st.quota.total.Load(); got != int64(total) {
		t.Errorf("total counter %d, stored %d", got, total)
	}
	if fmt.Sprint(st.quota.byDevice) != fmt.Sprint(devices) {
		t.Errorf("device counters %v, stored %v", st.quota.byDevice, devices)
	}
	if fmt.Sprint(st.quota.byOwner) != fmt.Sprint(owners) {
		t.Errorf("owner counters %v, stored %v", st.quota.byOwner, owners)
	}
}

func TestNewShards(t *testing.T) {
	def := max(64, 4*runtime.GOMAXPROCS(0))
	tests := []struct{ in, want int }{
		{1, 1}, {2, 2}, {3, 4}, {5, 8}, {64, 64}, {65, 128}, {0, def}, {-1, def},
	}
	for _, tc := range tests {
		st := New(Options{Shards: tc.in})
		if got := len(st.shards); got < tc.want || got&(got-1) != 0 || (tc.in > 0 && got != tc.want) {
			t.Errorf("New(Shards %d) made %d shards, want %d (a power of two)", tc.in, got, tc.want)
		}
	}
	if sz := unsafe.Sizeof(shard{}); sz%64 != 0 {
		t.Errorf("shard is %d bytes, not a multiple of a cache line", sz)
	}
}

func TestCanceledContext(t *testing.T) {
	st := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	s := domain.NewSession("a", "d", domain.RoleViewer, "o", time.Minute, time.Now())
	if err := st.Create(context.Background(), s, domain.Quota{}); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, errGet := st.Get(ctx, "a")
	_, errUpdate := st.Update(ctx, "a", func(*domain.Session) error { return nil })
	_, errDelete := st.Delete(ctx, "a")
	_, errPop := st.PopExpired(ctx, time.Now().Add(time.Hour), 1)
	_, errCount := st.Count(ctx)
	for name, err := range map[string]error{
		"Create": st.Create(ctx, s, domain.Quota{}), "Get": errGet, "Update": errUpdate,
		"Touch": st.Touch(ctx, "a", time.Now()), "Delete": errDelete, "PopExpired": errPop, "Count": errCount,
	} {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context = %v, want context.Canceled", name, err)
		}
	}
	if n, _ := st.Count(context.Background()); n != 1 {
		t.Errorf("Count = %d after canceled calls, want 1", n)
	}
}

func TestUpdateImmutableFields(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	for name, fn := range map[string]func(*domain.Session){
		"id":     func(s *domain.Session) { s.ID = "b" },
		"device": func(s *domain.Session) { s.DeviceID = "d2" },
		"owner":  func(s *domain.Session) { s.Owner = "o2" },
	} {
		t.Run(name, func(t *testing.T) {
			st := New(Options{})
			s := domain.NewSession("a", "d", domain.RoleViewer, "o", time.Minute, now)
			if err := st.Create(ctx, s, domain.Quota{}); err != nil {
				t.Fatal(err)
			}
			_, err := st.Update(ctx, "a", func(s *domain.Session) error { fn(s); return nil })
			if !errors.Is(err, errImmutable) {
				t.Fatalf("Update changing %s = %v, want errImmutable", name, err)
			}
			if got, _ := st.Get(ctx, "a"); got != s {
				t.Fatalf("stored %+v after refused Update, want %+v", got, s)
			}
			checkInvariants(t, st)
		})
	}
}

// TestPopExpiredAcrossShards checks the merge order with many sessions
// spread over many shards, popped in uneven batches.
func TestPopExpiredAcrossShards(t *testing.T) {
	ctx := context.Background()
	st := New(Options{Shards: 16})
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 2000
	for i := range n {
		o := (i * 7919) % n // a permutation
		s := domain.NewSession(domain.SessionID(fmt.Sprint("s", o)), "d", domain.RoleViewer, "o", time.Minute, base.Add(time.Duration(o)*time.Millisecond))
		if err := st.Create(ctx, s, domain.Quota{}); err != nil {
			t.Fatal(err)
		}
	}
	now := base.Add(time.Minute + (n/2-1)*time.Millisecond) // half expired
	var got []domain.Session
	for _, k := range []int{1, 7, 100, 333, 10000} {
		p, err := st.PopExpired(ctx, now, k)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p...)
	}
	if len(got) != n/2 {
		t.Fatalf("popped %d, want %d", len(got), n/2)
	}
	for i, s := range got {
		if want := domain.SessionID(fmt.Sprint("s", i)); s.ID != want {
			t.Fatalf("popped[%d] = %s, want %s", i, s.ID, want)
		}
	}
	checkInvariants(t, st)
}

func TestGetZeroAlloc(t *testing.T) {
	ctx := context.Background()
	st := New(Options{})
	now := time.Now()
	s := domain.NewSession("a", "d", domain.RoleViewer, "o", time.Minute, now)
	if err := st.Create(ctx, s, domain.Quota{}); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := st.Get(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Millisecond)
		if err := st.Touch(ctx, "a", now); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Get+Touch allocate %v times, want 0", allocs)
	}
}

// TestCompact empties most of a shard, so its heap renumbers its slots, and
// checks the order survives.
func TestCompact(t *testing.T) {
	ctx := context.Background()
	st := New(Options{Shards: 1})
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 5000
	for i := range n {
		o := (i * 7919) % n
		s := domain.NewSession(domain.SessionID(fmt.Sprint("s", o)), "d", domain.RoleViewer, "o", time.Minute, base.Add(time.Duration(o)*time.Millisecond))
		if err := st.Create(ctx, s, domain.Quota{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.PopExpired(ctx, base.Add(time.Hour), n-100); err != nil {
		t.Fatal(err)
	}
	if got := len(st.shards[0].exp.ents); got >= n/4 {
		t.Fatalf("%d slots after popping all but 100 of %d, want compacted", got, n)
	}
	checkInvariants(t, st)
	for i := range 100 {
		if err := st.Touch(ctx, domain.SessionID(fmt.Sprint("s", n-1-i)), base.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	checkInvariants(t, st)
	out, err := st.PopExpired(ctx, base.Add(time.Hour), n)
	if err != nil || len(out) != 100 {
		t.Fatalf("PopExpired = %d, %v", len(out), err)
	}
	for i, s := range out {
		if want := domain.SessionID(fmt.Sprint("s", n-1-i)); s.ID != want {
			t.Fatalf("popped[%d] = %s, want %s", i, s.ID, want)
		}
	}
}

// TestAgainstBaseline runs one random sequence of operations on a Store and
// on the benchmarks' baseline and requires the same answers.
func TestAgainstBaseline(t *testing.T) {
	ctx := context.Background()
	st, ref := New(Options{Shards: 4}), newBaseline()
	r := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	q := domain.Quota{Total: 150, PerDevice: 60, PerOwner: 40}
	now := base
	for step := range 20000 {
		now = now.Add(time.Duration(r.IntN(50)) * time.Millisecond)
		id := domain.SessionID(fmt.Sprint("s", r.IntN(300)))
		var a, b string
		switch op := r.IntN(10); op {
		case 0, 1, 2:
			s := domain.NewSession(id, domain.DeviceID(fmt.Sprint("d", r.IntN(4))), domain.RoleViewer, fmt.Sprint("o", r.IntN(6)), time.Duration(1+r.IntN(10))*time.Second+time.Duration(step), now)
			a, b = fmt.Sprint(st.Create(ctx, s, q)), fmt.Sprint(ref.Create(ctx, s, q))
		case 3:
			s1, e1 := st.Get(ctx, id)
			s2, e2 := ref.Get(ctx, id)
			a, b = fmt.Sprint(s1, e1), fmt.Sprint(s2, e2)
		case 4, 5:
			a, b = fmt.Sprint(st.Touch(ctx, id, now)), fmt.Sprint(ref.Touch(ctx, id, now))
		case 6:
			d := time.Duration(r.IntN(20)-5)*time.Second + time.Duration(step)
			fn := func(s *domain.Session) error { s.ExpiresAt = now.Add(d); return nil }
			s1, e1 := st.Update(ctx, id, fn)
			s2, e2 := ref.Update(ctx, id, fn)
			a, b = fmt.Sprint(s1, e1), fmt.Sprint(s2, e2)
		case 7:
			s1, e1 := st.Delete(ctx, id)
			s2, e2 := ref.Delete(ctx, id)
			a, b = fmt.Sprint(s1, e1), fmt.Sprint(s2, e2)
		case 8, 9:
			k := r.IntN(8)
			p1, e1 := st.PopExpired(ctx, now, k)
			p2, e2 := ref.PopExpired(ctx, now, k)
			// Expiries are unique (TTLs and updates add the step in ns),
			// so both must pick the same sessions; compare them as sets
			// and check the order separately.
			a, b = fmt.Sprint(sortedIDs(p1), e1), fmt.Sprint(sortedIDs(p2), e2)
			if !slices.IsSortedFunc(p1, func(x, y domain.Session) int { return x.ExpiresAt.Compare(y.ExpiresAt) }) {
				t.Fatalf("step %d: PopExpired not earliest first", step)
			}
		}
		if a != b {
			t.Fatalf("step %d: memstore %s\nbaseline %s", step, a, b)
		}
	}
	n1, _ := st.Count(ctx)
	n2, _ := ref.Count(ctx)
	if n1 != n2 {
		t.Fatalf("Count %d, baseline %d", n1, n2)
	}
	checkInvariants(t, st)
}

func sortedIDs(ss []domain.Session) []domain.SessionID {
	ids := make([]domain.SessionID, len(ss))
	for i, s := range ss {
		ids[i] = s.ID
	}
	slices.Sort(ids)
	return ids
}

// TestTouchKeepsHeapBounded touches a few sessions many times: the stale
// items they leave are dropped, so the heap stays within 2n+64.
func TestTouchKeepsHeapBounded(t *testing.T) {
	ctx := context.Background()
	st := New(Options{Shards: 1})
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		s := domain.NewSession(domain.SessionID(fmt.Sprint("s", i)), "d", domain.RoleViewer, "o", time.Minute, now)
		if err := st.Create(ctx, s, domain.Quota{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10000 {
		now = now.Add(time.Millisecond)
		if err := st.Touch(ctx, domain.SessionID(fmt.Sprint("s", i%3)), now); err != nil {
			t.Fatal(err)
		}
		if n := len(st.shards[0].exp.items); n > 2*3+64 {
			t.Fatalf("%d heap items for 3 sessions after %d touches", n, i+1)
		}
	}
	checkInvariants(t, st)
	out, err := st.PopExpired(ctx, now.Add(time.Hour), 10)
	if err != nil || len(out) != 3 {
		t.Fatalf("PopExpired = %d, %v; want 3", len(out), err)
	}
	if want := []domain.SessionID{"s1", "s2", "s0"}; !slices.Equal(popIDs(out), want) {
		t.Fatalf("PopExpired order %v, want %v", popIDs(out), want)
	}
}

func popIDs(ss []domain.Session) []domain.SessionID {
	ids := make([]domain.SessionID, len(ss))
	for i, s := range ss {
		ids[i] = s.ID
	}
	return ids
}

// TestDeleteEmptiesCompactedHeap is issue 8: the deletion that leaves a
// shard's heap with no live item compacts it to nothing, and heapifying an
// empty heap indexed item 0. Every session is deleted, the store ends empty
// with no quota held, and it still takes new sessions.
func TestDeleteEmptiesCompactedHeap(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, n := range []int{1, 2, 64, 65, 66, 200, 3000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			st := New(Options{Shards: 1})
			q := domain.Quota{Total: n, PerDevice: n, PerOwner: n}
			for round := range 3 {
				for i := range n {
					s := domain.NewSession(domain.SessionID(fmt.Sprint("s", i)), "d", domain.RoleViewer, "o", time.Minute, now)
					if err := st.Create(ctx, s, q); err != nil {
						t.Fatalf("round %d: %v", round, err)
					}
				}
				for i := range n {
					if _, err := st.Delete(ctx, domain.SessionID(fmt.Sprint("s", i))); err != nil {
						t.Fatalf("round %d: %v", round, err)
					}
				}
				checkInvariants(t, st)
				if c, _ := st.Count(ctx); c != 0 {
					t.Fatalf("round %d: Count = %d after deleting all", round, c)
				}
			}
		})
	}
}

// TestUpdatePanicLeavesStoreUnchanged: a panic in Update's fn unwinds
// before the store changes anything, and releases the shard lock.
func TestUpdatePanicLeavesStoreUnchanged(t *testing.T) {
	ctx := context.Background()
	st := New(Options{Shards: 1})
	s := domain.NewSession("a", "d", domain.RoleViewer, "o", time.Minute, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	if err := st.Create(ctx, s, domain.Quota{}); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("Update did not pass fn's panic on")
			}
		}()
		_, _ = st.Update(ctx, "a", func(p *domain.Session) error {
			p.ExpiresAt = p.ExpiresAt.Add(time.Hour)
			p.Reason = "half-way"
			panic("fn fails")
		})
	}()
	if got, err := st.Get(ctx, "a"); err != nil || got != s {
		t.Fatalf("after a panicking Update: %+v, %v; want %+v", got, err, s)
	}
	if _, err := st.Delete(ctx, "a"); err != nil { // the lock was released
		t.Fatal(err)
	}
	checkInvariants(t, st)
}
