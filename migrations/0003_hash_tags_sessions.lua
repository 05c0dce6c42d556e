-- Schema 3: keys carry Redis Cluster hash tags, so every script touches
-- one slot (adapters/redisstore/keys.go). This step moves each session
-- hash P..'session:'..id to its expiry shard, P..'{'..tag..'}session:'..id,
-- with its entry of P..'expiry' into P..'{'..tag..'}expiry'; the shard is
-- CRC16(id) mod 16 and tag the shard's entry in the table below (the same
-- table as redisstore's shardTags). 0004 moves the quota, 0005 the device
-- leases. A keyspace that was never on the old layout (a cluster) has no
-- key this matches.
-- match: session:*
-- KEYS: a batch of old session hashes; ARGV[1]: the key prefix.
local tags = {'s0.10', 's1.13', 's2.23', 's3.20', 's4.0', 's5.3', 's6.40', 's7.43',
  's8.23', 's9.20', 's10.22', 's11.21', 's12.2', 's13.1', 's14.41', 's15.42'}
local function crc16(s)
  local crc = 0
  for i = 1, #s do
    crc = bit.bxor(crc, bit.lshift(string.byte(s, i), 8))
    for _ = 1, 8 do
      if bit.band(crc, 0x8000) ~= 0 then
        crc = bit.band(bit.bxor(bit.lshift(crc, 1), 0x1021), 0xffff)
      else
        crc = bit.band(bit.lshift(crc, 1), 0xffff)
      end
    end
  end
  return crc
end
local p = ARGV[1]
local old = p .. 'session:'
local n = 0
for _, k in ipairs(KEYS) do
  local id = string.sub(k, #old + 1)
  local tag = '{' .. tags[crc16(id) % 16 + 1] .. '}'
  redis.call('RENAME', k, p .. tag .. 'session:' .. id)
  local score = redis.call('ZSCORE', p .. 'expiry', id)
  if score then
    redis.call('ZADD', p .. tag .. 'expiry', score, id)
    redis.call('ZREM', p .. 'expiry', id)
  end
  n = n + 1
end
return n
