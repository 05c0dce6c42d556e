package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
)

// OpKind is one kind of store operation in a model run.
type OpKind uint8

// The operations a model run mixes.
const (
	// OpCreate creates session ID of device Dev and owner Owner with a TTL
	// of Arg milliseconds (at least one).
	OpCreate OpKind = iota
	// OpGet reads session ID.
	OpGet
	// OpTouch touches session ID at the model's clock.
	OpTouch
	// OpUpdate sets session ID's expiry to Arg microseconds after the
	// clock (Arg may be negative: already expired).
	OpUpdate
	// OpTransition moves session ID to the state Arg picks, which the
	// state machine may refuse.
	OpTransition
	// OpUpdateFail changes session ID in fn and then fails fn: nothing may
	// be stored.
	OpUpdateFail
	// OpDelete deletes session ID.
	OpDelete
	// OpPopExpired pops up to Arg expired sessions.
	OpPopExpired
	// OpAdvance moves the clock Arg microseconds forward; a large Arg is a
	// mass expiry for the next OpPopExpired.
	OpAdvance
	// OpBurst creates Arg sessions with consecutive ids from ID on, devices
	// and owners in turn: it fills a store so compaction renumbers.
	OpBurst
	numOpKinds
)

var opNames = [numOpKinds]string{"create", "get", "touch", "update", "transition", "update-fail", "delete", "pop-expired", "advance", "burst"}

func (k OpKind) String() string {
	if k < numOpKinds {
		return opNames[k]
	}
	return "op" + strconv.Itoa(int(k))
}

// Op is one operation of a model run.
type Op struct {
	Kind       OpKind
	ID         int // session id index, below MaxIDs
	Dev, Owner int // device and owner index, below Devices and Owners
	Arg        int64
}

func (o Op) String() string {
	return fmt.Sprintf("%s(id %d dev %d owner %d arg %d)", o.Kind, o.ID, o.Dev, o.Owner, o.Arg)
}

// The model's id, device and owner spaces, and the quota every Create asks
// for: small enough that every limit is reached in a run.
const (
	MaxIDs  = 4096
	Devices = 4
	Owners  = 6
)

// ModelQuota is the quota of every Create in a model run.
var ModelQuota = domain.Quota{Total: 3000, PerDevice: 1200, PerOwner: 900}

var (
	sessionIDs = func() (ids [MaxIDs]domain.SessionID) {
		for i := range ids {
			ids[i] = domain.SessionID("m" + strconv.Itoa(i))
		}
		return ids
	}()
	transitionTo = []domain.State{domain.StateNegotiating, domain.StateConnected, domain.StateClosed, domain.StateFailed, domain.StateExpired, domain.StateNew}
	errModelFn   = errors.New("model fn refuses")
	phaseNames   = [...]string{"churn", "grow", "touch-storm", "mass-expiry", "drain"}
)

const (
	maxTTLMillis  = 30_000
	maxBurst      = 4096
	maxPopPerCall = 10_000
)

// DecodeOps turns bytes into operations, three bytes each (a trailing one
// or two are ignored), so a fuzz target drives the model with the same
// operations a random run makes. Every input decodes to valid operations.
func DecodeOps(data []byte) []Op {
	ops := make([]Op, 0, len(data)/3)
	for ; len(data) >= 3; data = data[3:] {
		b0, b1, b2 := data[0], data[1], data[2]
		o := Op{Kind: OpKind(b0 % byte(numOpKinds)), ID: int(b1), Dev: int(b0>>4) % Devices, Owner: int(b0>>4) % Owners}
		switch o.Kind {
		case OpCreate:
			o.Arg = 1 + int64(b2)%30*1000 + int64(b2)
		case OpUpdate:
			o.Arg = (int64(b2) - 64) * 100_000
		case OpTransition:
			o.Arg = int64(b2)
		case OpPopExpired:
			o.Arg = int64(b2) % 24
			if b2 >= 240 {
				o.Arg = maxPopPerCall
			}
		case OpAdvance:
			o.Arg = int64(b2) * 50_000
			if b2 >= 250 {
				o.Arg = maxTTLMillis * 2000 // every session expires
			}
		case OpBurst:
			o.ID = int(b1) * 16
			o.Arg = int64(b2) * 16
		}
		ops = append(ops, o)
	}
	return ops
}

