package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"mediasvc/domain"
	"mediasvc/ports"
)

var (
	_ ports.FarmStore = (*Farm)(nil)
	_ ports.AuditLog  = (*Audit)(nil)
)

// FarmOptions configures a Farm.
type FarmOptions struct {
	// Prefix starts every key; "mediasvc:" when empty.
	Prefix string
	// ControlTTL is how long a device's control state outlives its last
	// change, so a farm whose every instance died does not keep stale
	// controllers forever; 24 h when zero. Live instances release control
	// of the sessions they close (or that expire) long before.
	ControlTTL time.Duration
}

// Farm keeps control states and reservations in Redis, shared by every
// instance. Each device's state is one JSON value updated optimistically:
// WATCH the key, read it, apply the caller's pure function, write it back
// in MULTI/EXEC, and start again if another writer got there first.
//
// Layout: P+"control:"+device the control JSON, expiring ControlTTL after
// its last write; P+"{farm}reservations:"+device the reservations JSON,
// expiring at its last reservation's end (PEXPIREAT); P+"{farm}reserved" a
// sorted set of devices scored by that end in Unix ms, trimmed on read.
// A device's reservations and the index change in one MULTI, so they share
// the hash tag {farm}: one slot of a Redis Cluster (reservations are
// operator actions, far from needing more than one node).
type Farm struct {
	rdb        redis.UniversalClient
	prefix     string
	controlTTL time.Duration
}

// NewFarm returns a Farm on rdb. It does not contact Redis.
func NewFarm(rdb redis.UniversalClient, opts FarmOptions) *Farm {
	if opts.Prefix == "" {
		opts.Prefix = "mediasvc:"
	}
	if opts.ControlTTL <= 0 {
		opts.ControlTTL = 24 * time.Hour
	}
	return &Farm{rdb: rdb, prefix: opts.Prefix, controlTTL: opts.ControlTTL}
}

// maxAttempts bounds the optimistic retries of one update; past it the
// update fails with domain.ErrUnavailable.
const maxAttempts = 100

func (f *Farm) controlKey(d domain.DeviceID) string { return f.prefix + "control:" + string(d) }
func (f *Farm) reservedKey(d domain.DeviceID) string {
	return f.prefix + "{farm}reservations:" + string(d)
}
func (f *Farm) reservedIndex() string { return f.prefix + "{farm}reserved" }

// load reads key's JSON into v; a missing key leaves v as it is.
func load(ctx context.Context, c redis.Cmdable, key string, v any) error {
	b, err := c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	return nil
}

// Control returns the device's control state, empty when none.
func (f *Farm) Control(ctx context.Context, d domain.DeviceID) (domain.Control, error) {
	c := domain.Control{Device: d}
	if err := load(ctx, f.rdb, f.controlKey(d), &c); err != nil {
		return domain.Control{}, unavailable("read control of "+string(d), err)
	}
	c.Device = d
	return c, nil
}

// UpdateControl applies fn to the device's control state and stores the
// result, deleting it when empty. A failing fn's error is returned as is
// and nothing is stored; Redis failures and endless conflicts wrap
// domain.ErrUnavailable.
func (f *Farm) UpdateControl(ctx context.Context, d domain.DeviceID, fn func(*domain.Control) error) (domain.Control, error) {
	key := f.controlKey(d)
	var out domain.Control
	err := f.optimistic(ctx, key, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		c := domain.Control{Device: d}
		if err := load(ctx, tx, key, &c); err != nil {
			return nil, err
		}
		if err := fn(&c); err != nil {
			return nil, &fnError{err}
		}
		c.Device = d
		out = c
		if c.Empty() {
			return func(p redis.Pipeliner) error { return p.Del(ctx, key).Err() }, nil
		}
		b, err := json.Marshal(c)
		if err != nil {
			return nil, err
		}
		return func(p redis.Pipeliner) error { return p.Set(ctx, key, b, f.controlTTL).Err() }, nil
	})
	if err != nil {
		return domain.Control{}, f.failed("update control of "+string(d), err)
	}
	return out, nil
}

// Reservations returns the device's reservations, empty when none.
func (f *Farm) Reservations(ctx context.Context, d domain.DeviceID) (domain.Reservations, error) {
	rs := domain.Reservations{Device: d}
	if err := load(ctx, f.rdb, f.reservedKey(d), &rs); err != nil {
		return domain.Reservations{}, unavailable("read reservations of "+string(d), err)
	}
	rs.Device = d
	return rs, nil
}

// UpdateReservations applies fn to the device's reservations and stores
// them until their last end, deleting them when none is left. Errors as
// UpdateControl.
func (f *Farm) UpdateReservations(ctx context.Context, d domain.DeviceID, fn func(*domain.Reservations) error) (domain.Reservations, error) {
	key, index := f.reservedKey(d), f.reservedIndex()
	var out domain.Reservations
	err := f.optimistic(ctx, key, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		rs := domain.Reservations{Device: d}
		if err := load(ctx, tx, key, &rs); err != nil {
			return nil, err
		}
		if err := fn(&rs); err != nil {
			return nil, &fnError{err}
		}
		rs.Device = d
		out = rs
		last := rs.LastUntil()
		if len(rs.List) == 0 || last.IsZero() {
			return func(p redis.Pipeliner) error {
				p.Del(ctx, key)
				return p.ZRem(ctx, index, string(d)).Err()
			}, nil
		}
		b, err := json.Marshal(rs)
		if err != nil {
			return nil, err
		}
		return func(p redis.Pipeliner) error {
			p.Set(ctx, key, b, 0)
			p.PExpireAt(ctx, key, last)
			return p.ZAdd(ctx, index, redis.Z{Score: float64(last.UnixMilli()), Member: string(d)}).Err()
		}, nil
	})
	if err != nil {
		return domain.Reservations{}, f.failed("update reservations of "+string(d), err)
	}
	return out, nil
}

