package memstore

import (
	"cmp"
	"context"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
	"mediasvc/ports/storetest"
)

// baseline is the seed's design, kept as the benchmarks' yardstick: one map
// under one RWMutex, quota counted under the same lock, and expiry found by
// scanning every session.
type baseline struct {
	mu       sync.RWMutex
	m        map[domain.SessionID]*domain.Session
	byDevice map[domain.DeviceID]int
	byOwner  map[string]int
}

var _ ports.SessionStore = (*baseline)(nil)

func newBaseline() *baseline {
	return &baseline{
		m:        make(map[domain.SessionID]*domain.Session),
		byDevice: make(map[domain.DeviceID]int),
		byOwner:  make(map[string]int),
	}
}

func (b *baseline) Create(_ context.Context, s domain.Session, q domain.Quota) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.m[s.ID]; ok {
		return fmt.Errorf("create session %s: %w", s.ID, domain.ErrSessionExists)
	}
	switch {
	case q.Total > 0 && len(b.m) >= q.Total:
		return fmt.Errorf("create session %s: total limit %d: %w", s.ID, q.Total, domain.ErrLimitExceeded)
	case q.PerDevice > 0 && b.byDevice[s.DeviceID] >= q.PerDevice:
		return fmt.Errorf("create session %s: per-device limit %d for %s: %w", s.ID, q.PerDevice, s.DeviceID, domain.ErrLimitExceeded)
	case q.PerOwner > 0 && b.byOwner[s.Owner] >= q.PerOwner:
		return fmt.Errorf("create session %s: per-owner limit %d for %s: %w", s.ID, q.PerOwner, s.Owner, domain.ErrLimitExceeded)
	}
	b.m[s.ID] = &s
	b.byDevice[s.DeviceID]++
	b.byOwner[s.Owner]++
	return nil
}

func (b *baseline) Get(_ context.Context, id domain.SessionID) (domain.Session, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	s, ok := b.m[id]
	if !ok {
		return domain.Session{}, fmt.Errorf("get session %s: %w", id, domain.ErrSessionNotFound)
	}
	return *s, nil
}

func (b *baseline) Update(_ context.Context, id domain.SessionID, fn func(*domain.Session) error) (domain.Session, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.m[id]
	if !ok {
		return domain.Session{}, fmt.Errorf("update session %s: %w", id, domain.ErrSessionNotFound)
	}
	s := *p
	if err := fn(&s); err != nil {
		return domain.Session{}, fmt.Errorf("update session %s: %w", id, err)
	}
	*p = s
	return s, nil
}

func (b *baseline) Touch(_ context.Context, id domain.SessionID, now time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.m[id]
	if !ok {
		return fmt.Errorf("touch session %s: %w", id, domain.ErrSessionNotFound)
	}
	return p.Touch(now)
}

func (b *baseline) Delete(_ context.Context, id domain.SessionID) (domain.Session, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.m[id]
	if !ok {
		return domain.Session{}, fmt.Errorf("delete session %s: %w", id, domain.ErrSessionNotFound)
	}
	b.removeLocked(p)
	return *p, nil
}

func (b *baseline) removeLocked(p *domain.Session) {
	delete(b.m, p.ID)
	if b.byDevice[p.DeviceID]--; b.byDevice[p.DeviceID] == 0 {
		delete(b.byDevice, p.DeviceID)
	}
	if b.byOwner[p.Owner]--; b.byOwner[p.Owner] == 0 {
		delete(b.byOwner, p.Owner)
	}
}

// PopExpired scans every session under the store-wide lock, as the seed's
// cleanup did, then sorts what it found.
func (b *baseline) PopExpired(_ context.Context, now time.Time, n int) ([]domain.Session, error) {
	if n <= 0 {
		return nil, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var found []*domain.Session
	for _, p := range b.m {
		if p.Expired(now) {
			found = append(found, p)
		}
	}
	slices.SortFunc(found, func(x, y *domain.Session) int { return x.ExpiresAt.Compare(y.ExpiresAt) })
	found = found[:min(n, len(found))]
	out := make([]domain.Session, len(found))
	for i, p := range found {
		out[i] = *p
		b.removeLocked(p)
	}
	return out, nil
}

func (b *baseline) Count(context.Context) (int, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.m), nil
}

