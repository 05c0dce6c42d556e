// Package memstore keeps sessions and rate-limit buckets in the memory of one
// instance: Store implements ports.SessionStore with a sharded map and a
// per-shard expiry min-heap, Limiter implements ports.RateLimiter with token
// buckets.
//
// Nothing in this package closes a session or starts a goroutine: PopExpired
// hands expired sessions to its caller, which closes them outside any lock.
package memstore

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
)

var _ ports.SessionStore = (*Store)(nil)

// errImmutable is returned by Update when fn changes a field the store
// indexes by. It is a programming error, so it wraps no domain sentinel.
var errImmutable = errors.New("id, device and owner of a stored session are immutable")

// Options configures a Store. The zero value is ready to use.
type Options struct {
	// Shards is the number of map shards; it is rounded up to a power of
	// two. Zero or less picks the default: 64, or 4×GOMAXPROCS rounded up
	// when that is larger.
	Shards int
}

// Store is an in-memory ports.SessionStore for a single instance.
//
// Sessions live in a power-of-two number of shards picked by a maphash of
// the session id; each shard has its own RWMutex, map and expiry min-heap.
// The heap is cleaned lazily with a generation per heap slot: Update and Touch
// push a new item (O(1) when the expiry moves to the back, as a touch
// does) and the old one goes stale; Delete is O(1). Stale items are
// dropped when they reach the top or when they outnumber the live ones, so
// a heap holds at most 2n+64 items. PopExpired merges the shards' heaps
// (container/heap over the shard heads) and costs O(shards + k log n) for
// k sessions returned, plus the stale items it drops, amortized against
// the calls that made them. No operation holds more than one shard lock
// or scans the store.
//
// Quota counters (total, per device, per owner) live under one small mutex
// taken while the shard lock of the session being created or removed is
// held, so a Create sees and takes quota atomically: two concurrent Creates
// can never both take the last slot, and a removal frees its slot before
// its shard lock is released.
//
// Every operation is all-or-nothing: it makes each check that can fail
// (the context, the session's presence, Update's fn and its immutable
// fields, the quota) before its first change, and its changes to map,
// heap and quota counters cannot fail, so an error or a panic in fn leaves
// the store as it was and never a session without its quota or index.
// Heap compaction, which only changes the layout, runs last.
//
// Expiry instants are compared as wall-clock time (the monotonic reading,
// if any, is ignored), as Redis would.
//
// A Store must be made with New. All methods are safe for concurrent use.
type Store struct {
	// Read by every call and never written after New.
	seed   maphash.Seed
	mask   uint64
	shards []shard
	_      [128 - 8 - 8 - 24]byte // keep quota's writes off this cache line

	quota quotaCounts
	_     [128 - 8 - 8 - 8 - 8]byte

	// entries recycles removed entries: they never leave the store, so
	// churn (Create after Delete or PopExpired) allocates nothing and
	// feeds the garbage collector nothing.
	entries sync.Pool
}

// New returns an empty Store.
func New(opts Options) *Store {
	n := opts.Shards
	if n <= 0 {
		n = max(64, 4*runtime.GOMAXPROCS(0))
	}
	n = 1 << bits.Len(uint(n-1)) // round up to a power of two
	s := &Store{
		seed:   maphash.MakeSeed(),
		mask:   uint64(n - 1),
		shards: make([]shard, n),
		quota: quotaCounts{
			byDevice: make(map[domain.DeviceID]int),
			byOwner:  make(map[string]int),
		},
	}
	for i := range s.shards {
		s.shards[i].m = make(map[domain.SessionID]*entry)
	}
	return s
}

// shard is one slice of the store. It is padded to whole cache lines (a
// test checks), so neighbouring shards' locks never share one.
type shard struct {
	mu  sync.RWMutex
	m   map[domain.SessionID]*entry
	exp expiryHeap
	_   [192 - 24 - 8 - 104]byte
}

func (st *Store) shardOf(id domain.SessionID) *shard {
	return &st.shards[maphash.String(st.seed, string(id))&st.mask]
}

// Create stores s if no session with its id exists and q allows one more
// session in total, for s.DeviceID and for s.Owner (a zero limit is
// unlimited). Otherwise it stores nothing and returns an error wrapping
// domain.ErrSessionExists, or domain.ErrLimitExceeded naming the limit
// ("per-device limit 10 for demo"). It wraps ctx.Err() if ctx is done.
func (st *Store) Create(ctx context.Context, s domain.Session, q domain.Quota) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("create session %s: %w", s.ID, err)
	}
	sh := st.shardOf(s.ID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[s.ID]; ok {
		return fmt.Errorf("create session %s: %w", s.ID, domain.ErrSessionExists)
	}
	// take is the last check that can fail; nothing after it can.
	if err := st.quota.take(&s, q); err != nil {
		return fmt.Errorf("create session %s: %w", s.ID, err)
	}
	e := st.newEntry()
	e.s = s
	sh.m[s.ID] = e
	sh.exp.push(e)
	sh.exp.maybeCompact()
	return nil
}

