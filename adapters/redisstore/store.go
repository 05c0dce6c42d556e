// Package redisstore keeps what several mediasvc instances share in Redis
// (go-redis v9): Store implements ports.SessionStore, Limiter
// ports.RateLimiter, Registry ports.InstanceRegistry (live instances with
// a heartbeat TTL), Leases ports.DeviceLeases (device ownership with
// fencing tokens) and Bus ports.Bus (signaling between instances over
// pub/sub). Monitor watches Redis itself; Migrate applies the keyspace
// migrations shipped in the migrations directory.
//
// Every error caused by Redis itself (unreachable, timed out, refused)
// wraps domain.ErrUnavailable, so the HTTP adapter answers 503.
package redisstore

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"mediasvc/domain"
	"mediasvc/ports"
)

var _ ports.SessionStore = (*Store)(nil)

// errImmutable is returned by Update when fn changes a field the store
// indexes by, as memstore does.
var errImmutable = errors.New("id, device and owner of a stored session are immutable")

// Options configures a Store.
type Options struct {
	// Prefix starts every key the store writes ("mediasvc:" if empty), so
	// several deployments can share one Redis.
	Prefix string
	// KeyGrace is how long a session's hash outlives its expiry in Redis
	// (PEXPIREAT), so an instance that reaps late still reads it, and a
	// keyspace whose instances all died empties itself. It is also how
	// long past its expiry a shard entry the quota does not count (left by
	// a crash mid-create) waits before the expiry pass removes it. Default
	// 1 minute.
	KeyGrace time.Duration
	// TouchThrottle skips a Touch that would move the stored expiry by
	// less than this, so per-packet activity never becomes Redis traffic.
	// Zero writes every Touch.
	TouchThrottle time.Duration
	// Wait, when Replicas > 0, makes Create, Update and Delete wait until
	// that many replicas confirmed the write (Redis WAIT) before they
	// succeed, so a failover cannot lose what was acknowledged.
	Wait Wait
}

// Store is a ports.SessionStore in Redis, shared by every instance that
// uses the same Redis and prefix: a single server, a Sentinel-managed
// primary, or a Redis Cluster (the layout is in keys.go: every script
// touches one slot).
//
// Create, Delete and PopExpired are two Lua scripts each, one on the
// session's shard and one on the quota (scripts.go says in which order
// and why a crash between them loses nothing); Touch is one script;
// Update is an optimistic WATCH/MULTI transaction on the session's hash,
// retried on conflict.
//
// Times are stored to the microsecond, as Redis scores hold them exactly.
//
// A Store must be made with New. Its methods are safe for concurrent use.
type Store struct {
	rdb   redis.UniversalClient
	keys  keys
	grace time.Duration
	wait  Wait

	throttle time.Duration
	mu       sync.Mutex
	touched  map[domain.SessionID]time.Time // expiry last written by Touch
}

// New returns a Store on rdb. It does not contact Redis.
func New(rdb redis.UniversalClient, opts Options) *Store {
	if opts.KeyGrace <= 0 {
		opts.KeyGrace = time.Minute
	}
	return &Store{
		rdb: rdb, keys: newKeys(opts.Prefix), grace: opts.KeyGrace, wait: opts.Wait,
		throttle: opts.TouchThrottle, touched: make(map[domain.SessionID]time.Time),
	}
}

// unavailable wraps a Redis failure: domain.ErrUnavailable and the cause.
func unavailable(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w: %w", op, domain.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: redis: %w: %w", op, domain.ErrUnavailable, err)
}