// RandomOps returns a generator of operations in phases of a few hundred
// to a few thousand: churn over a few ids, growth towards the quota, touch
// storms that leave stale heap items, mass expiries, and drains.
func RandomOps(seed uint64) func() Op {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	phase, left, burst := 0, 0, false
	return func() Op {
		if left == 0 {
			phase, left = r.IntN(len(phaseNames)), 200+r.IntN(5000)
			burst = true
		}
		left--
		o := Op{Dev: r.IntN(Devices), Owner: r.IntN(Owners)}
		ids := [...]int{64, MaxIDs, 8, MaxIDs, MaxIDs}[phase]
		o.ID = r.IntN(ids)
		// Weights of the kinds in each phase, in OpKind order.
		w := [...][numOpKinds]int{
			{20, 10, 15, 8, 6, 3, 15, 10, 12, 0},
			{60, 5, 5, 3, 2, 1, 5, 3, 5, 0},
			{5, 5, 50, 20, 2, 3, 5, 5, 5, 0},
			{5, 2, 2, 2, 1, 1, 2, 50, 30, 0},
			{2, 5, 3, 2, 2, 1, 60, 20, 5, 0},
		}[phase]
		if phase == 3 && burst {
			// A mass expiry starts with a store filled up to its quota.
			burst = false
			return Op{Kind: OpBurst, ID: r.IntN(MaxIDs), Arg: 1500 + r.Int64N(maxBurst-1500)}
		}
		total := 0
		for _, x := range w {
			total += x
		}
		pick := r.IntN(total)
		for k, x := range w {
			if pick < x {
				o.Kind = OpKind(k)
				break
			}
			pick -= x
		}
		switch o.Kind {
		case OpCreate:
			o.Arg = 1 + r.Int64N(maxTTLMillis)
		case OpUpdate:
			o.Arg = r.Int64N(2*maxTTLMillis*1000) - maxTTLMillis*200
		case OpTransition:
			o.Arg = r.Int64N(int64(len(transitionTo)))
		case OpPopExpired:
			o.Arg = r.Int64N(32)
			if r.IntN(4) == 0 {
				o.Arg = maxPopPerCall
			}
		case OpAdvance:
			o.Arg = r.Int64N(200_000)
			if phase == 3 && r.IntN(8) == 0 {
				o.Arg = r.Int64N(maxTTLMillis * 2000)
			}
		}
		return o
	}
}

// Model is the reference a store is checked against step by step: a map of
// sessions and quota counts, and a sort for PopExpired.
type Model struct {
	now      time.Time
	sessions table
	byDevice [Devices]int
	byOwner  [Owners]int
	expired  []int64 // PopExpired's scratch
	// Steps counts the store calls made, a burst counting each Create.
	Steps int
}

// NewModel returns an empty model whose clock starts at the suite's base
// instant.
func NewModel() *Model {
	return &Model{now: base}
}

// Len is how many sessions the model holds.
func (m *Model) Len() int { return len(m.sessions.live) }

// table is the model's map of sessions, keyed by id index (the ids are
// "m0" to "m4095"), with a dense list of the live ones, so PopExpired's
// reference scans only those.
type table struct {
	slot [MaxIDs]struct {
		s   domain.Session
		exp int64 // s.ExpiresAt in Unix ns, for the scan
		pos int   // index in live
		ok  bool
	}
	live []int
}

func indexOf(id domain.SessionID) int {
	n, err := strconv.Atoi(string(id[1:]))
	if err != nil || n < 0 || n >= MaxIDs || id[0] != 'm' {
		return -1
	}
	return n
}

