-- Set items to their claims in PostgreSQL. KEYS: ready, sold, holds, bought, then for each item
-- its holder's holds (a sorted set, as in checkout.lua). ARGV: key lifetime (s), then for each
-- item: the item, its holder, and 'sold', or its live hold as stored ("user code expires_ms"), or
-- "" when PostgreSQL holds it for nobody. A hold Redis keeps and PostgreSQL does not is dropped,
-- from its holder's set too. Idempotent. Returns 0 when the sale's state is not ready.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local tag = string.sub(KEYS[1], 1, -7) -- the sale's hash tag: KEYS[1] less ':ready'
for i = 0, #ARGV / 3 - 1 do
  local item, holder, claim = ARGV[2 + 3 * i], ARGV[3 + 3 * i], ARGV[4 + 3 * i]
  if claim == 'sold' and redis.call('SADD', KEYS[2], item) == 1 then
    redis.call('HINCRBY', KEYS[4], holder, 1)
  end
  local old = redis.call('HGET', KEYS[3], item)
  if old and old ~= claim then
    -- the same slot as the declared keys: the hash tag
    redis.call('ZREM', tag .. ':user:' .. string.match(old, '^(%S+) '), item)
    redis.call('HDEL', KEYS[3], item)
  end
  if claim ~= 'sold' and claim ~= '' and old ~= claim then
    redis.call('HSET', KEYS[3], item, claim)
    redis.call('ZADD', KEYS[4 + i + 1], string.match(claim, ' (%d+)$'), item)
    redis.call('EXPIRE', KEYS[4 + i + 1], ARGV[1])
  end
end
for k = 2, 4 do redis.call('EXPIRE', KEYS[k], ARGV[1]) end
return 1