// ReservedDevices lists the devices whose last reservation has not ended
// by the Redis server's clock, dropping the others from the index.
func (f *Farm) ReservedDevices(ctx context.Context) ([]domain.DeviceID, error) {
	now, err := f.rdb.Time(ctx).Result()
	if err != nil {
		return nil, unavailable("read redis time", err)
	}
	ms := strconv.FormatInt(now.UnixMilli(), 10)
	if err := f.rdb.ZRemRangeByScore(ctx, f.reservedIndex(), "-inf", ms).Err(); err != nil {
		return nil, unavailable("trim reserved devices", err)
	}
	ids, err := f.rdb.ZRange(ctx, f.reservedIndex(), 0, -1).Result()
	if err != nil {
		return nil, unavailable("list reserved devices", err)
	}
	out := make([]domain.DeviceID, len(ids))
	for i, id := range ids {
		out[i] = domain.DeviceID(id)
	}
	return out, nil
}

// fnError carries the caller's error through WATCH unchanged.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }
func (e *fnError) Unwrap() error { return e.err }

// optimistic runs prepare under WATCH key and queues the write it returns
// in MULTI/EXEC, starting again (after a short random pause, so writers
// that collided spread out) while another writer changed key meanwhile.
func (f *Farm) optimistic(ctx context.Context, key string, prepare func(*redis.Tx) (func(redis.Pipeliner) error, error)) error {
	for attempt := range maxAttempts {
		err := f.rdb.Watch(ctx, func(tx *redis.Tx) error {
			write, err := prepare(tx)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, write)
			return err
		}, key)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
		pause := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 4)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
	return fmt.Errorf("%d writers in a row got there first: %w", maxAttempts, redis.TxFailedErr)
}

// failed returns the caller's own error as is, and wraps anything else as
// the store failing.
func (f *Farm) failed(op string, err error) error {
	if fe, ok := errors.AsType[*fnError](err); ok {
		return fe.err
	}
	return unavailable(op, err)
}

// AuditOptions configures an Audit.
type AuditOptions struct {
	// Prefix starts the stream's key; "mediasvc:" when empty.
	Prefix string
	// MaxLen is about how many events the stream keeps (XADD MAXLEN ~):
	// Redis trims whole nodes, so a few more may stay. 100 000 when zero.
	MaxLen int64
}

// Audit is the audit trail of every instance in one Redis stream,
// P+"audit", each entry one field "e" holding the event's JSON. The
// entry id is the event's id. XADD trims the stream with MAXLEN ~ so it
// never grows past about MaxLen.
type Audit struct {
	rdb    redis.UniversalClient
	key    string
	maxLen int64
}

// NewAudit returns an Audit on rdb. It does not contact Redis.
func NewAudit(rdb redis.UniversalClient, opts AuditOptions) *Audit {
	if opts.Prefix == "" {
		opts.Prefix = "mediasvc:"
	}
	if opts.MaxLen <= 0 {
		opts.MaxLen = 100_000
	}
	return &Audit{rdb: rdb, key: opts.Prefix + "audit", maxLen: opts.MaxLen}
}

// Record appends e to the stream. Errors wrap domain.ErrUnavailable.
func (a *Audit) Record(ctx context.Context, e domain.AuditEvent) error {
	e.ID = ""
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode audit event: %w", err)
	}
	err = a.rdb.XAdd(ctx, &redis.XAddArgs{Stream: a.key, MaxLen: a.maxLen, Approx: true, Values: []any{"e", b}}).Err()
	if err != nil {
		return unavailable("record audit event", err)
	}
	return nil
}

// auditPage is how many entries one XREVRANGE reads.
const auditPage = 500

// clockSkew is how far instances' clocks may disagree: a query for
// events since t reads the stream back until it meets an event older than
// t less this (events are appended in about their time order).
const clockSkew = time.Minute

// Query reads the stream from its newest entry back, a page at a time,
// until it has f.Count() matching events, runs out, or meets an event
// older than f.Since less clockSkew. Events come back oldest first.
// Errors wrap domain.ErrUnavailable.
func (a *Audit) Query(ctx context.Context, f domain.AuditFilter) ([]domain.AuditEvent, error) {
	limit := f.Count()
	var stop time.Time
	if !f.Since.IsZero() {
		stop = f.Since.Add(-clockSkew)
	}
	out := []domain.AuditEvent{}
	start := "+"
scan:
	for len(out) < limit {
		msgs, err := a.rdb.XRevRangeN(ctx, a.key, start, "-", auditPage).Result()
		if err != nil {
			return nil, unavailable("read audit stream", err)
		}
		for _, m := range msgs {
			raw, _ := m.Values["e"].(string)
			var e domain.AuditEvent
			if err := json.Unmarshal([]byte(raw), &e); err != nil {
				return nil, fmt.Errorf("decode audit entry %s: %w", m.ID, err)
			}
			e.ID = m.ID
			if !stop.IsZero() && e.Time.Before(stop) {
				break scan
			}
			if f.Match(e) {
				out = append(out, e)
				if len(out) == limit {
					break scan
				}
			}
		}
		if len(msgs) < auditPage {
			break
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