func (t *table) get(id domain.SessionID) (domain.Session, bool) {
	if i := indexOf(id); i >= 0 && t.slot[i].ok {
		return t.slot[i].s, true
	}
	return domain.Session{}, false
}

func (t *table) put(s domain.Session) {
	sl := &t.slot[indexOf(s.ID)]
	if !sl.ok {
		sl.ok, sl.pos = true, len(t.live)
		t.live = append(t.live, indexOf(s.ID))
	}
	sl.s, sl.exp = s, s.ExpiresAt.UnixNano()
}

func (t *table) del(id domain.SessionID) {
	i := indexOf(id)
	sl := &t.slot[i]
	last := t.live[len(t.live)-1]
	t.live[sl.pos] = last
	t.slot[last].pos = sl.pos
	t.live = t.live[:len(t.live)-1]
	sl.ok, sl.s = false, domain.Session{}
}

func devOf(i int) domain.DeviceID { return domain.DeviceID("dev" + strconv.Itoa(i)) }
func ownerOf(i int) string        { return "owner" + strconv.Itoa(i) }

func devIndex(d domain.DeviceID) int { n, _ := strconv.Atoi(string(d[3:])); return n }
func ownerIndex(o string) int        { n, _ := strconv.Atoi(o[5:]); return n }

// class names what an error means to a caller, which both sides must agree
// on; the message may differ.
func class(err error) string {
	for _, c := range []struct {
		name string
		err  error
	}{
		{"not-found", domain.ErrSessionNotFound}, {"exists", domain.ErrSessionExists},
		{"limit", domain.ErrLimitExceeded}, {"closed", domain.ErrSessionClosed},
		{"invalid-transition", domain.ErrInvalidTransition}, {"fn", errModelFn},
	} {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	if err != nil {
		return "other: " + err.Error()
	}
	return "nil"
}

// same reports whether got is want, times compared as instants.
func same(got, want domain.Session) bool {
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) {
		return false
	}
	got.CreatedAt, got.UpdatedAt, got.ExpiresAt = want.CreatedAt, want.UpdatedAt, want.ExpiresAt
	return got == want
}

