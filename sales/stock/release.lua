-- Release a hold nobody was told of. Same KEYS as checkout.lua. ARGV: item, the hold as stored.
-- Removes that hold only, never a newer one.
if redis.call('HGET', KEYS[3], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
end
return 1
