package redisstore

import "github.com/redis/go-redis/v9"

// The Lua scripts run atomically in Redis, each on the keys of one hash
// slot (keys.go): the shard scripts on a session's hash and its shard's
// expiry set, the quota scripts on the quota's three keys. Numbers cross
// into Lua as decimal strings; instants are Unix microseconds (below 2^53,
// so a Lua double holds them exactly) and go back out through
// string.format("%.0f"), never tostring, which would round them.
//
// A Create writes the session into its shard first, then takes the quota;
// a Delete or an expiry pop releases the quota first (the quota index
// arbitrates: of two instances removing one session, one wins), then
// removes the session from its shard. So a crash between the two steps
// leaves at worst a session in a shard that the quota does not count,
// which the next expiry pass finds and removes; never a quota slot that
// nothing frees.

// shardCreateScript stores a session hash and its expiry entry if the
// hash does not exist. KEYS: hash, shard expiry. ARGV: id, expiry µs, key
// expiry ms (PEXPIREAT), then field/value pairs. Returns 0 stored, 1
// exists.
var shardCreateScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 0
`)

// quotaTakeScript counts a new session if its id is not counted yet and
// the quota allows one more. KEYS: index, per-device counts, per-owner
// counts. ARGV: id, device, owner, total, per-device, per-owner (0 =
// unlimited). Returns 0 taken, 1 exists, 2 total, 3 per-device, 4
// per-owner.
var quotaTakeScript = redis.NewScript(`
local id, dev, own = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HEXISTS', KEYS[1], id) == 1 then return 1 end
local total, perdev, perown = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if total > 0 and redis.call('HLEN', KEYS[1]) >= total then return 2 end
if perdev > 0 and tonumber(redis.call('HGET', KEYS[2], dev) or '0') >= perdev then return 3 end
if perown > 0 and tonumber(redis.call('HGET', KEYS[3], own) or '0') >= perown then return 4 end
redis.call('HSET', KEYS[1], id, dev .. '\0' .. own)
redis.call('HINCRBY', KEYS[2], dev, 1)
redis.call('HINCRBY', KEYS[3], own, 1)
return 0
`)

// quotaReleaseScript stops counting the given sessions. KEYS: as
// quotaTakeScript. ARGV: ids. Returns {id, device NUL owner, ...} for the
// ids it released; an id not counted (released by another instance
// already, or never counted) is left out.
var quotaReleaseScript = redis.NewScript(`
local out = {}
for i = 1, #ARGV do
  local id = ARGV[i]
  local meta = redis.call('HGET', KEYS[1], id)
  if meta then
    redis.call('HDEL', KEYS[1], id)
    local sep = string.find(meta, '\0', 1, true)
    local dev, own = string.sub(meta, 1, sep - 1), string.sub(meta, sep + 1)
    if redis.call('HINCRBY', KEYS[2], dev, -1) <= 0 then redis.call('HDEL', KEYS[2], dev) end
    if redis.call('HINCRBY', KEYS[3], own, -1) <= 0 then redis.call('HDEL', KEYS[3], own) end
    out[#out + 1] = id
    out[#out + 1] = meta
  end
end
return out
`)

// shardRemoveScript removes sessions from a shard and returns what their
// hashes held. KEYS: shard expiry, then one hash per id. ARGV: the ids.
// Returns one list of field/value pairs per id, empty when its hash is
// gone.
var shardRemoveScript = redis.NewScript(`
local out = {}
for i = 1, #ARGV do
  out[i] = redis.call('HGETALL', KEYS[i + 1])
  redis.call('DEL', KEYS[i + 1])
  redis.call('ZREM', KEYS[1], ARGV[i])
end
return out
`)

// touchScript extends a live session to ttl after now. KEYS: hash, shard
// expiry. ARGV: id, now µs, key grace ms. Returns 0 done, 1 absent, 2
// final state (not extended).
var touchScript = redis.NewScript(`
local st = redis.call('HMGET', KEYS[1], 'state', 'ttl')
if not st[1] then return 1 end
if st[1] == 'closed' or st[1] == 'failed' or st[1] == 'expired' then return 2 end
local exp = tonumber(ARGV[2]) + tonumber(st[2])
local s = string.format('%.0f', exp)
redis.call('HSET', KEYS[1], 'expires', s)
redis.call('ZADD', KEYS[2], s, ARGV[1])
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.floor(exp / 1000) + tonumber(ARGV[3])))
return 0
`)