// benchBase is the instant preloaded sessions are created at.
var benchBase = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

const benchTTL = time.Hour

var benchDevices = func() []domain.DeviceID {
	d := make([]domain.DeviceID, 256)
	for i := range d {
		d[i] = domain.DeviceID(fmt.Sprint("device-", i))
	}
	return d
}()

var benchOwners = func() []string {
	o := make([]string, 1024)
	for i := range o {
		o[i] = fmt.Sprint("owner-", i)
	}
	return o
}()

// benchSession is the i-th preloaded session; only its id is its own.
func benchSession(id domain.SessionID, i int, created time.Time) domain.Session {
	s := domain.NewSession(id, benchDevices[i%len(benchDevices)], domain.RoleViewer, benchOwners[i%len(benchOwners)], benchTTL, created)
	s.Kind = "ws"
	s.State = domain.StateConnected
	return s
}

// benchQuota is generous enough never to refuse, so Create pays for the
// quota check without failing.
var benchQuota = domain.Quota{Total: 4 << 20, PerDevice: 1 << 20, PerOwner: 1 << 20}

// fixture is a preloaded store and the ids in it.
type fixture struct {
	store string
	size  int
	ids   []domain.SessionID
	st    ports.SessionStore
	// popped counts sessions BenchmarkPopExpired has popped and created
	// again at the back of the expiry order.
	popped int
}

// current holds the one fixture built last: building 1M sessions takes a
// second, so a sub-benchmark builds once and reuses its store for every b.N,
// -count and -cpu run, and the previous fixture is dropped to save memory.
var current struct {
	sync.Mutex
	f *fixture
}

var benchStores = []struct {
	name string
	make func() ports.SessionStore
}{
	{"baseline", func() ports.SessionStore { return newBaseline() }},
	{"memstore", func() ports.SessionStore { return New(Options{}) }},
}

var benchSizes = []struct {
	name string
	n    int
}{{"1k", 1_000}, {"100k", 100_000}, {"1M", 1_000_000}}

// preload returns a store of the named kind with size sessions whose
// expiries are one millisecond apart, session i expiring at
// benchBase + benchTTL + i ms.
func preload(b *testing.B, store string, mk func() ports.SessionStore, size int) *fixture {
	current.Lock()
	defer current.Unlock()
	if f := current.f; f != nil && f.store == store && f.size == size {
		return f
	}
	current.f = nil
	runtime.GC()
	f := &fixture{store: store, size: size, st: mk(), ids: make([]domain.SessionID, size)}
	ctx := context.Background()
	for i := range size {
		f.ids[i] = domain.SessionID(fmt.Sprintf("s%07d", i))
		if err := f.st.Create(ctx, benchSession(f.ids[i], i, benchBase.Add(time.Duration(i)*time.Millisecond)), benchQuota); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	current.f = f
	return f
}

// BenchmarkMixed runs 80% Get, 15% Touch and 5% Delete+Create (of the same
// id, so the size stays put) on random preloaded sessions from GOMAXPROCS
// goroutines. Touch advances a per-goroutine clock, so touched sessions move
// to the back of the expiry order as in production.
func BenchmarkMixed(b *testing.B) {
	for _, size := range benchSizes {
		for _, store := range benchStores {
			b.Run("sessions="+size.name+"/store="+store.name, func(b *testing.B) {
				f := preload(b, store.name, store.make, size.n)
				var seq atomic.Uint64
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					g := seq.Add(1)
					r := rand.NewPCG(g, uint64(time.Now().UnixNano()))
					now := benchBase.Add(time.Duration(g) * time.Minute)
					n := uint64(len(f.ids))
					for pb.Next() {
						x := r.Uint64()
						i := int((x >> 32) * n >> 32)
						switch op := x & 0xffff % 100; {
						case op < 80:
							_, _ = f.st.Get(ctx, f.ids[i])
						case op < 95:
							now = now.Add(time.Microsecond)
							_ = f.st.Touch(ctx, f.ids[i], now)
						default:
							if s, err := f.st.Delete(ctx, f.ids[i]); err == nil {
								s.ExpiresAt = now.Add(benchTTL)
								_ = f.st.Create(ctx, s, benchQuota)
							}
						}
					}
				})
			})
		}
	}
}

