-- Mark an item sold. Same KEYS as checkout.lua. ARGV: item, user, key lifetime (s).
-- Idempotent: a retry does not count twice. Returns 0 when the sale's state is not ready.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[5], ARGV[2], 1)
end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[5], ARGV[3])
return 1
