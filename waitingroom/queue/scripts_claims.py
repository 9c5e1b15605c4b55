"""An admitted fan's session and its claim window, in Lua: a hold made (CLAIM), too few
seats found (HURRY_CLAIM), a reserve on its way (KEEP_CLAIM).

These are the scripts' bodies: :mod:`waitingroom.queue.scripts` puts in front of each the
preludes it needs (``now_us``, ``now_ms`` and ``fmt`` from the clock); it lists the keys.
"""

from __future__ import annotations

# A 201 reserve with an admission token, as the front door passes it on: the fan holds
# seats now (no longer "admitted, not yet holding") and the seats count as taken at once.
# KEYS: unclaimed state  ARGV: user, seats  -> 1 the fan's first hold this session, else 0
CLAIM_BODY = """
local first = redis.call('ZREM', KEYS[1], ARGV[1])
if first == 1 then redis.call('HINCRBY', KEYS[2], 'hold_fans', 1) end
redis.call('HINCRBY', KEYS[2], 'hold_seats', tonumber(ARGV[2]))
return first
"""

# An admitted fan whose reserve found too few seats left: their claim window closes within
# ARGV[2] ms unless it closes sooner already (and unless they hold seats: XX). They may ask
# again, for fewer, meanwhile; a fan who walks away holds up the next for that long, not
# for the whole window, which at the end of a sale is what every last seat waits on.
# KEYS: unclaimed  ARGV: user, grace_ms  -> 1 when the deadline moved, else 0
HURRY_CLAIM_BODY = """
return redis.call('ZADD', KEYS[1], 'XX', 'LT', 'CH', fmt(now_ms + tonumber(ARGV[2])), ARGV[1])
"""

# A reserve of an admitted fan is on its way: where their session stands, and their claim
# window (if still open) kept open at least ARGV[2] ms more, never past the session's end.
# A reserve can wait longer than the window in a busy on-sale (the front door gives up
# after booking_rpc_timeout_seconds and says 503, while the command is still applied);
# without this the window closed meanwhile, the fan's retry (same Idempotency-Key) was
# refused as admission_invalid, and the seats the first try held were nobody's until the
# hold expired.
# KEYS: active unclaimed  ARGV: user, keep_ms  -> {session end ms or -1, claim_by ms or -1}
KEEP_CLAIM_BODY = """
local ends = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not ends then return {-1, -1} end
ends = tonumber(ends)
local claim = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not claim then return {fmt(ends), -1} end
claim = tonumber(claim)
if claim > now_ms and ends > now_ms then
  local want = math.min(ends, now_ms + tonumber(ARGV[2]))
  if want > claim then
    redis.call('ZADD', KEYS[2], 'XX', fmt(want), ARGV[1])
    claim = want
  end
end
return {fmt(ends), fmt(claim)}
"""
