-- Release a lock only if this process still holds it. KEYS: the lock. ARGV: its token.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