// Apply runs op on st and on the model and returns an error describing the
// first difference.
func (m *Model) Apply(ctx context.Context, st ports.SessionStore, op Op) error {
	if op.Kind == OpBurst {
		for i := range op.Arg {
			c := Op{Kind: OpCreate, ID: (op.ID + int(i)) % MaxIDs, Dev: int(i) % Devices, Owner: int(i) % Owners, Arg: 1 + (int64(op.ID)+i)%maxTTLMillis}
			if err := m.Apply(ctx, st, c); err != nil {
				return fmt.Errorf("%v, step %d: %w", op, i, err)
			}
		}
		return nil
	}
	if op.Kind == OpAdvance {
		m.now = m.now.Add(time.Duration(op.Arg) * time.Microsecond)
		return nil
	}
	m.Steps++
	id := sessionIDs[op.ID%MaxIDs]
	want, ok := m.sessions.get(id)
	wantErr := domain.ErrSessionNotFound
	if ok {
		wantErr = nil
	}
	var gotErr error
	switch op.Kind {
	case OpCreate:
		s := domain.NewSession(id, devOf(op.Dev), domain.RoleViewer, ownerOf(op.Owner), time.Duration(max(op.Arg, 1))*time.Millisecond, m.now)
		s.Kind, s.Instance, s.TokenHash[0] = "ws", "i1", byte(op.ID)
		gotErr = st.Create(ctx, s, ModelQuota)
		q := ModelQuota
		switch {
		case ok:
			wantErr = domain.ErrSessionExists
		case m.Len() >= q.Total, m.byDevice[op.Dev] >= q.PerDevice, m.byOwner[op.Owner] >= q.PerOwner:
			wantErr = domain.ErrLimitExceeded
		default:
			wantErr = nil
			m.sessions.put(s)
			m.byDevice[op.Dev]++
			m.byOwner[op.Owner]++
		}
	case OpGet:
		got, err := st.Get(ctx, id)
		gotErr = err
		if ok && err == nil && !same(got, want) {
			return fmt.Errorf("%v: got %+v, want %+v", op, got, want)
		}
	case OpTouch:
		gotErr = st.Touch(ctx, id, m.now)
		if ok {
			wantErr = want.Touch(m.now)
			m.sessions.put(want)
		}
	case OpUpdate, OpTransition, OpUpdateFail:
		now := m.now
		fn := func(s *domain.Session) error {
			switch op.Kind {
			case OpUpdate:
				s.ExpiresAt = now.Add(time.Duration(op.Arg) * time.Microsecond)
				s.UpdatedAt = now
				return nil
			case OpTransition:
				return s.Transition(transitionTo[op.Arg%int64(len(transitionTo))], "model", now)
			default:
				s.ExpiresAt = now.Add(time.Hour)
				s.Reason = "refused"
				return errModelFn
			}
		}
		got, err := st.Update(ctx, id, fn)
		gotErr = err
		if ok {
			next := want
			if wantErr = fn(&next); wantErr == nil {
				m.sessions.put(next)
				if err == nil && !same(got, next) {
					return fmt.Errorf("%v: returned %+v, want %+v", op, got, next)
				}
			}
		}
	case OpDelete:
		got, err := st.Delete(ctx, id)
		gotErr = err
		if ok {
			if err == nil && !same(got, want) {
				return fmt.Errorf("%v: returned %+v, want %+v", op, got, want)
			}
			m.remove(want)
		}
	case OpPopExpired:
		return m.popExpired(ctx, st, op)
	default:
		return fmt.Errorf("unknown op %v", op)
	}
	if class(gotErr) != class(wantErr) {
		return fmt.Errorf("%v at %v: error %v, want %v", op, m.now, gotErr, wantErr)
	}
	n, err := st.Count(ctx)
	if err != nil || n != m.Len() {
		return fmt.Errorf("after %v: Count = %d, %v; want %d", op, n, err, m.Len())
	}
	return nil
}

func (m *Model) remove(s domain.Session) {
	m.sessions.del(s.ID)
	m.byDevice[devIndex(s.DeviceID)]--
	m.byOwner[ownerIndex(s.Owner)]--
}

// popExpired checks PopExpired against a sort of the model's expired
// sessions. Sessions that expire at the same instant may come in any order,
// and a cut through them may take any of them.
func (m *Model) popExpired(ctx context.Context, st ports.SessionStore, op Op) error {
	got, err := st.PopExpired(ctx, m.now, int(op.Arg))
	if err != nil {
		return fmt.Errorf("%v: %w", op, err)
	}
	now := m.now.UnixNano()
	expired := m.expired[:0]
	for _, i := range m.sessions.live {
		if sl := &m.sessions.slot[i]; sl.exp <= now {
			expired = append(expired, sl.exp)
		}
	}
	slices.Sort(expired)
	m.expired = expired
	if want := min(len(expired), max(int(op.Arg), 0)); len(got) != want {
		return fmt.Errorf("%v at %v: popped %d sessions, want %d of %d expired", op, m.now, len(got), want, len(expired))
	}
	for i, s := range got {
		if s.ExpiresAt.UnixNano() != expired[i] {
			return fmt.Errorf("%v: popped[%d] %s expires %v, want the %d-th earliest expiry %v", op, i, s.ID, s.ExpiresAt, i, time.Unix(0, expired[i]))
		}
		want, ok := m.sessions.get(s.ID)
		if !ok || !same(s, want) {
			return fmt.Errorf("%v: popped[%d] %+v, model holds %+v (%v)", op, i, s, want, ok)
		}
		m.remove(want)
	}
	n, err := st.Count(ctx)
	if err != nil || n != m.Len() {
		return fmt.Errorf("after %v: Count = %d, %v; want %d", op, n, err, m.Len())
	}
	return nil
}

