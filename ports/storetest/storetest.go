// Package storetest is the contract suite every ports.SessionStore must
// pass. An implementation's tests call Run with a constructor:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) ports.SessionStore { return memstore.New(memstore.Options{}) })
//	}
//
// The suite uses fixed instants (never the wall clock), so a store must not
// compare session times with time.Now.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
)

// base is the instant the suite's sessions are created at.
var base = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

const ttl = time.Minute

// Run runs the contract suite as subtests of t. newStore must return a new,
// empty store for each call; it may register cleanups on the t it is given.
// Subtests are not parallel, so a store backed by one shared server may
// flush it in newStore.
func Run(t *testing.T, newStore func(t *testing.T) ports.SessionStore) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, st ports.SessionStore)
	}{
		{"CreateGet", testCreateGet},
		{"CreateExists", testCreateExists},
		{"NotFound", testNotFound},
		{"GetReturnsCopy", testGetReturnsCopy},
		{"Update", testUpdate},
		{"UpdateFnError", testUpdateFnError},
		{"UpdateReindexesExpiry", testUpdateReindexesExpiry},
		{"Touch", testTouch},
		{"TouchFinal", testTouchFinal},
		{"Delete", testDelete},
		{"Count", testCount},
		{"QuotaTotal", testQuotaTotal},
		{"QuotaPerDevice", testQuotaPerDevice},
		{"QuotaPerOwner", testQuotaPerOwner},
		{"QuotaZeroIsUnlimited", testQuotaZeroIsUnlimited},
		{"QuotaFreedByPopExpired", testQuotaFreedByPopExpired},
		{"PopExpiredOrder", testPopExpiredOrder},
		{"PopExpiredMax", testPopExpiredMax},
		{"PopExpiredEmpty", testPopExpiredEmpty},
		{"ConcurrentLastSlot", testConcurrentLastSlot},
		{"ConcurrentSameID", testConcurrentSameID},
		{"ConcurrentMixed", testConcurrentMixed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newStore(t))
		})
	}
}

// session returns a new session of device dev owned by owner, created at
// base plus offset with the suite's TTL.
func session(id, dev, owner string, offset time.Duration) domain.Session {
	s := domain.NewSession(domain.SessionID(id), domain.DeviceID(dev), domain.RoleViewer, owner, ttl, base.Add(offset))
	s.Kind = "ws"
	s.Instance = "i1"
	s.TokenHash[0] = 0xAB
	return s
}

func mustCreate(t *testing.T, st ports.SessionStore, s domain.Session, q domain.Quota) {
	t.Helper()
	if err := st.Create(context.Background(), s, q); err != nil {
		t.Fatalf("Create(%s) = %v, want nil", s.ID, err)
	}
}

func mustGet(t *testing.T, st ports.SessionStore, id domain.SessionID) domain.Session {
	t.Helper()
	s, err := st.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%s) = %v", id, err)
	}
	return s
}

func wantErr(t *testing.T, op string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want errors.Is %v", op, err, target)
	}
}

func wantCount(t *testing.T, st ports.SessionStore, want int) {
	t.Helper()
	n, err := st.Count(context.Background())
	if err != nil {
		t.Fatalf("Count = %v", err)
	}
	if n != want {
		t.Fatalf("Count = %d, want %d", n, want)
	}
}

// wantSame fails unless got and want are the same session. Times are
// compared as instants, so a store may drop the location and the monotonic
// reading.
func wantSame(t *testing.T, op string, got, want domain.Session) {
	t.Helper()
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("%s: times created %v updated %v expires %v, want %v %v %v", op,
			got.CreatedAt, got.UpdatedAt, got.ExpiresAt, want.CreatedAt, want.UpdatedAt, want.ExpiresAt)
	}
	got.CreatedAt, got.UpdatedAt, got.ExpiresAt = want.CreatedAt, want.UpdatedAt, want.ExpiresAt
	if got != want {
		t.Fatalf("%s: got %+v\nwant %+v", op, got, want)
	}
}

