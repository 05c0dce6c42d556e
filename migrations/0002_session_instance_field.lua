-- Schema 2: the session hash field "node" is renamed "instance", matching
-- domain.Session.Instance and the instances registry.
-- match: session:*
-- KEYS: a batch of session hashes; ARGV[1]: the key prefix.
local n = 0
for _, k in ipairs(KEYS) do
  local v = redis.call('HGET', k, 'node')
  if v then
    redis.call('HSET', k, 'instance', v)
    redis.call('HDEL', k, 'node')
    n = n + 1
  end
end
return n