// BenchmarkPopExpired pops the 1000 earliest of 1M sessions, all expired.
// Between iterations (timer stopped) the popped sessions are created again
// expiring after every other, so each iteration finds the next 1000.
func BenchmarkPopExpired(b *testing.B) {
	const size, k = 1_000_000, 1000
	for _, store := range benchStores {
		b.Run("sessions=1M/k=1000/store="+store.name, func(b *testing.B) {
			// Its own fixture: Mixed's Touches reorder expiries.
			f := preload(b, "expiry/"+store.name, store.make, size)
			ctx := context.Background()
			// Expiries run one ms apart from benchBase+TTL; the first
			// f.popped of them were popped and created again at the back.
			st := f.st
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				now := benchBase.Add(benchTTL + time.Duration(f.popped+k-1)*time.Millisecond)
				out, err := st.PopExpired(ctx, now, k)
				if err != nil || len(out) != k {
					b.Fatalf("PopExpired = %d sessions, %v; want %d", len(out), err, k)
				}
				b.StopTimer()
				for _, s := range out {
					s.ExpiresAt = s.ExpiresAt.Add(size * time.Millisecond)
					if err := st.Create(ctx, s, benchQuota); err != nil {
						b.Fatal(err)
					}
				}
				f.popped += k
				b.StartTimer()
			}
		})
	}
}

// BenchmarkStoreOps is the shared store benchmark (storetest.Bench), for
// comparison with redisstore's in the same run.
func BenchmarkStoreOps(b *testing.B) {
	storetest.Bench(b, 8, func(*testing.B) ports.SessionStore { return New(Options{}) })
}

// reapEvery is how often BenchmarkGetDuringExpiry's background goroutine
// runs the expiry pass. The service reaps every second; 100 ms compresses
// time so that a benchmark of a few seconds sees several passes.
const reapEvery = 100 * time.Millisecond

// latencySamples caps the Get latencies each goroutine keeps: every one up
// to the cap, then a uniform sample of all (reservoir sampling).
const latencySamples = 1 << 20

// latencies is one goroutine's record of operation latencies in ns.
type latencies struct {
	samples []int64 // a uniform sample of ops latencies
	ops     int64   // latencies recorded
	max     int64   // exact, whether sampled or not
	r       *rand.PCG
}

func newLatencies(capacity int, seed uint64) *latencies {
	return &latencies{samples: make([]int64, 0, capacity), r: rand.NewPCG(seed, 0x6c6174)}
}

func (l *latencies) add(ns int64) {
	l.ops++
	l.max = max(l.max, ns)
	if len(l.samples) < cap(l.samples) {
		l.samples = append(l.samples, ns)
		return
	}
	// Algorithm R: the ops-th latency replaces a random sample with
	// probability cap/ops.
	if j, _ := bits.Mul64(l.r.Uint64(), uint64(l.ops)); j < uint64(len(l.samples)) {
		l.samples[j] = ns
	}
}