// Get returns a copy of the session, or an error wrapping
// domain.ErrSessionNotFound. It wraps ctx.Err() if ctx is done.
func (st *Store) Get(ctx context.Context, id domain.SessionID) (domain.Session, error) {
	if err := ctx.Err(); err != nil {
		return domain.Session{}, fmt.Errorf("get session %s: %w", id, err)
	}
	sh := st.shardOf(id)
	sh.mu.RLock()
	e, ok := sh.m[id]
	if !ok {
		sh.mu.RUnlock()
		return domain.Session{}, fmt.Errorf("get session %s: %w", id, domain.ErrSessionNotFound)
	}
	s := e.s
	sh.mu.RUnlock()
	return s, nil
}

// Update applies fn to a copy of the stored session under the session's
// shard lock and, if fn returns nil, stores the copy, re-indexes its expiry
// and returns it. If fn returns an error nothing is stored and that error is
// returned wrapped. fn must not change ID, DeviceID or Owner (the quota
// counts them); Update returns an error and stores nothing if it does. fn
// runs under a lock and must not call the Store. The error wraps
// domain.ErrSessionNotFound if the session is absent, or wraps ctx.Err() if ctx
// is done.
func (st *Store) Update(ctx context.Context, id domain.SessionID, fn func(*domain.Session) error) (domain.Session, error) {
	if err := ctx.Err(); err != nil {
		return domain.Session{}, fmt.Errorf("update session %s: %w", id, err)
	}
	sh := st.shardOf(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.m[id]
	if !ok {
		return domain.Session{}, fmt.Errorf("update session %s: %w", id, domain.ErrSessionNotFound)
	}
	s := e.s
	if err := fn(&s); err != nil {
		return domain.Session{}, fmt.Errorf("update session %s: %w", id, err)
	}
	if s.ID != e.s.ID || s.DeviceID != e.s.DeviceID || s.Owner != e.s.Owner {
		return domain.Session{}, fmt.Errorf("update session %s: %w", id, errImmutable)
	}
	e.s = s
	sh.exp.reindex(e)
	sh.exp.maybeCompact()
	return s, nil
}

// Touch extends the session's life to its TTL after now (domain
// Session.Touch). The error wraps domain.ErrSessionNotFound if the session
// is absent and domain.ErrSessionClosed if it is in a final state (it is not
// extended then), or wraps ctx.Err() if ctx is done.
func (st *Store) Touch(ctx context.Context, id domain.SessionID, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("touch session %s: %w", id, err)
	}
	sh := st.shardOf(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.m[id]
	if !ok {
		return fmt.Errorf("touch session %s: %w", id, domain.ErrSessionNotFound)
	}
	s := e.s
	if err := s.Touch(now); err != nil {
		return err // already names the operation and the session
	}
	e.s = s
	sh.exp.reindex(e)
	sh.exp.maybeCompact()
	return nil
}

// Delete removes the session, frees its quota and returns what it was. The
// error wraps domain.ErrSessionNotFound if the session is absent, or wraps
// ctx.Err() if ctx is done.
func (st *Store) Delete(ctx context.Context, id domain.SessionID) (domain.Session, error) {
	if err := ctx.Err(); err != nil {
		return domain.Session{}, fmt.Errorf("delete session %s: %w", id, err)
	}
	sh := st.shardOf(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.m[id]
	if !ok {
		return domain.Session{}, fmt.Errorf("delete session %s: %w", id, domain.ErrSessionNotFound)
	}
	s := e.s
	st.remove(sh, e)
	sh.exp.maybeCompact()
	return s, nil
}

// PopExpired removes and returns up to n sessions whose ExpiresAt is not
// after now, earliest first, and frees their quota. It never returns an
// error but one wrapping ctx.Err(); n ≤ 0 returns nothing.
//
// It peeks at the head of every shard's heap, then merges: each step locks
// only the shard holding the earliest expired session. A session touched or
// updated concurrently is seen as it is when its shard is locked, so the
// order is exact when nothing else writes, and each returned session was
// expired when it was removed. Besides O(k log n) for k sessions it drops
// the stale heap items it meets, which Touch and Update left behind (at
// most one per call of theirs).
func (st *Store) PopExpired(ctx context.Context, now time.Time, n int) ([]domain.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pop expired sessions: %w", err)
	}
	if n <= 0 {
		return nil, nil
	}
	limit := keyOf(now)
	heads := make(headHeap, 0, len(st.shards))
	for i := range st.shards {
		sh := &st.shards[i]
		sh.mu.RLock()
		// The top item may be stale; its key is then earlier than the
		// shard's first live one, so the shard is visited early at worst.
		if items := sh.exp.items; len(items) > 0 && !limit.before(items[0].key) {
			heads = append(heads, head{key: items[0].key, shard: i})
		}
		sh.mu.RUnlock()
	}
	if len(heads) == 0 {
		return nil, nil
	}
	heap.Init(&heads)
	// Expiries spread evenly over the shards, so 16 per expired head is a
	// generous first guess that stays small when few sessions expired.
	out := make([]domain.Session, 0, min(n, 16*len(heads), int(st.quota.total.Load())))
	for len(heads) > 0 && len(out) < n {
		h := heads[0]
		sh := &st.shards[h.shard]
		sh.mu.Lock()
		// Take from this shard while its head is expired and no earlier
		// than the next shard's head.
		for len(out) < n {
			k, e, ok := sh.exp.min()
			if !ok || limit.before(k) || (len(heads) > 1 && heads.second().before(k)) {
				break
			}
			sh.exp.popTop()
			out = append(out, e.s)
			st.remove(sh, e)
		}
		sh.exp.maybeCompact()
		if k, _, ok := sh.exp.min(); ok && !limit.before(k) {
			heads[0].key = k
			heap.Fix(&heads, 0)
		} else {
			heads.dropRoot()
		}
		sh.mu.Unlock()
	}
	return out, nil
}

// Count returns how many sessions are stored. It wraps ctx.Err() if ctx is
// done.
func (st *Store) Count(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("count sessions: %w", err)
	}
	return int(st.quota.total.Load()), nil
}