// Create stores s if no session with its id exists and q allows one more
// session in total, for s.DeviceID and for s.Owner (zero is unlimited).
// Otherwise it stores nothing and returns an error wrapping
// domain.ErrSessionExists or domain.ErrLimitExceeded naming the limit, or
// domain.ErrUnavailable when Redis fails.
func (st *Store) Create(ctx context.Context, s domain.Session, q domain.Quota) error {
	hash, exp := st.keys.session(s.ID), st.keys.expiry(shardOf(s.ID))
	args := make([]any, 0, 3+2*len(fieldNames))
	args = append(args, string(s.ID), s.ExpiresAt.UnixMicro(), st.keyExpiry(s.ExpiresAt))
	args = appendFields(args, &s)
	r, err := shardCreateScript.Run(ctx, st.rdb, []string{hash, exp}, args...).Int()
	if err != nil {
		return unavailable("create session "+string(s.ID), err)
	}
	if r == 1 {
		return fmt.Errorf("create session %s: %w", s.ID, domain.ErrSessionExists)
	}
	r, err = runScript(ctx, st.rdb, st.wait, quotaTakeScript, st.keys.quota(),
		string(s.ID), string(s.DeviceID), s.Owner, q.Total, q.PerDevice, q.PerOwner).Int()
	if err != nil {
		if !errors.Is(err, errNotReplicated) {
			st.undoCreate(ctx, s.ID)
		}
		return unavailable("create session "+string(s.ID), err)
	}
	if r != 0 {
		st.undoCreate(ctx, s.ID)
	}
	switch r {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("create session %s: %w", s.ID, domain.ErrSessionExists)
	case 2:
		return fmt.Errorf("create session %s: total limit %d: %w", s.ID, q.Total, domain.ErrLimitExceeded)
	case 3:
		return fmt.Errorf("create session %s: per-device limit %d for %s: %w", s.ID, q.PerDevice, s.DeviceID, domain.ErrLimitExceeded)
	default:
		return fmt.Errorf("create session %s: per-owner limit %d for %s: %w", s.ID, q.PerOwner, s.Owner, domain.ErrLimitExceeded)
	}
}

// undoCreate removes the hash a refused Create wrote. Should that fail
// too, the shard entry is one the quota does not count, removed by a later
// expiry pass.
func (st *Store) undoCreate(ctx context.Context, id domain.SessionID) {
	_ = shardRemoveScript.Run(context.WithoutCancel(ctx), st.rdb,
		[]string{st.keys.expiry(shardOf(id)), st.keys.session(id)}, string(id)).Err()
}

// keyExpiry is when a session's hash leaves Redis: KeyGrace after expiry,
// in Unix ms.
func (st *Store) keyExpiry(exp time.Time) int64 { return exp.Add(st.grace).UnixMilli() }

// Get returns the session, or an error wrapping domain.ErrSessionNotFound
// or domain.ErrUnavailable.
func (st *Store) Get(ctx context.Context, id domain.SessionID) (domain.Session, error) {
	m, err := st.rdb.HGetAll(ctx, st.keys.session(id)).Result()
	if err != nil {
		return domain.Session{}, unavailable("get session "+string(id), err)
	}
	if len(m) == 0 {
		return domain.Session{}, fmt.Errorf("get session %s: %w", id, domain.ErrSessionNotFound)
	}
	s, err := decode(m)
	if err != nil {
		return domain.Session{}, fmt.Errorf("get session %s: %w", id, err)
	}
	return s, nil
}

