"""An admitted fan's session and its claim window, in Lua: a hold made (CLAIM), too few
seats found (HURRY_CLAIM), a reserve on its way or a session Redis lost (KEEP_CLAIM).

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

# A session Redis lost (a restart without persistence, a failover to a replica that had
# nothing): the fan's admission token, or the queue ticket they hold as an admitted fan,
# still says when the session ends and which queue state (epoch) granted it. It is given
# back when, and only when, that state is gone: the token's epoch is not this queue's, this
# state never gave the fan a session (``sessions``: TICK records each admission, this each
# restore; so one that ended since, by booking, leaving, the claim window or a sell-out,
# stays ended), time is left, and the event is not sold out. Restored as at admission: in
# ``active`` until the token's end, a fresh claim window in ``unclaimed``, out of the line.
# A queue state that has no epoch yet (nobody joined since the loss) gets one now, so the
# tokens answered from here on name it.
# KEYS: active unclaimed state config sessions waiting pre seen
# ARGV: user, epoch of the token ('' restores nothing), session end ms, claim_seconds default
_RESTORE = """
local function restore(user, epoch, until_ms, claim_seconds)
  if epoch == '' or until_ms <= now_ms then return nil end
  local s = redis.call('HMGET', KEYS[3], 'epoch', 'sold_out')
  if s[1] == epoch or s[2] == '1' or redis.call('ZSCORE', KEYS[5], user) then return nil end
  if not s[1] then redis.call('HSET', KEYS[3], 'epoch', fmt(now_us)) end
  local claim_ms = tonumber(redis.call('HGET', KEYS[4], 'claim_seconds') or claim_seconds) * 1000
  redis.call('ZADD', KEYS[1], fmt(until_ms), user)
  redis.call('ZADD', KEYS[2], fmt(math.min(until_ms, now_ms + claim_ms)), user)
  redis.call('ZADD', KEYS[5], fmt(until_ms), user)
  redis.call('ZREM', KEYS[6], user)
  redis.call('ZREM', KEYS[7], user)
  redis.call('ZREM', KEYS[8], user)
  -- keys made anew here expire as the admitters' TICK has the others do
  for _, key in ipairs({KEYS[1], KEYS[2], KEYS[3], KEYS[5]}) do
    if redis.call('PTTL', key) == -1 then redis.call('PEXPIRE', key, 30 * 24 * 3600 * 1000) end
  end
  return until_ms
end
"""

# A reserve of an admitted fan is on its way: where their session stands, and their claim
# window (if still open) kept open at least ARGV[2] ms more, never past the session's end.
# A reserve can wait longer than the window in a busy on-sale (the front door gives up
# after booking_rpc_timeout_seconds and says 503, while the command is still applied);
# without this the window closed meanwhile, the fan's retry (same Idempotency-Key) was
# refused as admission_invalid, and the seats the first try held were nobody's until the
# hold expired. A session Redis lost is restored first when the token allows (above); a
# join with an admitted fan's queue ticket runs this too, with ARGV[2] 0.
# KEYS: active unclaimed state config sessions waiting pre seen
# ARGV: user, keep_ms, the token's epoch ('' restores nothing), its session end ms,
#       claim_seconds default
# -> {session end ms or -1, claim_by ms or -1, 1 when restored now else 0}
KEEP_CLAIM_BODY = (
    _RESTORE
    + """
local restored = 0
local ends = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not ends then
  ends = restore(ARGV[1], ARGV[3], tonumber(ARGV[4]), ARGV[5])
  if not ends then return {-1, -1, 0} end
  restored = 1
end
ends = tonumber(ends)
local claim = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not claim then return {fmt(ends), -1, restored} end
claim = tonumber(claim)
if claim > now_ms and ends > now_ms then
  local want = math.min(ends, now_ms + tonumber(ARGV[2]))
  if want > claim then
    redis.call('ZADD', KEYS[2], 'XX', fmt(want), ARGV[1])
    claim = want
  end
end
return {fmt(ends), fmt(claim), restored}
"""
)
