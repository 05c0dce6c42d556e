package memstore

import (
	"context"
	"fmt"
	"strconv"
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

// TestAuditRingChunks: a ring larger than a chunk and not a multiple of
// one keeps exactly its newest events in order across the chunk edges
// and the wrap, with ids that sort as strings.
func TestAuditRingChunks(t *testing.T) {
	ctx := context.Background()
	const capacity = 2*auditChunk + 500
	a := NewAudit(capacity)
	const total = 3*capacity + 17
	for i := range total {
		if err := a.Record(ctx, domain.AuditEvent{Detail: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
		if want := min(i+1, capacity); a.Len() != want {
			t.Fatalf("after %d events Len = %d, want %d", i+1, a.Len(), want)
		}
	}
	// The ring holds exactly the newest capacity events, each once.
	held := map[string]bool{}
	for i := range capacity {
		held[a.at(i).Detail] = true
	}
	for i := total - capacity; i < total; i++ {
		if !held[strconv.Itoa(i)] {
			t.Fatalf("event %d is not in the ring", i)
		}
	}
	got, _ := a.Query(ctx, domain.AuditFilter{Limit: domain.MaxAuditLimit})
	if len(got) != domain.MaxAuditLimit {
		t.Fatalf("Query returned %d events, want %d", len(got), domain.MaxAuditLimit)
	}
	for j, e := range got {
		if want := strconv.Itoa(total - domain.MaxAuditLimit + j); e.Detail != want {
			t.Fatalf("event %d = %q, want %q", j, e.Detail, want)
		}
		if len(e.ID) != 20 || (j > 0 && e.ID <= got[j-1].ID) {
			t.Fatalf("id %q after %q: not 20 digits in order", e.ID, got[max(j-1, 0)].ID)
		}
	}
	if got[len(got)-1].ID != fmt.Sprintf("%020d", total) {
		t.Fatalf("last id %q, want %020d", got[len(got)-1].ID, total)
	}
	if len(a.chunks) != 3 || len(a.chunks[2]) != 500 {
		t.Fatalf("chunks: %d, last of %d events; want 3, the last of 500", len(a.chunks), len(a.chunks[len(a.chunks)-1]))
	}
}

// TestAuditRecordAllocs: recording copies nothing that is already held:
// an event costs its id and, once per chunk, the chunk.
func TestAuditRecordAllocs(t *testing.T) {
	a := NewAudit(100000)
	e := domain.AuditEvent{Action: domain.AuditInput, Subject: "s", Device: "d", Outcome: "forbidden", Detail: "tap"}
	n := testing.AllocsPerRun(10*auditChunk, func() { _ = a.Record(context.Background(), e) })
	if n > 1.01 {
		t.Fatalf("Record: %.3f allocations per event, want ≤ 1 plus a chunk per %d", n, auditChunk)
	}
}
