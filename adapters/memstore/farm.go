package memstore

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
)

var (
	_ ports.FarmStore = (*Farm)(nil)
	_ ports.AuditLog  = (*Audit)(nil)
)

// Farm keeps devices' control states and reservations in memory for one
// instance. One mutex guards both maps: every operation is a few map
// lookups and a copy, and fn runs under it (it is pure by contract, so it
// does no I/O). A device's reservation list is forgotten once its last
// reservation ended, as Redis forgets the key at its PEXPIREAT.
//
// A Farm must be made with NewFarm. It is safe for concurrent use.
type Farm struct {
	now func() time.Time

	mu       sync.Mutex
	controls map[domain.DeviceID]domain.Control
	reserved map[domain.DeviceID]domain.Reservations
}

// NewFarm returns an empty Farm that reads the time from now (time.Now
// when nil) to forget ended reservations.
func NewFarm(now func() time.Time) *Farm {
	if now == nil {
		now = time.Now
	}
	return &Farm{now: now, controls: map[domain.DeviceID]domain.Control{}, reserved: map[domain.DeviceID]domain.Reservations{}}
}

// Control returns the device's control state, empty when none.
func (f *Farm) Control(_ context.Context, d domain.DeviceID) (domain.Control, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.controls[d]
	if !ok {
		return domain.Control{Device: d}, nil
	}
	return c.Clone(), nil
}

// UpdateControl applies fn to a copy of the device's control state and
// stores it unless fn fails; an empty state is deleted.
func (f *Farm) UpdateControl(_ context.Context, d domain.DeviceID, fn func(*domain.Control) error) (domain.Control, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.controls[d]
	if ok {
		c = c.Clone()
	} else {
		c = domain.Control{Device: d}
	}
	if err := fn(&c); err != nil {
		return domain.Control{}, err
	}
	c.Device = d
	if c.Empty() {
		delete(f.controls, d)
	} else {
		f.controls[d] = c.Clone()
	}
	return c, nil
}

// Reservations returns the device's reservations, empty when none.
func (f *Farm) Reservations(_ context.Context, d domain.DeviceID) (domain.Reservations, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reservationsLocked(d), nil
}

func (f *Farm) reservationsLocked(d domain.DeviceID) domain.Reservations {
	rs, ok := f.reserved[d]
	if !ok {
		return domain.Reservations{Device: d}
	}
	if !f.now().Before(rs.LastUntil()) {
		delete(f.reserved, d)
		return domain.Reservations{Device: d, Version: rs.Version}
	}
	return rs.Clone()
}

// UpdateReservations applies fn to a copy of the device's reservations
// and stores it unless fn fails.
func (f *Farm) UpdateReservations(_ context.Context, d domain.DeviceID, fn func(*domain.Reservations) error) (domain.Reservations, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.reservationsLocked(d)
	if err := fn(&rs); err != nil {
		return domain.Reservations{}, err
	}
	rs.Device = d
	if len(rs.List) == 0 {
		delete(f.reserved, d)
	} else {
		f.reserved[d] = rs.Clone()
	}
	return rs, nil
}

// ReservedDevices lists the devices with a reservation that has not ended.
func (f *Farm) ReservedDevices(context.Context) ([]domain.DeviceID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	out := make([]domain.DeviceID, 0, len(f.reserved))
	for d, rs := range f.reserved {
		if now.Before(rs.LastUntil()) {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Audit is a bounded ring of audit events in memory: once full, each new
// event overwrites the oldest. It is safe for concurrent use.
//
// Its memory grows with the events it holds, one fixed chunk at a time: a
// ring made whole up front (100,000 events: 14.5 MB) is live heap that
// every GC cycle walks and that doubles as headroom (GOGC) for garbage,
// long before it holds anything; a ring grown by append copied itself at
// every doubling, and under a flood of audited input those copies were the
// largest allocation on the control path, with a GC cycle's assists — and
// the round trip's tail — behind them.
type Audit struct {
	mu       sync.Mutex
	chunks   [][]domain.AuditEvent // auditChunk events each (the last may be shorter); grown as events come
	capacity int
	n        int    // events held (≤ capacity)
	next     int    // where the next event goes, 0..capacity-1
	seq      uint64 // the last id handed out
}

// auditChunk is how many events one chunk of the ring holds (~150 KB).
const auditChunk = 1024

// NewAudit returns a ring keeping the newest capacity events (at least one).
func NewAudit(capacity int) *Audit {
	return &Audit{capacity: max(capacity, 1)}
}

// at returns slot i of the ring, growing the ring by a chunk when i is
// the first slot past it.
func (a *Audit) at(i int) *domain.AuditEvent {
	c := i / auditChunk
	if c == len(a.chunks) {
		a.chunks = append(a.chunks, make([]domain.AuditEvent, min(auditChunk, a.capacity-c*auditChunk)))
	}
	return &a.chunks[c][i%auditChunk]
}

// Record appends e, assigning it the next sequence number as its id. It
// never fails.
func (a *Audit) Record(_ context.Context, e domain.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seq++
	e.ID = auditID(a.seq)
	*a.at(a.next) = e
	a.next = (a.next + 1) % a.capacity
	a.n = min(a.n+1, a.capacity)
	return nil
}

// auditID is seq as 20 decimal digits (the width of the largest uint64),
// zero-padded so that ids sort as strings: "%020d" in one allocation.
func auditID(seq uint64) string {
	id := [20]byte{}
	var digits [20]byte
	d := strconv.AppendUint(digits[:0], seq, 10)
	for i := range len(id) - len(d) {
		id[i] = '0'
	}
	copy(id[len(id)-len(d):], d)
	return string(id[:])
}

// Query returns the newest f.Count() events f matches, oldest first,
// walking the ring from the newest back.
func (a *Audit) Query(_ context.Context, f domain.AuditFilter) ([]domain.AuditEvent, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	limit := f.Count()
	out := []domain.AuditEvent{}
	for i := 0; i < a.n && len(out) < limit; i++ {
		e := a.at((a.next - 1 - i + a.capacity) % a.capacity)
		if f.Match(*e) {
			out = append(out, *e)
		}
	}
	slices.Reverse(out)
	return out, nil
}

// Len returns how many events the ring holds.
func (a *Audit) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}