func ids(ss []domain.Session) []domain.SessionID {
	out := make([]domain.SessionID, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}

func testCreateGet(t *testing.T, st ports.SessionStore) {
	s := session("a", "dev1", "alice", 0)
	s.Role = domain.RoleController
	s.Reason = "why"
	mustCreate(t, st, s, domain.Quota{})
	got := mustGet(t, st, "a")
	wantSame(t, "Get", got, s)
}

func testCreateExists(t *testing.T, st ports.SessionStore) {
	ctx := context.Background()
	s := session("a", "dev1", "alice", 0)
	mustCreate(t, st, s, domain.Quota{})
	other := session("a", "dev2", "bob", time.Second)
	wantErr(t, "second Create", st.Create(ctx, other, domain.Quota{}), domain.ErrSessionExists)
	got := mustGet(t, st, "a")
	wantSame(t, "Get after refused Create", got, s)
	wantCount(t, st, 1)
	// The refused Create counted nothing against bob or dev2.
	mustCreate(t, st, session("b", "dev2", "bob", 0), domain.Quota{PerDevice: 1, PerOwner: 1})
}

func testNotFound(t *testing.T, st ports.SessionStore) {
	ctx := context.Background()
	mustCreate(t, st, session("a", "dev1", "alice", 0), domain.Quota{})
	_, err := st.Get(ctx, "x")
	wantErr(t, "Get", err, domain.ErrSessionNotFound)
	called := false
	_, err = st.Update(ctx, "x", func(*domain.Session) error { called = true; return nil })
	wantErr(t, "Update", err, domain.ErrSessionNotFound)
	if called {
		t.Error("Update called fn for an absent session")
	}
	wantErr(t, "Touch", st.Touch(ctx, "x", base), domain.ErrSessionNotFound)
	_, err = st.Delete(ctx, "x")
	wantErr(t, "Delete", err, domain.ErrSessionNotFound)
	wantCount(t, st, 1)
}

func testGetReturnsCopy(t *testing.T, st ports.SessionStore) {
	ctx := context.Background()
	s := session("a", "dev1", "alice", 0)
	mustCreate(t, st, s, domain.Quota{})
	got, _ := st.Get(ctx, "a")
	got.State = domain.StateClosed
	got.TokenHash[0] = 0
	again := mustGet(t, st, "a")
	wantSame(t, "Get after changing a copy", again, s)
}

func testUpdate(t *testing.T, st ports.SessionStore) {
	ctx := context.Background()
	mustCreate(t, st, session("a", "dev1", "alice", 0), domain.Quota{})
	now := base.Add(time.Second)
	got, err := st.Update(ctx, "a", func(s *domain.Session) error {
		s.Instance = "i2"
		return s.Transition(domain.StateNegotiating, "offer", now)
	})
	if err != nil {
		t.Fatalf("Update = %v", err)
	}
	if got.State != domain.StateNegotiating || got.Reason != "offer" || got.Instance != "i2" || !got.UpdatedAt.Equal(now) {
		t.Fatalf("Update returned %+v", got)
	}
	stored := mustGet(t, st, "a")
	wantSame(t, "Get after Update", stored, got)
}

func testUpdateFnError(t *testing.T, st ports.SessionStore) {
	ctx := context.Background()
	s := session("a", "dev1", "alice", 0)
	mustCreate(t, st, s, domain.Quota{})
	errBoom := errors.New("boom")
	_, err := st.Update(ctx, "a", func(s *domain.Session) error {
		s.State = domain.StateConnected
		s.ExpiresAt = base.Add(-time.Hour)
		return errBoom
	})
	wantErr(t, "Update", err, errBoom)
	got := mustGet(t, st, "a")
	wantSame(t, "Get after failed Update", got, s)
	// Nor was the expiry re-indexed.
	popped, err := st.PopExpired(ctx, base, 10)
	if err != nil || len(popped) != 0 {
		t.Fatalf("PopExpired after failed Update = %v, %v; want none", ids(popped), err)
	}
	// A domain error from fn comes back as itself.
	_, err = st.Update(ctx, "a", func(s *domain.Session) error {
		return s.Transition(domain.StateConnected, "", base)
	})
	wantErr(t, "Update with a forbidden transition", err, domain.ErrInvalidTransition)
}

func testUpdateReindexesExpiry(t *testing.T, st ports.SessionStore) {
	ctx := context.Background()
	mustCreate(t, st, session("a", "dev1", "alice", 0), domain.Quota{})
	mustCreate(t, st, session("b", "dev1", "alice", 0), domain.Quota{})
	// Bring a's expiry forward: it expires now.
	if _, err := st.Update(ctx, "a", func(s *domain.Session) error {
		s.ExpiresAt = base.Add(time.Second)
		return nil
	}); err != nil {
		t.Fatalf("Update = %v", err)
	}
	// Push b's expiry back: it no longer expires at base+ttl.
	if _, err := st.Update(ctx, "b", func(s *domain.Session) error {
		s.ExpiresAt = base.Add(2 * ttl)
		return nil
	}); err != nil {
		t.Fatalf("Update = %v", err)
	}
	popped, err := st.PopExpired(ctx, base.Add(ttl), 10)
	if err != nil {
		t.Fatalf("PopExpired = %v", err)
	}
	if got := ids(popped); !slices.Equal(got, []domain.SessionID{"a"}) {
		t.Fatalf("PopExpired at base+ttl = %v, want [a]", got)
	}
	popped, err = st.PopExpired(ctx, base.Add(2*ttl), 10)
	if err != nil {
		t.Fatalf("PopExpired = %v", err)
	}
	if got := ids(popped); !slices.Equal(got, []domain.SessionID{"b"}) {
		t.Fatalf("PopExpired at base+2ttl = %v, want [b]", got)
	}
}

func testTouch(t *testing.T, st ports.SessionStore) {
	ctx := context.Background()
	mustCreate(t, st, session("a", "dev1", "alice", 0), domain.Quota{})
	mustCreate(t, st, session("b", "dev1", "alice", 0), domain.Quota{})
	at := base.Add(50 * time.Second)
	if err := st.Touch(ctx, "a", at); err != nil {
		t.Fatalf("Touch = %v", err)
	}
	got := mustGet(t, st, "a")
	if want := at.Add(ttl); !got.ExpiresAt.Equal(want) {
		t.Fatalf("ExpiresAt after Touch = %v, want %v", got.ExpiresAt, want)
	}
	// At its old expiry only the untouched session goes.
	popped, err := st.PopExpired(ctx, base.Add(ttl), 10)
	if err != nil {
		t.Fatalf("PopExpired = %v", err)
	}
	if got := ids(popped); !slices.Equal(got, []domain.SessionID{"b"}) {
		t.Fatalf("PopExpired at the old expiry = %v, want [b]", got)
	}
	popped, err = st.PopExpired(ctx, at.Add(ttl), 10)
	if err != nil {
		t.Fatalf("PopExpired = %v", err)
	}
	if got := ids(popped); !slices.Equal(got, []domain.SessionID{"a"}) {
		t.Fatalf("PopExpired at the new expiry = %v, want [a]", got)
	}
}

func testTouchFinal(t *testing.T, st ports.SessionStore) {
	ctx := context.Background()
	mustCreate(t, st, session("a", "dev1", "alice", 0), domain.Quota{})
	if _, err := st.Update(ctx, "a", func(s *domain.Session) error {
		return s.Transition(domain.StateClosed, "bye", base)
	}); err != nil {
		t.Fatalf("Update = %v", err)
	}
	wantErr(t, "Touch of a closed session", st.Touch(ctx, "a", base.Add(time.Second)), domain.ErrSessionClosed)
	got := mustGet(t, st, "a")
	if want := base.Add(ttl); !got.ExpiresAt.Equal(want) {
		t.Fatalf("ExpiresAt after refused Touch = %v, want %v", got.ExpiresAt, want)
	}
}

func testDelete(t *testing.T, st ports.SessionStore) {
	ctx := context.Background()
	s := session("a", "dev1", "alice", 0)
	mustCreate(t, st, s, domain.Quota{})
	mustCreate(t, st, session("b", "dev1", "alice", 0), domain.Quota{})
	got, err := st.Delete(ctx, "a")
	if err != nil {
		t.Fatalf("Delete = %v", err)
	}
	wantSame(t, "Delete", got, s)
	_, err = st.Get(ctx, "a")
	wantErr(t, "Get after Delete", err, domain.ErrSessionNotFound)
	_, err = st.Delete(ctx, "a")
	wantErr(t, "second Delete", err, domain.ErrSessionNotFound)
	wantCount(t, st, 1)
	// A deleted session never comes back from PopExpired.
	popped, err := st.PopExpired(ctx, base.Add(ttl), 10)
	if err != nil {
		t.Fatalf("PopExpired = %v", err)
	}
	if got := ids(popped); !slices.Equal(got, []domain.SessionID{"b"}) {
		t.Fatalf("PopExpired after Delete = %v, want [b]", got)
	}
	// The id is free again.
	mustCreate(t, st, s, domain.Quota{})
}

func testCount(t *testing.T, st ports.SessionStore) {
	ctx := context.Background()
	wantCount(t, st, 0)
	for i := range 10 {
		mustCreate(t, st, session(fmt.Sprint("s", i), "dev1", "alice", time.Duration(i)*time.Second), domain.Quota{})
	}
	wantCount(t, st, 10)
	if _, err := st.Delete(ctx, "s3"); err != nil {
		t.Fatalf("Delete = %v", err)
	}
	wantCount(t, st, 9)
	if _, err := st.PopExpired(ctx, base.Add(ttl+time.Second), 100); err != nil { // s0, s1
		t.Fatalf("PopExpired = %v", err)
	}
	wantCount(t, st, 7)
}

// quotaCase describes one kind of limit: a quota and how to make sessions
// that count against the same limit (same) or not (other).
type quotaCase struct {
	q     domain.Quota
	same  func(i int) domain.Session
	other func(i int) domain.Session
}

func quotaCases(n int) map[string]quotaCase {
	return map[string]quotaCase{
		"total": {
			q: domain.Quota{Total: n, PerDevice: 100 * n, PerOwner: 100 * n},
			same: func(i int) domain.Session {
				return session(fmt.Sprint("s", i), fmt.Sprint("dev", i), fmt.Sprint("owner", i), 0)
			},
			other: nil, // every session counts against the total
		},
		"per-device": {
			q:     domain.Quota{Total: 100 * n, PerDevice: n, PerOwner: 100 * n},
			same:  func(i int) domain.Session { return session(fmt.Sprint("s", i), "dev1", fmt.Sprint("owner", i), 0) },
			other: func(i int) domain.Session { return session(fmt.Sprint("o", i), "dev2", fmt.Sprint("owner", i), 0) },
		},
		"per-owner": {
			q:     domain.Quota{Total: 100 * n, PerDevice: 100 * n, PerOwner: n},
			same:  func(i int) domain.Session { return session(fmt.Sprint("s", i), fmt.Sprint("dev", i), "alice", 0) },
			other: func(i int) domain.Session { return session(fmt.Sprint("o", i), fmt.Sprint("dev", i), "bob", 0) },
		},
	}
}

// testQuota checks one limit: n sessions fit, the next is refused and
// stores nothing, other devices/owners are not affected, and Delete frees
// a slot.
func testQuota(t *testing.T, st ports.SessionStore, kind string) {
	ctx := context.Background()
	const n = 3
	c := quotaCases(n)[kind]
	for i := range n {
		mustCreate(t, st, c.same(i), c.q)
	}
	over := c.same(n)
	err := st.Create(ctx, over, c.q)
	wantErr(t, "Create over the limit", err, domain.ErrLimitExceeded)
	if want := fmt.Sprintf("%s limit %d", kind, n); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the limit (%q)", err, want)
	}
	_, err = st.Get(ctx, over.ID)
	wantErr(t, "Get of the refused session", err, domain.ErrSessionNotFound)
	wantCount(t, st, n)
	if c.other != nil {
		mustCreate(t, st, c.other(0), c.q)
		if _, err := st.Delete(ctx, c.other(0).ID); err != nil {
			t.Fatalf("Delete = %v", err)
		}
	}
	if _, err := st.Delete(ctx, c.same(0).ID); err != nil {
		t.Fatalf("Delete = %v", err)
	}
	mustCreate(t, st, over, c.q)
	wantErr(t, "Create over the limit again", st.Create(ctx, c.same(n+1), c.q), domain.ErrLimitExceeded)
}

