package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"mediasvc/domain"
	"mediasvc/ports"
)

var _ ports.DeviceLeases = (*Leases)(nil)

// Leases hands out device ownership: at most one holder (instance) per
// device at a time, for a TTL the holder renews. Each grant carries a
// fencing token, strictly larger than every earlier grant's for that
// device, and writes guarded by a lease (FencedWrite) are refused unless
// their token is the device's current one — so an instance that paused
// past its TTL and lost the lease cannot keep writing.
//
// Layout (the three keys share the tag {dev:<device>}, so each script is
// one slot of a cluster): P+"{dev:"+device+"}lease" is a hash {holder,
// token} with the TTL; P+"{dev:"+device+"}fence" the device's token
// counter (no TTL: tokens never go back, even after the lease expired);
// P+"{dev:"+device+"}device" the record FencedWrite guards, carrying the
// highest token that wrote it.
//
// A token is at least the Redis server's clock in milliseconds, so tokens
// keep growing even across a Redis that lost its data and restarted its
// counters (as long as its clock does not go back and a device is granted
// less than once a millisecond); milliseconds keep tokens within the 14
// digits Lua prints exactly.
type Leases struct {
	rdb  redis.UniversalClient
	keys keys
	ttl  time.Duration
}

// NewLeases returns leases that last ttl unless renewed.
func NewLeases(rdb redis.UniversalClient, prefix string, ttl time.Duration) *Leases {
	return &Leases{rdb: rdb, keys: newKeys(prefix), ttl: ttl}
}

func (l *Leases) leaseKeys(d domain.DeviceID) []string { return l.keys.device(d) }

// acquireScript grants the lease if free, or renews it for its holder.
// ARGV: holder, ttl ms. Returns {1, token} granted, {0, token, holder}
// held by another.
var acquireScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'holder', 'token')
if cur[1] and cur[1] ~= ARGV[1] then return {0, cur[2], cur[1]} end
if cur[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, cur[2]}
end
local token = redis.call('INCR', KEYS[2])
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if token < ms then
  token = ms
  redis.call('SET', KEYS[2], token)
end
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', token)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, tostring(token)}
`)

// renewScript extends the lease if the token is still current. ARGV:
// token, ttl ms. Returns 1 renewed, 0 lost.
var renewScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// releaseScript deletes the lease if the token is still current.
var releaseScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)

// fencedScript writes field/value pairs to the device record if ARGV[1]
// is the current lease's token and not below the record's last token.
var fencedScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
local last = tonumber(redis.call('HGET', KEYS[3], 'fence') or '0')
if tonumber(ARGV[1]) < last then return 0 end
local kv = {'fence', ARGV[1]}
for i = 2, #ARGV do kv[#kv + 1] = ARGV[i] end
redis.call('HSET', KEYS[3], unpack(kv))
return 1
`)

// Acquire takes the device's lease for holder, or renews it if holder has
// it already (keeping its token). It returns an error wrapping
// domain.ErrConflict, naming the holder, when another holds it, and one
// wrapping domain.ErrUnavailable when Redis fails.
func (l *Leases) Acquire(ctx context.Context, d domain.DeviceID, holder string) (domain.Lease, error) {
	v, err := acquireScript.Run(ctx, l.rdb, l.leaseKeys(d), holder, l.ttl.Milliseconds()).Slice()
	if err != nil {
		return domain.Lease{}, unavailable("acquire lease on "+string(d), err)
	}
	if len(v) < 2 {
		return domain.Lease{}, fmt.Errorf("acquire lease on %s: malformed reply", d)
	}
	ok, _ := v[0].(int64)
	tok, _ := v[1].(string)
	token, _ := strconv.ParseInt(tok, 10, 64)
	if ok != 1 {
		other := ""
		if len(v) > 2 {
			other, _ = v[2].(string)
		}
		return domain.Lease{}, fmt.Errorf("device %s is leased by %s: %w", d, other, domain.ErrConflict)
	}
	return domain.Lease{Device: d, Holder: holder, Token: token}, nil
}

// Renew extends the lease by the TTL. It returns an error wrapping
// domain.ErrConflict when the lease was lost (expired, then taken or
// released), and one wrapping domain.ErrUnavailable when Redis fails.
func (l *Leases) Renew(ctx context.Context, ls domain.Lease) error {
	return l.run(ctx, renewScript, "renew", ls, strconv.FormatInt(ls.Token, 10), l.ttl.Milliseconds())
}

// Release gives the lease up if it is still held with ls's token.
func (l *Leases) Release(ctx context.Context, ls domain.Lease) error {
	return l.run(ctx, releaseScript, "release", ls, strconv.FormatInt(ls.Token, 10))
}

// FencedWrite sets fields of the device's record if ls is still the
// device's current lease. A holder that lost its lease gets an error
// wrapping domain.ErrConflict and writes nothing.
func (l *Leases) FencedWrite(ctx context.Context, ls domain.Lease, fields map[string]string) error {
	args := []any{strconv.FormatInt(ls.Token, 10)}
	for k, v := range fields {
		args = append(args, k, v)
	}
	return l.run(ctx, fencedScript, "fenced write", ls, args...)
}

// Holder returns who holds the device's lease now, or "" when no one does.
func (l *Leases) Holder(ctx context.Context, d domain.DeviceID) (string, error) {
	h, err := l.rdb.HGet(ctx, l.keys.device(d)[0], "holder").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", unavailable("read lease of "+string(d), err)
	}
	return h, nil
}

func (l *Leases) run(ctx context.Context, s *redis.Script, op string, ls domain.Lease, args ...any) error {
	n, err := s.Run(ctx, l.rdb, l.leaseKeys(ls.Device), args...).Int()
	if err != nil {
		return unavailable(op+" lease on "+string(ls.Device), err)
	}
	if n != 1 {
		return fmt.Errorf("%s lease on %s: token %d is no longer current: %w", op, ls.Device, ls.Token, domain.ErrConflict)
	}
	return nil
}
