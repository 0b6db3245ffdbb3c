-- Set an item's hold to PostgreSQL's claim. Same KEYS as checkout.lua, the holder's holds as
-- KEYS[4]. ARGV: item, the hold as stored ("user code expires_ms", or "" when PostgreSQL has no
-- live hold), key lifetime (s). A hold Redis keeps and PostgreSQL does not is dropped, from its
-- holder's set too. Returns 0 when the sale's state is not ready.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 1 end
local old = redis.call('HGET', KEYS[3], ARGV[1])
if old == ARGV[2] then return 1 end
if old then
  local holder = string.match(old, '^(%S+) ')
  local tag = string.match(KEYS[1], '^(.*):ready$')
  redis.call('ZREM', tag .. ':user:' .. holder, ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
end
if ARGV[2] ~= '' then
  local expires = string.match(ARGV[2], ' (%d+)$')
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[4], expires, ARGV[1])
  redis.call('EXPIRE', KEYS[3], ARGV[3])
  redis.call('EXPIRE', KEYS[4], ARGV[3])
end
return 1
