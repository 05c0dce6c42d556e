package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
)

// BenchSessions is how many sessions Bench preloads.
const BenchSessions = 10_000

// Bench measures a store's operations from GOMAXPROCS×parallel goroutines
// on BenchSessions preloaded sessions, reporting throughput (ops/s) and
// the 99th percentile latency (p99-µs) next to ns/op. newStore must return
// an empty store. Run it for several implementations in one `go test`
// invocation to compare them on the same machine at the same time.
func Bench(b *testing.B, parallel int, newStore func(b *testing.B) ports.SessionStore) {
	ctx := context.Background()
	st := newStore(b)
	ids := make([]domain.SessionID, BenchSessions)
	for i := range ids {
		ids[i] = domain.SessionID(fmt.Sprintf("bench-%06d", i))
		s := session(string(ids[i]), fmt.Sprint("dev", i%64), fmt.Sprint("owner", i%256), 0)
		s.TTL = time.Hour
		s.ExpiresAt = base.Add(time.Hour)
		if err := st.Create(ctx, s, domain.Quota{}); err != nil {
			b.Fatal(err)
		}
	}
	var fresh atomic.Int64
	ops := []struct {
		name string
		op   func(i int) error
	}{
		{"Get", func(i int) error { _, err := st.Get(ctx, ids[i%len(ids)]); return err }},
		{"Touch", func(i int) error { return st.Touch(ctx, ids[i%len(ids)], base.Add(time.Duration(i)*time.Microsecond)) }},
		{"Update", func(i int) error {
			_, err := st.Update(ctx, ids[i%len(ids)], func(s *domain.Session) error { s.Reason = "bench"; return nil })
			return err
		}},
		{"CreateDelete", func(int) error {
			id := fmt.Sprint("new-", fresh.Add(1))
			if err := st.Create(ctx, session(id, "devx", "ownerx", 0), domain.Quota{Total: 1 << 30, PerDevice: 1 << 30, PerOwner: 1 << 30}); err != nil {
				return err
			}
			_, err := st.Delete(ctx, domain.SessionID(id))
			return err
		}},
	}
	for _, o := range ops {
		b.Run("op="+o.name, func(b *testing.B) { measure(b, parallel, o.op) })
	}
	// Pop 100 expired sessions among the preloaded ones (created, timer
	// stopped, before each pop): the latency is of the pop alone.
	b.Run("op=PopExpired100", func(b *testing.B) {
		var lat []time.Duration
		for i := range b.N {
			b.StopTimer()
			for j := range 100 {
				s := session(fmt.Sprint("exp-", i, "-", j), "devy", "ownery", -2*ttl)
				if err := st.Create(ctx, s, domain.Quota{}); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			t0 := time.Now()
			out, err := st.PopExpired(ctx, base, 100)
			lat = append(lat, time.Since(t0))
			if err != nil || len(out) != 100 {
				b.Fatalf("PopExpired = %d, %v", len(out), err)
			}
		}
		report(b, lat, 100)
	})
}

// measure runs op in parallel and reports ops/s and p99 latency.
func measure(b *testing.B, parallel int, op func(i int) error) {
	var (
		mu  sync.Mutex
		all []time.Duration
		seq atomic.Int64
	)
	b.SetParallelism(parallel)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		lat := make([]time.Duration, 0, 1024)
		for pb.Next() {
			i := int(seq.Add(1))
			t0 := time.Now()
			if err := op(i); err != nil {
				b.Error(err)
				return
			}
			lat = append(lat, time.Since(t0))
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	b.StopTimer()
	el := time.Since(start)
	b.ReportMetric(float64(len(all))/el.Seconds(), "ops/s")
	report(b, all, 0)
}

// report adds the p99 latency, and the per-session rate when each op
// handles perOp sessions.
func report(b *testing.B, lat []time.Duration, perOp int) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e3, "p99-µs")
	if perOp > 0 {
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		b.ReportMetric(float64(perOp*len(lat))/sum.Seconds(), "sessions/s")
	}
}