// newEntry returns an unused entry.
func (st *Store) newEntry() *entry {
	if e, ok := st.entries.Get().(*entry); ok {
		return e
	}
	return new(entry)
}

// freeEntry recycles e, which its shard no longer holds. It drops the
// session so its strings can be collected.
func (st *Store) freeEntry(e *entry) {
	*e = entry{slot: -1}
	st.entries.Put(e)
}

// remove deletes e from sh's map and heap (its item goes stale, and is the
// caller's to take off the top or leave), frees its quota and recycles e.
// None of these steps can fail, so a removal is never half-done. The
// caller holds sh.mu for writing and compacts sh's heap afterwards.
func (st *Store) remove(sh *shard, e *entry) {
	sh.exp.release(e)
	delete(sh.m, e.s.ID)
	st.quota.release(&e.s)
	st.freeEntry(e)
}

// quotaCounts counts the stored sessions in total, per device and per owner.
// Maps drop a key when its count reaches zero, so they hold only live
// devices and owners.
type quotaCounts struct {
	mu       sync.Mutex
	total    atomic.Int64 // written under mu, read without it by Count
	byDevice map[domain.DeviceID]int
	byOwner  map[string]int
}

// take counts s if q allows one more session, or returns an error wrapping
// domain.ErrLimitExceeded naming the first limit reached.
func (c *quotaCounts) take(s *domain.Session, q domain.Quota) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if q.Total > 0 && c.total.Load() >= int64(q.Total) {
		return fmt.Errorf("total limit %d: %w", q.Total, domain.ErrLimitExceeded)
	}
	if q.PerDevice > 0 && c.byDevice[s.DeviceID] >= q.PerDevice {
		return fmt.Errorf("per-device limit %d for %s: %w", q.PerDevice, s.DeviceID, domain.ErrLimitExceeded)
	}
	if q.PerOwner > 0 && c.byOwner[s.Owner] >= q.PerOwner {
		return fmt.Errorf("per-owner limit %d for %s: %w", q.PerOwner, s.Owner, domain.ErrLimitExceeded)
	}
	c.total.Add(1)
	c.byDevice[s.DeviceID]++
	c.byOwner[s.Owner]++
	return nil
}

// release uncounts a session that take counted.
func (c *quotaCounts) release(s *domain.Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total.Add(-1)
	if n := c.byDevice[s.DeviceID]; n > 1 {
		c.byDevice[s.DeviceID] = n - 1
	} else {
		delete(c.byDevice, s.DeviceID)
	}
	if n := c.byOwner[s.Owner]; n > 1 {
		c.byOwner[s.Owner] = n - 1
	} else {
		delete(c.byOwner, s.Owner)
	}
}
