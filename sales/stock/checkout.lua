-- Propose a checkout's outcome. KEYS: ready, sold, holds, the buyer's holds, bought, fresh.
-- ARGV: item, user, new code, now (ms), expires (ms), user limit, key lifetime (s).
-- A hold is "user code expires_ms" in the holds hash; the buyer's holds are a sorted set scored
-- by expiry, so expired holds stop counting without a sweeper.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'cold'} end
local item, user, now = ARGV[1], ARGV[2], tonumber(ARGV[4])
if redis.call('SISMEMBER', KEYS[2], item) == 1 then return {'item_sold'} end
local hold = redis.call('HGET', KEYS[3], item)
if hold then
  local holder, code, expires = string.match(hold, '^(%S+) (%S+) (%d+)$')
  if tonumber(expires) > now then
    if holder == user then return {'existing', code, expires} end
    return {'item_reserved'}
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local taken = redis.call('ZCARD', KEYS[4]) + tonumber(redis.call('HGET', KEYS[5], user) or '0')
if taken >= tonumber(ARGV[6]) then return {'user_limit_reached'} end
redis.call('HSET', KEYS[3], item, user .. ' ' .. ARGV[3] .. ' ' .. ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[5], item)
redis.call('EXPIRE', KEYS[3], ARGV[7])
redis.call('EXPIRE', KEYS[4], ARGV[7])
-- PostgreSQL decides whether this hold stands; the reconciler checks fresh holds against it.
redis.call('ZADD', KEYS[6], ARGV[4], item .. ' ' .. ARGV[3])
redis.call('EXPIRE', KEYS[6], ARGV[7])
return {'held', ARGV[3], ARGV[5]}