func testQuotaTotal(t *testing.T, st ports.SessionStore)     { testQuota(t, st, "total") }
func testQuotaPerDevice(t *testing.T, st ports.SessionStore) { testQuota(t, st, "per-device") }
func testQuotaPerOwner(t *testing.T, st ports.SessionStore)  { testQuota(t, st, "per-owner") }

func testQuotaZeroIsUnlimited(t *testing.T, st ports.SessionStore) {
	for i := range 50 {
		mustCreate(t, st, session(fmt.Sprint("s", i), "dev1", "alice", 0), domain.Quota{})
	}
	wantCount(t, st, 50)
}

func testQuotaFreedByPopExpired(t *testing.T, st ports.SessionStore) {
	ctx := context.Background()
	for kind, c := range quotaCases(2) {
		t.Run(kind, func(t *testing.T) {
			for i := range 2 {
				mustCreate(t, st, c.same(i), c.q)
			}
			wantErr(t, "Create over the limit", st.Create(ctx, c.same(2), c.q), domain.ErrLimitExceeded)
			popped, err := st.PopExpired(ctx, base.Add(ttl), 1)
			if err != nil || len(popped) != 1 {
				t.Fatalf("PopExpired = %v, %v; want one session", ids(popped), err)
			}
			mustCreate(t, st, c.same(2), c.q)
			// Leave the store empty for the next kind.
			if _, err := st.PopExpired(ctx, base.Add(ttl), 10); err != nil {
				t.Fatalf("PopExpired = %v", err)
			}
			wantCount(t, st, 0)
		})
	}
}