// Update applies fn to the stored session and stores the result,
// re-indexing its expiry, in a WATCH/MULTI transaction retried when another
// writer got there first (fn may then run more than once). If fn returns an
// error nothing is stored and that error is returned wrapped. fn must not
// change ID, DeviceID or Owner. Errors wrap domain.ErrSessionNotFound or
// domain.ErrUnavailable.
func (st *Store) Update(ctx context.Context, id domain.SessionID, fn func(*domain.Session) error) (domain.Session, error) {
	key, exp := st.keys.session(id), st.keys.expiry(shardOf(id))
	var out domain.Session
	var fnErr error
	txf := func(tx *redis.Tx) error {
		m, err := tx.HGetAll(ctx, key).Result()
		if err != nil {
			return err
		}
		if len(m) == 0 {
			fnErr = fmt.Errorf("update session %s: %w", id, domain.ErrSessionNotFound)
			return nil
		}
		old, err := decode(m)
		if err != nil {
			fnErr = fmt.Errorf("update session %s: %w", id, err)
			return nil
		}
		s := old
		if err := fn(&s); err != nil {
			fnErr = fmt.Errorf("update session %s: %w", id, err)
			return nil
		}
		if s.ID != old.ID || s.DeviceID != old.DeviceID || s.Owner != old.Owner {
			fnErr = fmt.Errorf("update session %s: %w", id, errImmutable)
			return nil
		}
		fnErr = nil
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, appendFields(nil, &s)...)
			p.PExpireAt(ctx, key, time.UnixMilli(st.keyExpiry(s.ExpiresAt)))
			p.ZAdd(ctx, exp, redis.Z{Score: float64(s.ExpiresAt.UnixMicro()), Member: string(id)})
			return nil
		})
		if err == nil {
			err = st.wait.on(ctx, tx)
		}
		out = s
		return err
	}
	for range 100 {
		err := st.rdb.Watch(ctx, txf, key)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil {
			return domain.Session{}, unavailable("update session "+string(id), err)
		}
		if fnErr != nil {
			return domain.Session{}, fnErr
		}
		return out, nil
	}
	return domain.Session{}, fmt.Errorf("update session %s: too much contention: %w", id, domain.ErrConflict)
}

// Touch extends the session's life to its TTL after now (domain
// Session.Touch, mirrored in a Lua script). With Options.TouchThrottle set
// it writes nothing when the last expiry this Store wrote for the session
// is within the throttle of the new one. Errors wrap
// domain.ErrSessionNotFound, domain.ErrSessionClosed (a final session is
// not extended) or domain.ErrUnavailable.
func (st *Store) Touch(ctx context.Context, id domain.SessionID, now time.Time) error {
	if st.throttle > 0 {
		st.mu.Lock()
		last, ok := st.touched[id]
		st.mu.Unlock()
		if ok && now.Sub(last) < st.throttle {
			return nil
		}
	}
	ks := []string{st.keys.session(id), st.keys.expiry(shardOf(id))}
	r, err := touchScript.Run(ctx, st.rdb, ks, string(id), now.UnixMicro(), st.grace.Milliseconds()).Int()
	if err != nil {
		return unavailable("touch session "+string(id), err)
	}
	switch r {
	case 1:
		st.forget(id)
		return fmt.Errorf("touch session %s: %w", id, domain.ErrSessionNotFound)
	case 2:
		return fmt.Errorf("touch session %s: %w", id, domain.ErrSessionClosed)
	}
	if st.throttle > 0 {
		st.mu.Lock()
		if len(st.touched) >= 1<<16 { // sessions removed elsewhere leave entries: bound them
			clear(st.touched)
		}
		st.touched[id] = now
		st.mu.Unlock()
	}
	return nil
}

func (st *Store) forget(id domain.SessionID) {
	if st.throttle > 0 {
		st.mu.Lock()
		delete(st.touched, id)
		st.mu.Unlock()
	}
}

// Delete removes the session, frees its quota and returns what it was.
// Errors wrap domain.ErrSessionNotFound or domain.ErrUnavailable. When the
// quota was freed but removing the hash failed, the error wraps
// domain.ErrUnavailable and the expiry pass removes the rest.
func (st *Store) Delete(ctx context.Context, id domain.SessionID) (domain.Session, error) {
	v, err := quotaReleaseScript.Run(ctx, st.rdb, st.keys.quota(), string(id)).Slice()
	if err != nil {
		return domain.Session{}, unavailable("delete session "+string(id), err)
	}
	if len(v) < 2 {
		return domain.Session{}, fmt.Errorf("delete session %s: %w", id, domain.ErrSessionNotFound)
	}
	meta, _ := v[1].(string)
	st.forget(id)
	fields, err := st.removeFromShard(ctx, shardOf(id), []string{string(id)})
	if err != nil {
		return domain.Session{}, unavailable("delete session "+string(id), err)
	}
	s, err := released(string(id), meta, fields[0])
	if err != nil {
		return domain.Session{}, fmt.Errorf("delete session %s: %w", id, err)
	}
	return s, nil
}

