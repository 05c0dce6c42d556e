-- Schema 5: a device's lease, fencing counter and record move under the
-- device's hash tag: P..'lease:'..d -> P..'{dev:'..d..'}lease', and so
-- 'fence' and 'device' (a lease without a fencing counter never exists:
-- granting one increments it).
-- match: fence:*
-- KEYS: a batch of old fencing counters; ARGV[1]: the key prefix.
local p = ARGV[1]
local n = 0
for _, k in ipairs(KEYS) do
  local d = string.sub(k, #p + #'fence:' + 1)
  local tag = p .. '{dev:' .. d .. '}'
  for _, name in ipairs({'fence', 'lease', 'device'}) do
    if redis.call('EXISTS', p .. name .. ':' .. d) == 1 then
      redis.call('RENAME', p .. name .. ':' .. d, tag .. name)
    end
  end
  n = n + 1
end
return n