func testPopExpiredOrder(t *testing.T, st ports.SessionStore) {
	ctx := context.Background()
	// Created out of order; offsets in seconds. Each expires ttl later.
	offsets := []int{7, 3, 9, 0, 5, 1, 8, 2, 6, 4}
	for _, o := range offsets {
		mustCreate(t, st, session(fmt.Sprint("s", o), fmt.Sprint("dev", o%3), "alice", time.Duration(o)*time.Second), domain.Quota{})
	}
	// At base+ttl+5s, s0..s5 have expired: s5 exactly at now counts.
	popped, err := st.PopExpired(ctx, base.Add(ttl+5*time.Second), 100)
	if err != nil {
		t.Fatalf("PopExpired = %v", err)
	}
	want := []domain.SessionID{"s0", "s1", "s2", "s3", "s4", "s5"}
	if got := ids(popped); !slices.Equal(got, want) {
		t.Fatalf("PopExpired = %v, want %v", got, want)
	}
	for _, s := range popped {
		if !s.Expired(base.Add(ttl + 5*time.Second)) {
			t.Errorf("PopExpired returned %s expiring at %v", s.ID, s.ExpiresAt)
		}
		_, err := st.Get(ctx, s.ID)
		wantErr(t, "Get of a popped session", err, domain.ErrSessionNotFound)
	}
	wantCount(t, st, 4)
	// Nothing more is expired at the same instant.
	popped, err = st.PopExpired(ctx, base.Add(ttl+5*time.Second), 100)
	if err != nil || len(popped) != 0 {
		t.Fatalf("second PopExpired = %v, %v; want none", ids(popped), err)
	}
	for _, id := range []domain.SessionID{"s6", "s7", "s8", "s9"} {
		if _, err := st.Get(ctx, id); err != nil {
			t.Errorf("Get(%s) of an unexpired session = %v", id, err)
		}
	}
}