// removeFromShard runs shardRemoveScript on ids of shard n (waiting for
// replicas when so configured) and returns their hashes' field/value
// lists, one per id.
func (st *Store) removeFromShard(ctx context.Context, n int, ids []string) ([][]any, error) {
	ks := make([]string, 0, 1+len(ids))
	ks = append(ks, st.keys.expiry(n))
	args := make([]any, len(ids))
	for i, id := range ids {
		ks = append(ks, st.keys.session(domain.SessionID(id)))
		args[i] = id
	}
	v, err := runScript(ctx, st.rdb, st.wait, shardRemoveScript, ks, args...).Slice()
	if err != nil {
		return nil, err
	}
	out := make([][]any, len(ids))
	for i := range out {
		if i < len(v) {
			out[i], _ = v[i].([]any)
		}
	}
	return out, nil
}

// due is an expiry entry read from a shard.
type due struct {
	id    string
	score float64
}

// PopExpired removes and returns up to max sessions whose expiry is not
// after now, earliest first, and frees their quota. It reads the earliest
// max entries of every shard (one pipelined ZRANGEBYSCORE each, O(log n +
// k): never a scan), merges them, releases the earliest max from the
// quota in one script and removes them from their shards. Two instances
// popping at once never return the same session: the quota release
// decides. A session whose hash Redis already expired comes back with its
// id, device and owner only, in StateExpired. A shard entry the quota does
// not count and that expired more than KeyGrace before now (left by a
// crash mid-create) is removed and not returned.
func (st *Store) PopExpired(ctx context.Context, now time.Time, max int) ([]domain.Session, error) {
	if max <= 0 {
		return nil, nil
	}
	all, err := st.peekExpired(ctx, now, max)
	if err != nil || len(all) == 0 {
		return nil, err
	}
	stale := float64(now.Add(-st.grace).UnixMicro())
	all = all[:min(max, len(all))]
	args := make([]any, len(all))
	for i, d := range all {
		args[i] = d.id
	}
	v, err := quotaReleaseScript.Run(ctx, st.rdb, st.keys.quota(), args...).Slice()
	if err != nil {
		return nil, unavailable("pop expired sessions", err)
	}
	won := make(map[string]string, len(v)/2)
	for i := 0; i+1 < len(v); i += 2 {
		id, _ := v[i].(string)
		meta, _ := v[i+1].(string)
		won[id] = meta
	}
	var byShard [Shards][]string // what to remove from each shard
	for _, d := range all {
		if _, ok := won[d.id]; ok || d.score < stale {
			n := shardOf(domain.SessionID(d.id))
			byShard[n] = append(byShard[n], d.id)
		}
	}
	fields := make(map[string][]any, len(won))
	var shardErr error
	for n, ids := range byShard {
		if len(ids) == 0 {
			continue
		}
		got, err := st.removeFromShard(ctx, n, ids)
		if err != nil {
			shardErr = cmp.Or(shardErr, err)
			continue
		}
		for i, id := range ids {
			fields[id] = got[i]
		}
	}
	out := make([]domain.Session, 0, len(won))
	for _, d := range all {
		meta, ok := won[d.id]
		if !ok {
			continue
		}
		st.forget(domain.SessionID(d.id))
		s, err := released(d.id, meta, fields[d.id])
		if err != nil {
			return out, fmt.Errorf("pop expired sessions: %w", err)
		}
		out = append(out, s)
	}
	if shardErr != nil {
		// The quota is freed and the sessions are returned; the hashes left
		// behind expire on their own and a later pass removes their entries.
		return out, unavailable("pop expired sessions", shardErr)
	}
	return out, nil
}

