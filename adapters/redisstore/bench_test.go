package redisstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mediasvc/domain"
	"mediasvc/ports"
	"mediasvc/ports/storetest"
)

// BenchmarkStoreOps is the shared store benchmark (storetest.Bench) against
// a redis-server it starts on loopback, with 8×GOMAXPROCS goroutines
// sharing one go-redis pool.
func BenchmarkStoreOps(b *testing.B) {
	rdb, _ := newClient(b)
	storetest.Bench(b, 8, func(b *testing.B) ports.SessionStore {
		if err := rdb.FlushAll(context.Background()).Err(); err != nil {
			b.Fatal(err)
		}
		return New(rdb, Options{Prefix: "bench:"})
	})
}

// BenchmarkGetPipelined reads sessions 100 per round trip (one pipeline
// of HGETALLs): the ceiling for bulk reads such as listing, against one
// round trip per Get in BenchmarkStoreOps.
func BenchmarkGetPipelined(b *testing.B) {
	rdb, _ := newClient(b)
	ctx := context.Background()
	st := New(rdb, Options{Prefix: "bench:"})
	const n = 10_000
	for i := range n {
		s := benchSession(fmt.Sprintf("p-%05d", i))
		if err := st.Create(ctx, s, noQuota); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j := range 100 {
				p.HGetAll(ctx, st.keys.session(domain.SessionID(fmt.Sprintf("p-%05d", (i*100+j)%n))))
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(100*b.N)/time.Since(start).Seconds(), "gets/s")
}
