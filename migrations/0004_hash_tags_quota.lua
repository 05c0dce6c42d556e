-- Schema 4: the quota keys move under the {quota} hash tag (one slot:
-- P..'{quota}index', P..'{quota}count:device', P..'{quota}count:owner'),
-- and what is left of the old P..'expiry' (sessions whose hash Redis had
-- expired already, still counted) moves to the expiry shards, so the next
-- expiry pass frees their quota. The old instance registry keys are
-- dropped: live instances write the new ones at their next heartbeat.
-- match: index
-- KEYS: {P..'index'} when it exists; ARGV[1]: the key prefix.
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
for _, name in ipairs({'index', 'count:device', 'count:owner'}) do
  if redis.call('EXISTS', p .. name) == 1 then
    redis.call('RENAME', p .. name, p .. '{quota}' .. name)
  end
end
local rest = redis.call('ZRANGE', p .. 'expiry', 0, -1, 'WITHSCORES')
for i = 1, #rest, 2 do
  local id = rest[i]
  redis.call('ZADD', p .. '{' .. tags[crc16(id) % 16 + 1] .. '}expiry', rest[i + 1], id)
end
redis.call('DEL', p .. 'expiry', p .. 'instances')
return #rest / 2