// reportLatencies merges the goroutines' samples, each weighted by the ops
// it stands for, and reports the p50, p99, p99.9 and max latencies.
func reportLatencies(b *testing.B, all []*latencies) {
	type weighted struct {
		ns int64
		w  float64
	}
	var (
		merged []weighted
		total  float64
		maxNS  int64
	)
	for _, l := range all {
		maxNS = max(maxNS, l.max)
		if len(l.samples) == 0 {
			continue
		}
		w := float64(l.ops) / float64(len(l.samples))
		for _, ns := range l.samples {
			merged = append(merged, weighted{ns, w})
		}
		total += float64(l.ops)
	}
	if len(merged) == 0 {
		return
	}
	slices.SortFunc(merged, func(x, y weighted) int { return cmp.Compare(x.ns, y.ns) })
	quantile := func(q float64) float64 {
		var acc float64
		for _, s := range merged {
			if acc += s.w; acc >= q*total {
				return float64(s.ns)
			}
		}
		return float64(merged[len(merged)-1].ns)
	}
	b.ReportMetric(quantile(0.50), "p50-ns")
	b.ReportMetric(quantile(0.99), "p99-ns")
	b.ReportMetric(quantile(0.999), "p99.9-ns")
	b.ReportMetric(float64(maxNS), "max-ns")
}

// startReaper runs st's expiry pass, PopExpired(now, 1000), every reapEvery
// in a goroutine until the returned stop is called; stop waits for it and
// returns how many passes ran and how long they took in all.
func startReaper(b *testing.B, st ports.SessionStore, now time.Time) (stop func() (passes int, took time.Duration)) {
	done := make(chan struct{})
	var (
		wg     sync.WaitGroup
		passes int
		took   time.Duration
	)
	wg.Go(func() {
		t := time.NewTicker(reapEvery)
		defer t.Stop()
		ctx := context.Background()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			t0 := time.Now()
			out, err := st.PopExpired(ctx, now, 1000)
			took += time.Since(t0)
			passes++
			if err != nil || len(out) != 0 {
				// Popping would change the fixture under the Gets.
				b.Errorf("PopExpired = %d sessions, %v; want none", len(out), err)
				return
			}
		}
	})
	return sync.OnceValues(func() (int, time.Duration) {
		close(done)
		wg.Wait()
		return passes, took
	})
}

// BenchmarkGetDuringExpiry measures Get latency while a background
// goroutine runs the store's expiry pass every reapEvery. The pass runs at
// an instant before any preloaded session expires, so it pops nothing: the
// baseline still scans every session under its only lock, stalling every
// Get behind it, whereas memstore peeks at each shard's heap top under that
// shard's read lock. Each Get is timed on its own; besides ns/op (which
// includes the timing) it reports the p50, p99, p99.9 and max latencies.
// Throughput alone hides the difference on a small machine.
func BenchmarkGetDuringExpiry(b *testing.B) {
	// Before every preloaded session's expiry at benchBase+benchTTL+i ms.
	reapNow := benchBase.Add(benchTTL / 2)
	for _, size := range benchSizes {
		if size.n < 100_000 {
			continue
		}
		for _, store := range benchStores {
			b.Run("sessions="+size.name+"/store="+store.name, func(b *testing.B) {
				// Its own fixture: Mixed's Touches reorder expiries, and
				// PopExpired's re-creations move them past reapNow's reach.
				f := preload(b, "getexpiry/"+store.name, store.make, size.n)
				ctx := context.Background()
				var (
					seq atomic.Uint64
					mu  sync.Mutex
					all []*latencies
				)
				stop := startReaper(b, f.st, reapNow)
				defer stop()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					g := seq.Add(1)
					r := rand.NewPCG(g, 0x676574)
					lat := newLatencies(min(b.N, latencySamples), g)
					defer func() {
						mu.Lock()
						all = append(all, lat)
						mu.Unlock()
					}()
					n := uint64(len(f.ids))
					for pb.Next() {
						id := f.ids[(r.Uint64()>>32)*n>>32]
						t0 := time.Now()
						_, err := f.st.Get(ctx, id)
						lat.add(int64(time.Since(t0)))
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				passes, took := stop()
				reportLatencies(b, all)
				b.ReportMetric(float64(passes), "passes")
				if passes > 0 {
					b.ReportMetric(float64(took.Nanoseconds())/float64(passes), "ns/pass")
				}
			})
		}
	}
}
