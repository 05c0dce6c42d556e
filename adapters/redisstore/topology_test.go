package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mediasvc/adapters/redisstore/redistest"
	"mediasvc/domain"
	"mediasvc/ports"
	"mediasvc/ports/farmtest"
	"mediasvc/ports/storetest"
)

// The store, the bus and the leases against a real 3-primary Redis
// Cluster and a real Sentinel setup, started by the tests.

func newCluster(t *testing.T) *redis.ClusterClient {
	t.Helper()
	c := redistest.StartCluster(t, 3)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func flushAll(t *testing.T, rdb redis.UniversalClient) {
	t.Helper()
	ctx := context.Background()
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return c.FlushAll(ctx).Err() })
	} else {
		err = rdb.FlushAll(ctx).Err()
	}
	if err != nil {
		t.Fatalf("flush: %v", err)
	}
}

func TestContractCluster(t *testing.T) {
	rdb := newCluster(t)
	storetest.Run(t, func(t *testing.T) ports.SessionStore {
		flushAll(t, rdb)
		return New(rdb, Options{Prefix: "test:"})
	})
}

func TestContractSentinel(t *testing.T) {
	s := redistest.StartSentinel(t, 1, 1, time.Second)
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.Master, SentinelAddrs: []string{s.Sentinels[0].Addr}})
	t.Cleanup(func() { _ = rdb.Close() })
	storetest.Run(t, func(t *testing.T) ports.SessionStore {
		flushAll(t, rdb)
		return New(rdb, Options{Prefix: "test:", Wait: Wait{Replicas: 1, Timeout: 500 * time.Millisecond}})
	})
}

// TestClusterSpreadsSessions checks that sessions land on every primary,
// not on one slot.
func TestClusterSpreadsSessions(t *testing.T) {
	rdb := newCluster(t)
	ctx := context.Background()
	st := New(rdb, Options{})
	for i := range 64 {
		s := domain.NewSession(domain.SessionID(fmt.Sprint("s", i)), "dev", domain.RoleViewer, "alice", time.Minute, time.Now())
		if err := st.Create(ctx, s, domain.Quota{Total: 100}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	perNode := map[string]int64{}
	err := rdb.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		n, err := c.DBSize(ctx).Result()
		mu.Lock()
		perNode[c.Options().Addr] = n
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(perNode) != 3 {
		t.Fatalf("primaries = %v", perNode)
	}
	for addr, n := range perNode {
		if n < 5 {
			t.Errorf("primary %s holds %d keys of 64 sessions: not spread (%v)", addr, n, perNode)
		}
	}
}

// TestLeasesAndRegistryCluster takes, fences and releases a lease and
// lists instances on a cluster: every script is one slot.
func TestLeasesAndRegistryCluster(t *testing.T) {
	rdb := newCluster(t)
	ctx := context.Background()
	l := NewLeases(rdb, "l:", time.Minute)
	ls, err := l.Acquire(ctx, "dev1", "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(ctx, "dev1", "b"); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("second Acquire = %v, want ErrConflict", err)
	}
	if err := l.FencedWrite(ctx, ls, map[string]string{"state": "x"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx, ls); err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry(rdb, "r:", domain.Instance{ID: "a"}, time.Minute, quiet)
	if err := reg.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	if is, err := reg.Instances(ctx); err != nil || len(is) != 1 || is[0].ID != "a" {
		t.Fatalf("Instances = %+v, %v", is, err)
	}
	lim, err := NewLimiter(rdb, "r:", "owner", 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := lim.Allow(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := lim.Allow(ctx, "k"); !errors.Is(err, domain.ErrRateLimited) {
		t.Fatalf("second Allow = %v, want ErrRateLimited", err)
	}
	ms := loadAll(t)
	if done, err := Migrate(ctx, rdb, "m:", ms); err != nil || len(done) != len(ms) {
		t.Fatalf("Migrate on a cluster = %d, %v", len(done), err)
	}
	if err := EnsureSchema(ctx, rdb, "m:", ms); err != nil {
		t.Fatal(err)
	}
}

// TestWaitWithoutReplica checks that a store told to wait for a replica
// refuses to acknowledge a create no replica confirmed.
func TestWaitWithoutReplica(t *testing.T) {
	rdb, _ := newClient(t)
	st := New(rdb, Options{Wait: Wait{Replicas: 1, Timeout: 50 * time.Millisecond}})
	s := domain.NewSession("a", "dev", domain.RoleViewer, "alice", time.Minute, time.Now())
	err := st.Create(context.Background(), s, domain.Quota{})
	if !errors.Is(err, domain.ErrUnavailable) || !errors.Is(err, errNotReplicated) {
		t.Fatalf("Create with no replica to confirm = %v, want ErrUnavailable (not replicated)", err)
	}
}

// TestSentinelFailover kills the primary (of two replicas) under a store
// on a Sentinel client that waits for one replica: every session
// acknowledged before is there after the failover, and new ones are taken
// again once the Sentinel promoted a replica and the other follows it.
func TestSentinelFailover(t *testing.T) {
	s := redistest.StartSentinel(t, 1, 2, 500*time.Millisecond)
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: s.Master, SentinelAddrs: []string{s.Sentinels[0].Addr},
		DialTimeout: 300 * time.Millisecond, ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: 1,
	})
	t.Cleanup(func() { _ = rdb.Close() })
	st := New(rdb, Options{Wait: Wait{Replicas: 1, Timeout: 500 * time.Millisecond}})
	ctx := context.Background()
	now := time.Now()
	var acked []domain.SessionID
	for i := range 50 {
		id := domain.SessionID(fmt.Sprint("s", i))
		if err := st.Create(ctx, domain.NewSession(id, "dev", domain.RoleViewer, "alice", time.Hour, now), domain.Quota{}); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, id)
	}
	old := s.Primary.Addr
	s.Primary.Kill()
	deadline := time.Now().Add(30 * time.Second)
	for s.PrimaryAddr() == old {
		if time.Now().After(deadline) {
			t.Fatal("no failover within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The promoted replica has the other replica now: writes still wait
	// for one.
	var err error
	for time.Now().Before(deadline) {
		err = st.Create(ctx, domain.NewSession("after", "dev", domain.RoleViewer, "alice", time.Hour, now), domain.Quota{})
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Create after the failover = %v", err)
	}
	for _, id := range acked {
		if _, err := st.Get(ctx, id); err != nil {
			t.Fatalf("Get(%s) after the failover = %v: an acknowledged session was lost", id, err)
		}
	}
	if n, err := st.Count(ctx); err != nil || n != len(acked)+1 {
		t.Fatalf("Count after the failover = %d, %v; want %d", n, err, len(acked)+1)
	}
}

// TestFarmContractCluster runs the farm and audit contracts on a cluster:
// a device's reservations and the reserved index change in one MULTI, so
// they must share a slot.
func TestFarmContractCluster(t *testing.T) {
	rdb := newCluster(t)
	farmtest.RunFarm(t, func(t *testing.T) ports.FarmStore {
		flushAll(t, rdb)
		return NewFarm(rdb, FarmOptions{Prefix: "test:"})
	})
	farmtest.RunAudit(t, func(t *testing.T, capacity int) ports.AuditLog {
		flushAll(t, rdb)
		return NewAudit(rdb, AuditOptions{Prefix: "test:", MaxLen: int64(capacity)})
	})
}