// peekExpired reads the earliest max entries at or before now of every
// shard, in one pipeline, and returns them sorted by expiry (then id).
func (st *Store) peekExpired(ctx context.Context, now time.Time, max int) ([]due, error) {
	var cmds [Shards]*redis.ZSliceCmd
	_, err := st.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for n := range Shards {
			cmds[n] = p.ZRangeByScoreWithScores(ctx, st.keys.expiry(n), &redis.ZRangeBy{
				Min: "-inf", Max: strconv.FormatInt(now.UnixMicro(), 10), Count: int64(max),
			})
		}
		return nil
	})
	if err != nil {
		return nil, unavailable("pop expired sessions", err)
	}
	var all []due
	for _, c := range cmds {
		for _, z := range c.Val() {
			id, _ := z.Member.(string)
			all = append(all, due{id, z.Score})
		}
	}
	slices.SortFunc(all, func(a, b due) int {
		if c := cmp.Compare(a.score, b.score); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	return all, nil
}

// Count returns how many sessions are stored (the quota index's size).
func (st *Store) Count(ctx context.Context) (int, error) {
	n, err := st.rdb.HLen(ctx, st.keys.index).Result()
	if err != nil {
		return 0, unavailable("count sessions", err)
	}
	return int(n), nil
}

// released builds a removed session from its quota entry (device NUL
// owner) and its hash's field/value list; an empty list means Redis had
// expired the hash already.
func released(id, meta string, fields []any) (domain.Session, error) {
	if len(fields) == 0 {
		dev, owner, _ := cut(meta, 0)
		return domain.Session{ID: domain.SessionID(id), DeviceID: domain.DeviceID(dev), Owner: owner, State: domain.StateExpired}, nil
	}
	m := make(map[string]string, len(fields)/2)
	for i := 0; i+1 < len(fields); i += 2 {
		k, _ := fields[i].(string)
		val, _ := fields[i+1].(string)
		m[k] = val
	}
	return decode(m)
}

func cut(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// fieldNames are the hash fields of a session (schema version 2 and on).
var fieldNames = []string{"id", "device", "role", "owner", "token", "kind", "state", "reason", "created", "updated", "expires", "ttl", "instance"}

// appendFields appends the session's field/value pairs to args. Instants
// and the TTL are decimal microseconds.
func appendFields(args []any, s *domain.Session) []any {
	return append(args,
		"id", string(s.ID),
		"device", string(s.DeviceID),
		"role", string(s.Role),
		"owner", s.Owner,
		"token", hex.EncodeToString(s.TokenHash[:]),
		"kind", s.Kind,
		"state", string(s.State),
		"reason", s.Reason,
		"created", strconv.FormatInt(s.CreatedAt.UnixMicro(), 10),
		"updated", strconv.FormatInt(s.UpdatedAt.UnixMicro(), 10),
		"expires", strconv.FormatInt(s.ExpiresAt.UnixMicro(), 10),
		"ttl", strconv.FormatInt(s.TTL.Microseconds(), 10),
		"instance", s.Instance,
	)
}

// decode reads a session hash.
func decode(m map[string]string) (domain.Session, error) {
	var s domain.Session
	s.ID = domain.SessionID(m["id"])
	s.DeviceID = domain.DeviceID(m["device"])
	s.Role = domain.Role(m["role"])
	s.Owner = m["owner"]
	s.Kind = m["kind"]
	s.State = domain.State(m["state"])
	s.Reason = m["reason"]
	s.Instance = m["instance"]
	if tok := m["token"]; tok != "" {
		b, err := hex.DecodeString(tok)
		if err != nil || len(b) != len(s.TokenHash) {
			return s, fmt.Errorf("session %s: malformed token hash", s.ID)
		}
		copy(s.TokenHash[:], b)
	}
	var errs []error
	micro := func(field string) int64 {
		v, err := strconv.ParseInt(m[field], 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("field %s: %w", field, err))
		}
		return v
	}
	s.CreatedAt = time.UnixMicro(micro("created")).UTC()
	s.UpdatedAt = time.UnixMicro(micro("updated")).UTC()
	s.ExpiresAt = time.UnixMicro(micro("expires")).UTC()
	s.TTL = time.Duration(micro("ttl")) * time.Microsecond
	if len(errs) > 0 {
		return s, fmt.Errorf("session %s is malformed (run `mediasvc migrate status`?): %w", s.ID, errors.Join(errs...))
	}
	return s, nil
}
