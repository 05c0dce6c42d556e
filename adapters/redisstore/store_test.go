package redisstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"mediasvc/adapters/redisstore/redistest"
	"mediasvc/domain"
	"mediasvc/ports"
	"mediasvc/ports/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newClient starts a redis-server for t and returns a client to it.
func newClient(t testing.TB) (*redis.Client, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb, srv
}

func TestContract(t *testing.T) {
	rdb, _ := newClient(t)
	storetest.Run(t, func(t *testing.T) ports.SessionStore {
		if err := rdb.FlushAll(context.Background()).Err(); err != nil {
			t.Fatalf("flush: %v", err)
		}
		return New(rdb, Options{Prefix: "test:"})
	})
}

// TestPrefixIsolation puts two stores on one Redis with
// different prefixes: neither sees the other's sessions.
func TestPrefixIsolation(t *testing.T) {
	rdb, _ := newClient(t)
	ctx := context.Background()
	a, b := New(rdb, Options{Prefix: "a:"}), New(rdb, Options{Prefix: "b:"})
	now := time.Now()
	s := domain.NewSession("x", "dev", domain.RoleViewer, "alice", time.Minute, now)
	if err := a.Create(ctx, s, domain.Quota{Total: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.Create(ctx, s, domain.Quota{Total: 1}); err != nil {
		t.Fatalf("Create under another prefix = %v, want nil", err)
	}
	if n, _ := a.Count(ctx); n != 1 {
		t.Fatalf("Count(a) = %d, want 1", n)
	}
}

// TestTouchThrottle checks that touches closer together than the throttle
// do not reach Redis, and that one past it does.
func TestTouchThrottle(t *testing.T) {
	rdb, _ := newClient(t)
	ctx := context.Background()
	st := New(rdb, Options{Prefix: "t:", TouchThrottle: 5 * time.Second})
	base := time.Now().Truncate(time.Second)
	s := domain.NewSession("a", "dev", domain.RoleViewer, "alice", time.Minute, base)
	if err := st.Create(ctx, s, domain.Quota{}); err != nil {
		t.Fatal(err)
	}
	expiry := func() time.Time {
		got, err := st.Get(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		return got.ExpiresAt
	}
	for _, c := range []struct {
		at   time.Duration
		want time.Duration // expiry - base after the touch
	}{
		{1 * time.Second, 61 * time.Second}, // first touch: written
		{3 * time.Second, 61 * time.Second}, // 2 s later: throttled
		{5 * time.Second, 61 * time.Second}, // 4 s after the write: throttled
		{6 * time.Second, 66 * time.Second}, // 5 s after: written
	} {
		if err := st.Touch(ctx, "a", base.Add(c.at)); err != nil {
			t.Fatalf("Touch(+%s) = %v", c.at, err)
		}
		if got := expiry().Sub(base); got != c.want {
			t.Fatalf("after Touch(+%s) expiry = base+%s, want base+%s", c.at, got, c.want)
		}
	}
	if _, err := st.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := st.Touch(ctx, "a", base.Add(7*time.Second)); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("Touch after Delete = %v, want ErrSessionNotFound", err)
	}
}

// TestKeyExpires checks the safety net: a session's hash carries a Redis
// expiry of its expiry plus KeyGrace, and a session whose hash Redis
// dropped is still popped, with its quota freed.
func TestKeyExpires(t *testing.T) {
	rdb, _ := newClient(t)
	ctx := context.Background()
	st := New(rdb, Options{Prefix: "k:", KeyGrace: time.Second})
	now := time.Now()
	s := domain.NewSession("a", "dev", domain.RoleViewer, "alice", time.Minute, now)
	if err := st.Create(ctx, s, domain.Quota{PerDevice: 1}); err != nil {
		t.Fatal(err)
	}
	ttl, err := rdb.PTTL(ctx, st.keys.session("a")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl < 59*time.Second || ttl > 62*time.Second {
		t.Fatalf("session key TTL = %s, want about 61s", ttl)
	}
	rdb.Del(ctx, st.keys.session("a")) // as if Redis expired it
	popped, err := st.PopExpired(ctx, now.Add(2*time.Minute), 10)
	if err != nil || len(popped) != 1 {
		t.Fatalf("PopExpired = %v, %v; want one", popped, err)
	}
	if p := popped[0]; p.ID != "a" || p.DeviceID != "dev" || p.Owner != "alice" || p.State != domain.StateExpired {
		t.Fatalf("popped %+v", p)
	}
	s.ID = "b"
	if err := st.Create(ctx, s, domain.Quota{PerDevice: 1}); err != nil {
		t.Fatalf("Create after the pop = %v: quota not freed", err)
	}
}

// TestUnavailable checks that a dead Redis yields domain.ErrUnavailable
// from every operation.
func TestUnavailable(t *testing.T) {
	rdb, srv := newClient(t)
	srv.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st := New(rdb, Options{})
	now := time.Now()
	s := domain.NewSession("a", "dev", domain.RoleViewer, "alice", time.Minute, now)
	_, getErr := st.Get(ctx, "a")
	_, updErr := st.Update(ctx, "a", func(*domain.Session) error { return nil })
	_, delErr := st.Delete(ctx, "a")
	_, popErr := st.PopExpired(ctx, now, 1)
	_, cntErr := st.Count(ctx)
	for name, err := range map[string]error{
		"Create": st.Create(ctx, s, domain.Quota{}), "Get": getErr, "Update": updErr,
		"Touch": st.Touch(ctx, "a", now), "Delete": delErr, "PopExpired": popErr, "Count": cntErr,
	} {
		if !errors.Is(err, domain.ErrUnavailable) {
			t.Errorf("%s with Redis down = %v, want ErrUnavailable", name, err)
		}
	}
}

var noQuota = domain.Quota{}

func benchSession(id string) domain.Session {
	return domain.NewSession(domain.SessionID(id), "dev", domain.RoleViewer, "alice", time.Hour, time.Now())
}

// TestCrashMidCreate leaves what an instance dying between the two steps
// of a Create leaves (the hash and its expiry entry, no quota): the
// session is not counted, an expiry pass within KeyGrace of its expiry
// leaves it (a Create may still be finishing), and one after removes it
// without returning it.
func TestCrashMidCreate(t *testing.T) {
	rdb, _ := newClient(t)
	ctx := context.Background()
	st := New(rdb, Options{Prefix: "c:", KeyGrace: time.Minute})
	now := time.Now().Truncate(time.Microsecond)
	s := domain.NewSession("half", "dev", domain.RoleViewer, "alice", time.Minute, now)
	args := appendFields([]any{string(s.ID), s.ExpiresAt.UnixMicro(), st.keyExpiry(s.ExpiresAt)}, &s)
	if err := shardCreateScript.Run(ctx, rdb, []string{st.keys.session(s.ID), st.keys.expiry(shardOf(s.ID))}, args...).Err(); err != nil {
		t.Fatal(err)
	}
	if n, _ := st.Count(ctx); n != 0 {
		t.Fatalf("Count = %d, want 0: a half-created session is not counted", n)
	}
	if popped, err := st.PopExpired(ctx, s.ExpiresAt.Add(30*time.Second), 10); err != nil || len(popped) != 0 {
		t.Fatalf("PopExpired within the grace = %v, %v; want none", popped, err)
	}
	if n, _ := rdb.ZCard(ctx, st.keys.expiry(shardOf(s.ID))).Result(); n != 1 {
		t.Fatalf("expiry entry removed within the grace")
	}
	if popped, err := st.PopExpired(ctx, s.ExpiresAt.Add(2*time.Minute), 10); err != nil || len(popped) != 0 {
		t.Fatalf("PopExpired after the grace = %v, %v; want none returned", popped, err)
	}
	if n, _ := rdb.Exists(ctx, st.keys.session(s.ID), st.keys.expiry(shardOf(s.ID))).Result(); n != 0 {
		t.Fatalf("%d keys of the half-created session left after the grace", n)
	}
}