// QuotaReporter is a store that reports its quota counters (memstore and
// redisstore do); Check compares them with the model's.
type QuotaReporter interface {
	QuotaUsage(ctx context.Context) (domain.QuotaUsage, error)
}

// Usage is the model's quota usage.
func (m *Model) Usage() domain.QuotaUsage {
	u := domain.QuotaUsage{Total: m.Len(), ByDevice: map[domain.DeviceID]int{}, ByOwner: map[string]int{}}
	for i, n := range m.byDevice {
		if n > 0 {
			u.ByDevice[devOf(i)] = n
		}
	}
	for i, n := range m.byOwner {
		if n > 0 {
			u.ByOwner[ownerOf(i)] = n
		}
	}
	return u
}

// Check compares every session of the model with the store's, the
// store's count with the model's and, if st is a QuotaReporter, its quota
// counters.
func (m *Model) Check(ctx context.Context, st ports.SessionStore) error {
	n, err := st.Count(ctx)
	if err != nil || n != m.Len() {
		return fmt.Errorf("count = %d, %v; want %d", n, err, m.Len())
	}
	if qr, ok := st.(QuotaReporter); ok {
		got, err := qr.QuotaUsage(ctx)
		want := m.Usage()
		if err != nil || got.Total != want.Total || !maps.Equal(got.ByDevice, want.ByDevice) || !maps.Equal(got.ByOwner, want.ByOwner) {
			return fmt.Errorf("QuotaUsage = %+v, %v; want %+v", got, err, want)
		}
	}
	for _, i := range m.sessions.live {
		want := m.sessions.slot[i].s
		got, err := st.Get(ctx, want.ID)
		if err != nil || !same(got, want) {
			return fmt.Errorf("Get(%s) = %+v, %v; want %+v", want.ID, got, err, want)
		}
	}
	return nil
}

// ModelConfig sizes a model run.
type ModelConfig struct {
	// Ops is how many operations to generate (a burst counts as one).
	Ops int
	// Seed seeds the generator.
	Seed uint64
	// CheckEvery is how many operations pass between full checks (all
	// sessions compared, and Invariants called); 0 means 1000.
	CheckEvery int
	// Invariants, if set, checks the store's own invariants at each full
	// check and at the end.
	Invariants func(t *testing.T)
}

// RunModel runs cfg.Ops random operations (RandomOps) on st and on a Model,
// fails t at the first difference and returns the number of store calls
// made. It ends by popping every session, so a store that leaked one fails.
func RunModel(t *testing.T, st ports.SessionStore, cfg ModelConfig) int {
	t.Helper()
	ctx := context.Background()
	m := NewModel()
	next := RandomOps(cfg.Seed)
	every := cfg.CheckEvery
	if every <= 0 {
		every = 1000
	}
	check := func(i int) {
		t.Helper()
		if err := m.Check(ctx, st); err != nil {
			t.Fatalf("seed %d, after op %d: %v", cfg.Seed, i, err)
		}
		if cfg.Invariants != nil {
			cfg.Invariants(t)
		}
	}
	for i := range cfg.Ops {
		op := next()
		if err := m.Apply(ctx, st, op); err != nil {
			t.Fatalf("seed %d, op %d: %v", cfg.Seed, i, err)
		}
		if (i+1)%every == 0 {
			check(i)
		}
	}
	check(cfg.Ops)
	for _, op := range []Op{{Kind: OpAdvance, Arg: 10 * maxTTLMillis * 1000}, {Kind: OpPopExpired, Arg: MaxIDs}} {
		if err := m.Apply(ctx, st, op); err != nil {
			t.Fatalf("seed %d, final %v: %v", cfg.Seed, op, err)
		}
	}
	if m.Len() != 0 {
		t.Fatalf("seed %d: %d sessions left after popping all", cfg.Seed, m.Len())
	}
	check(cfg.Ops)
	return m.Steps
}
