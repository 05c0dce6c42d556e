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
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
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
	// keyspace whose instances all died empties itself. Default 1 minute.
	KeyGrace time.Duration
	// TouchThrottle skips a Touch that would move the stored expiry by
	// less than this, so per-packet activity never becomes Redis traffic.
	// Zero writes every Touch.
	TouchThrottle time.Duration
}

// Store is a ports.SessionStore in Redis, shared by every instance that
// uses the same Redis and prefix.
//
// Layout (P is the prefix): P+"session:"+id is a hash of the session's
// fields with a key expiry; P+"expiry" is a sorted set of ids by expiry
// (Unix µs), the index PopExpired pops from in O(log n + k); P+"index" maps
// each id to its device and owner and is the authority on which sessions
// exist; P+"count:device" and P+"count:owner" count sessions for the
// quota. Create, Delete, PopExpired and Touch are single Lua scripts;
// Update is an optimistic WATCH/MULTI transaction, retried on conflict.
//
// Times are stored to the microsecond, as Redis scores hold them exactly.
//
// A Store must be made with New. Its methods are safe for concurrent use.
type Store struct {
	rdb   redis.UniversalClient
	keys  keys
	grace time.Duration

	throttle time.Duration
	mu       sync.Mutex
	touched  map[domain.SessionID]time.Time // expiry last written by Touch
}

// keys names the store's keys.
type keys struct {
	prefix, session, expiry, index, byDevice, byOwner, schema string
}

func newKeys(prefix string) keys {
	if prefix == "" {
		prefix = "mediasvc:"
	}
	return keys{
		prefix:   prefix,
		session:  prefix + "session:",
		expiry:   prefix + "expiry",
		index:    prefix + "index",
		byDevice: prefix + "count:device",
		byOwner:  prefix + "count:owner",
		schema:   prefix + "schema",
	}
}

func (k keys) of(id domain.SessionID) []string {
	return []string{k.session + string(id), k.expiry, k.index, k.byDevice, k.byOwner}
}

// New returns a Store on rdb. It does not contact Redis.
func New(rdb redis.UniversalClient, opts Options) *Store {
	if opts.KeyGrace <= 0 {
		opts.KeyGrace = time.Minute
	}
	return &Store{
		rdb: rdb, keys: newKeys(opts.Prefix), grace: opts.KeyGrace,
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
// session in total, for s.DeviceID and for s.Owner (zero is unlimited), in
// one Lua script. Otherwise it stores nothing and returns an error wrapping
// domain.ErrSessionExists or domain.ErrLimitExceeded naming the limit, or
// domain.ErrUnavailable when Redis fails.
func (st *Store) Create(ctx context.Context, s domain.Session, q domain.Quota) error {
	args := make([]any, 0, 8+2*len(fieldNames))
	args = append(args, string(s.ID), string(s.DeviceID), s.Owner, q.Total, q.PerDevice, q.PerOwner,
		s.ExpiresAt.UnixMicro(), st.keyExpiry(s.ExpiresAt))
	args = appendFields(args, &s)
	r, err := createScript.Run(ctx, st.rdb, st.keys.of(s.ID), args...).Int()
	if err != nil {
		return unavailable("create session "+string(s.ID), err)
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

// keyExpiry is when a session's hash leaves Redis: KeyGrace after expiry,
// in Unix ms.
func (st *Store) keyExpiry(exp time.Time) int64 { return exp.Add(st.grace).UnixMilli() }

// Get returns the session, or an error wrapping domain.ErrSessionNotFound
// or domain.ErrUnavailable.
func (st *Store) Get(ctx context.Context, id domain.SessionID) (domain.Session, error) {
	m, err := st.rdb.HGetAll(ctx, st.keys.session+string(id)).Result()
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
	key := st.keys.session + string(id)
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
			p.ZAdd(ctx, st.keys.expiry, redis.Z{Score: float64(s.ExpiresAt.UnixMicro()), Member: string(id)})
			return nil
		})
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
	ks := st.keys.of(id)
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
// Errors wrap domain.ErrSessionNotFound or domain.ErrUnavailable.
func (st *Store) Delete(ctx context.Context, id domain.SessionID) (domain.Session, error) {
	v, err := deleteScript.Run(ctx, st.rdb, st.keys.of(id), string(id)).Slice()
	if errors.Is(err, redis.Nil) {
		return domain.Session{}, fmt.Errorf("delete session %s: %w", id, domain.ErrSessionNotFound)
	}
	if err != nil {
		return domain.Session{}, unavailable("delete session "+string(id), err)
	}
	st.forget(id)
	s, err := released(v)
	if err != nil {
		return domain.Session{}, fmt.Errorf("delete session %s: %w", id, err)
	}
	return s, nil
}

// PopExpired removes and returns up to max sessions whose expiry is not
// after now, earliest first, and frees their quota: one Lua script,
// O(log n + k) through the expiry sorted set. Two instances popping at once
// never return the same session. A session whose hash Redis already
// expired comes back with its id, device and owner only, in StateExpired.
func (st *Store) PopExpired(ctx context.Context, now time.Time, max int) ([]domain.Session, error) {
	if max <= 0 {
		return nil, nil
	}
	v, err := popScript.Run(ctx, st.rdb, st.keys.of(""), now.UnixMicro(), max, st.keys.session).Slice()
	if err != nil {
		return nil, unavailable("pop expired sessions", err)
	}
	out := make([]domain.Session, 0, len(v))
	for _, e := range v {
		list, _ := e.([]any)
		s, err := released(list)
		if err != nil {
			return out, fmt.Errorf("pop expired sessions: %w", err)
		}
		st.forget(s.ID)
		out = append(out, s)
	}
	return out, nil
}

// Count returns how many sessions are stored (the expiry index's size).
func (st *Store) Count(ctx context.Context) (int, error) {
	n, err := st.rdb.ZCard(ctx, st.keys.expiry).Result()
	if err != nil {
		return 0, unavailable("count sessions", err)
	}
	return int(n), nil
}

// released decodes {id, device NUL owner, field, value, ...} from the
// release script.
func released(v []any) (domain.Session, error) {
	if len(v) < 2 {
		return domain.Session{}, errors.New("malformed script reply")
	}
	id, _ := v[0].(string)
	meta, _ := v[1].(string)
	if len(v) == 2 { // the hash had expired in Redis already
		dev, owner, _ := cut(meta, 0)
		return domain.Session{ID: domain.SessionID(id), DeviceID: domain.DeviceID(dev), Owner: owner, State: domain.StateExpired}, nil
	}
	m := make(map[string]string, (len(v)-2)/2)
	for i := 2; i+1 < len(v); i += 2 {
		k, _ := v[i].(string)
		val, _ := v[i+1].(string)
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

// fieldNames are the hash fields of a session (schema version 2).
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