func testPopExpiredMax(t *testing.T, st ports.SessionStore) {
	ctx := context.Background()
	for i := range 20 {
		o := (i * 7) % 20 // a permutation of 0..19
		mustCreate(t, st, session(fmt.Sprintf("s%02d", o), "dev1", "alice", time.Duration(o)*time.Second), domain.Quota{})
	}
	now := base.Add(ttl + time.Hour)
	popped, err := st.PopExpired(ctx, now, 0)
	if err != nil || len(popped) != 0 {
		t.Fatalf("PopExpired(max 0) = %v, %v; want none", ids(popped), err)
	}
	wantCount(t, st, 20)
	var all []domain.SessionID
	for _, m := range []int{3, 3, 10, 100} {
		popped, err := st.PopExpired(ctx, now, m)
		if err != nil {
			t.Fatalf("PopExpired = %v", err)
		}
		if len(popped) > m {
			t.Fatalf("PopExpired(max %d) returned %d", m, len(popped))
		}
		all = append(all, ids(popped)...)
	}
	var want []domain.SessionID
	for i := range 20 {
		want = append(want, domain.SessionID(fmt.Sprintf("s%02d", i)))
	}
	if !slices.Equal(all, want) {
		t.Fatalf("PopExpired in batches of 3, 3, 10, 100 = %v, want %v", all, want)
	}
	wantCount(t, st, 0)
}

func testPopExpiredEmpty(t *testing.T, st ports.SessionStore) {
	popped, err := st.PopExpired(context.Background(), base.Add(time.Hour), 10)
	if err != nil || len(popped) != 0 {
		t.Fatalf("PopExpired on an empty store = %v, %v; want none", ids(popped), err)
	}
}

