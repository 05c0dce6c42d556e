package redisstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mediasvc/domain"
	"mediasvc/ports"
	"mediasvc/ports/farmtest"
)

func TestFarmContract(t *testing.T) {
	rdb, _ := newClient(t)
	farmtest.RunFarm(t, func(t *testing.T) ports.FarmStore {
		if err := rdb.FlushAll(context.Background()).Err(); err != nil {
			t.Fatalf("flush: %v", err)
		}
		return NewFarm(rdb, FarmOptions{Prefix: "test:"})
	})
}

func TestAuditContract(t *testing.T) {
	rdb, _ := newClient(t)
	farmtest.RunAudit(t, func(t *testing.T, capacity int) ports.AuditLog {
		if err := rdb.FlushAll(context.Background()).Err(); err != nil {
			t.Fatalf("flush: %v", err)
		}
		return NewAudit(rdb, AuditOptions{Prefix: "test:", MaxLen: int64(capacity)})
	})
}

// TestFarmKeysExpire checks the TTLs Redis holds: control for ControlTTL
// after its last write, reservations until their last end; and that an
// emptied control state leaves no key behind.
func TestFarmKeysExpire(t *testing.T) {
	rdb, _ := newClient(t)
	ctx := context.Background()
	f := NewFarm(rdb, FarmOptions{Prefix: "t:", ControlTTL: time.Hour})
	now := time.Now()
	_, err := f.UpdateControl(ctx, "d", func(c *domain.Control) error {
		_, err := c.Request(domain.ControlHolder{Session: "a", Subject: "alice"}, domain.ControlPolicy{}, now)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.PTTL(ctx, "t:control:d").Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("control TTL = %v, want about 1h", ttl)
	}
	until := now.Add(10 * time.Minute)
	_, err = f.UpdateReservations(ctx, "d", func(rs *domain.Reservations) error {
		_, err := rs.Add(domain.Reservation{ID: "r", Subject: "alice", Until: until}, domain.ReservationPolicy{}, now)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.PTTL(ctx, f.reservedKey("d")).Val(); ttl <= 9*time.Minute || ttl > 10*time.Minute {
		t.Fatalf("reservations TTL = %v, want about 10m", ttl)
	}
	f.UpdateControl(ctx, "d", func(c *domain.Control) error { c.Release("a", domain.ControlPolicy{}, now); return nil })
	if n := rdb.Exists(ctx, "t:control:d").Val(); n != 0 {
		t.Fatal("an empty control state left its key")
	}
	// An index entry whose reservations ended is trimmed on read.
	rdb.ZAdd(ctx, f.reservedIndex(), redisZ("old", now.Add(-time.Minute)))
	ds, err := f.ReservedDevices(ctx)
	if err != nil || len(ds) != 1 || ds[0] != "d" {
		t.Fatalf("ReservedDevices = %v, %v; want [d]", ds, err)
	}
}

// TestFarmRedisDown: a store whose Redis is gone says so with
// domain.ErrUnavailable, from every method.
func TestFarmRedisDown(t *testing.T) {
	rdb, srv := newClient(t)
	srv.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f := NewFarm(rdb, FarmOptions{})
	a := NewAudit(rdb, AuditOptions{})
	_, err1 := f.Control(ctx, "d")
	_, err2 := f.UpdateControl(ctx, "d", func(*domain.Control) error { return nil })
	_, err3 := f.Reservations(ctx, "d")
	_, err4 := f.UpdateReservations(ctx, "d", func(*domain.Reservations) error { return nil })
	_, err5 := f.ReservedDevices(ctx)
	err6 := a.Record(ctx, domain.AuditEvent{})
	_, err7 := a.Query(ctx, domain.AuditFilter{})
	for i, err := range []error{err1, err2, err3, err4, err5, err6, err7} {
		if !isUnavailable(err) {
			t.Errorf("call %d with Redis down = %v, want ErrUnavailable", i+1, err)
		}
	}
}

func isUnavailable(err error) bool { return errors.Is(err, domain.ErrUnavailable) }

func redisZ(member string, at time.Time) redis.Z {
	return redis.Z{Score: float64(at.UnixMilli()), Member: member}
}
