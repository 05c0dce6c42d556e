package memstore

import (
	"context"
	"testing"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
	"mediasvc/ports/farmtest"
)

func TestFarmContract(t *testing.T) {
	farmtest.RunFarm(t, func(t *testing.T) ports.FarmStore { return NewFarm(nil) })
}

func TestAuditContract(t *testing.T) {
	farmtest.RunAudit(t, func(t *testing.T, capacity int) ports.AuditLog { return NewAudit(capacity) })
}

// TestFarmForgetsEndedReservations: a list whose last reservation ended
// is gone, as its Redis key would be.
func TestFarmForgetsEndedReservations(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFarm(func() time.Time { return now })
	ctx := context.Background()
	_, err := f.UpdateReservations(ctx, "d", func(rs *domain.Reservations) error {
		_, err := rs.Add(domain.Reservation{ID: "r", Subject: "s", Until: now.Add(time.Minute)}, domain.ReservationPolicy{}, now)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if rs, _ := f.Reservations(ctx, "d"); len(rs.List) != 0 {
		t.Fatalf("Reservations after the end = %+v", rs)
	}
	if ds, _ := f.ReservedDevices(ctx); len(ds) != 0 {
		t.Fatalf("ReservedDevices after the end = %v", ds)
	}
}

func TestAuditRingExact(t *testing.T) {
	a := NewAudit(3)
	for i := range 7 {
		a.Record(context.Background(), domain.AuditEvent{Detail: string(rune('a' + i))})
	}
	got, _ := a.Query(context.Background(), domain.AuditFilter{})
	if a.Len() != 3 || len(got) != 3 || got[0].Detail != "e" || got[2].Detail != "g" {
		t.Fatalf("ring of 3 after 7 = %+v", got)
	}
}