// testConcurrentLastSlot races many Creates for n slots of each limit:
// exactly n win, the others see ErrLimitExceeded.
func testConcurrentLastSlot(t *testing.T, st ports.SessionStore) {
	const n, racers = 5, 40
	for kind, c := range quotaCases(n) {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			start := make(chan struct{})
			errs := make([]error, racers)
			var wg sync.WaitGroup
			for i := range racers {
				wg.Go(func() {
					<-start
					errs[i] = st.Create(ctx, c.same(i), c.q)
				})
			}
			close(start)
			wg.Wait()
			won := 0
			for i, err := range errs {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, domain.ErrLimitExceeded):
					t.Errorf("Create(%d) = %v, want nil or ErrLimitExceeded", i, err)
				}
			}
			if won != n {
				t.Fatalf("%d Creates succeeded, want exactly %d", won, n)
			}
			wantCount(t, st, n)
			popped, err := st.PopExpired(ctx, base.Add(ttl), racers)
			if err != nil || len(popped) != n {
				t.Fatalf("PopExpired = %d sessions, %v; want %d", len(popped), err, n)
			}
		})
	}
}

// testConcurrentSameID races Creates of one id: exactly one wins.
func testConcurrentSameID(t *testing.T, st ports.SessionStore) {
	const racers = 20
	ctx := context.Background()
	start := make(chan struct{})
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			<-start
			errs[i] = st.Create(ctx, session("a", fmt.Sprint("dev", i), "alice", 0), domain.Quota{PerOwner: racers})
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, domain.ErrSessionExists):
			t.Errorf("Create(%d) = %v, want nil or ErrSessionExists", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d Creates of one id succeeded, want 1", won)
	}
	wantCount(t, st, 1)
}

// testConcurrentMixed runs every operation at once and checks that the
// count and the quota agree with what happened.
func testConcurrentMixed(t *testing.T, st ports.SessionStore) {
	const workers, each = 4, 50
	ctx := context.Background()
	q := domain.Quota{Total: workers * each, PerDevice: workers * each, PerOwner: workers * each}
	var wg sync.WaitGroup
	var mu sync.Mutex
	removed := 0
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				s := session(id, fmt.Sprint("dev", i%3), fmt.Sprint("owner", w), time.Duration(i)*time.Second)
				if err := st.Create(ctx, s, q); err != nil {
					t.Errorf("Create(%s) = %v", id, err)
					return
				}
				if _, err := st.Get(ctx, s.ID); err != nil && !errors.Is(err, domain.ErrSessionNotFound) {
					t.Errorf("Get(%s) = %v", id, err)
				}
				if err := st.Touch(ctx, s.ID, base.Add(time.Duration(i)*time.Second)); err != nil && !errors.Is(err, domain.ErrSessionNotFound) {
					t.Errorf("Touch(%s) = %v", id, err)
				}
				n := 0
				switch i % 5 {
				case 0:
					if _, err := st.Delete(ctx, s.ID); err == nil {
						n = 1
					} else if !errors.Is(err, domain.ErrSessionNotFound) {
						t.Errorf("Delete(%s) = %v", id, err)
					}
				case 1:
					popped, err := st.PopExpired(ctx, base.Add(ttl+time.Duration(i)*time.Second), 3)
					if err != nil {
						t.Errorf("PopExpired = %v", err)
					}
					n = len(popped)
				}
				mu.Lock()
				removed += n
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	left := workers*each - removed
	wantCount(t, st, left)
	popped, err := st.PopExpired(ctx, base.Add(time.Hour), workers*each)
	if err != nil {
		t.Fatalf("PopExpired = %v", err)
	}
	if len(popped) != left {
		t.Fatalf("final PopExpired returned %d, want %d", len(popped), left)
	}
	if !slices.IsSortedFunc(popped, func(a, b domain.Session) int { return a.ExpiresAt.Compare(b.ExpiresAt) }) {
		t.Error("final PopExpired is not earliest first")
	}
	wantCount(t, st, 0)
	// Every slot is free again: the whole quota fits once more.
	for i := range workers * each {
		mustCreate(t, st, session(fmt.Sprint("again", i), "dev0", "owner0", 0), q)
	}
}
