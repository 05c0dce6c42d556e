package redisstore

import "github.com/redis/go-redis/v9"

// The Lua scripts run atomically in Redis: a create that checks and takes
// quota, a delete and an expiry pop that free it, and a touch. Numbers
// cross into Lua as decimal strings; instants are Unix microseconds (below
// 2^53, so a Lua double holds them exactly) and go back out through
// string.format("%.0f"), never tostring, which would round them.
//
// Keys: KEYS[1] session hash, KEYS[2] expiry sorted set (member id, score
// expiry µs), KEYS[3] index hash (id → device NUL owner), KEYS[4] per-device
// counts, KEYS[5] per-owner counts.

// createScript stores a session if its id is free and the quota allows.
// ARGV: id, device, owner, total, per-device, per-owner (0 = unlimited),
// expiry µs, key expiry ms (PEXPIREAT), then field/value pairs.
// Returns 0 stored, 1 exists, 2 total, 3 per-device, 4 per-owner.
var createScript = redis.NewScript(`
local id, dev, own = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HEXISTS', KEYS[3], id) == 1 or redis.call('EXISTS', KEYS[1]) == 1 then
  return 1
end
local total, perdev, perown = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if total > 0 and redis.call('ZCARD', KEYS[2]) >= total then return 2 end
if perdev > 0 and tonumber(redis.call('HGET', KEYS[4], dev) or '0') >= perdev then return 3 end
if perown > 0 and tonumber(redis.call('HGET', KEYS[5], own) or '0') >= perown then return 4 end
local fields = {}
for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIREAT', KEYS[1], ARGV[8])
redis.call('ZADD', KEYS[2], ARGV[7], id)
redis.call('HSET', KEYS[3], id, dev .. '\0' .. own)
redis.call('HINCRBY', KEYS[4], dev, 1)
redis.call('HINCRBY', KEYS[5], own, 1)
return 0
`)

// release is shared by delete and pop: it forgets id everywhere and frees
// its quota, and returns {id, index entry, hash fields...}.
const releaseLua = `
local function release(hash, id)
  local meta = redis.call('HGET', KEYS[3], id)
  if not meta then return nil end
  local fields = redis.call('HGETALL', hash)
  redis.call('DEL', hash)
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
  local sep = string.find(meta, '\0', 1, true)
  local dev, own = string.sub(meta, 1, sep - 1), string.sub(meta, sep + 1)
  if redis.call('HINCRBY', KEYS[4], dev, -1) <= 0 then redis.call('HDEL', KEYS[4], dev) end
  if redis.call('HINCRBY', KEYS[5], own, -1) <= 0 then redis.call('HDEL', KEYS[5], own) end
  local out = {id, meta}
  for i = 1, #fields do out[#out + 1] = fields[i] end
  return out
end
`

// deleteScript removes one session. ARGV: id. Returns the released entry
// or nil when absent.
var deleteScript = redis.NewScript(releaseLua + `
return release(KEYS[1], ARGV[1])
`)

// popScript removes up to max sessions expiring at or before now, earliest
// first: O(log n + k) through the sorted set, never a scan. KEYS[1] is
// unused (the hashes are named from the prefix in ARGV[3]). ARGV: now µs,
// max, session key prefix. Returns a list of released entries.
var popScript = redis.NewScript(releaseLua + `
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local r = release(ARGV[3] .. id, id)
  if r then out[#out + 1] = r else redis.call('ZREM', KEYS[2], id) end
end
return out
`)

// touchScript extends a live session to ttl after now. ARGV: id, now µs,
// key grace ms. Returns 0 done, 1 absent, 2 final state (not extended).
var touchScript = redis.NewScript(`
local id = ARGV[1]
if redis.call('HEXISTS', KEYS[3], id) == 0 then return 1 end
local st = redis.call('HMGET', KEYS[1], 'state', 'ttl')
if not st[1] then return 1 end
if st[1] == 'closed' or st[1] == 'failed' or st[1] == 'expired' then return 2 end
local exp = tonumber(ARGV[2]) + tonumber(st[2])
local s = string.format('%.0f', exp)
redis.call('HSET', KEYS[1], 'expires', s)
redis.call('ZADD', KEYS[2], s, id)
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.floor(exp / 1000) + tonumber(ARGV[3])))
return 0
`)
