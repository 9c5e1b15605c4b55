"""The queue's Lua scripts. Each touches only one event's keys, which share the hash tag
``{<event_id>}``, so every script also runs on Redis Cluster; each is one atomic step.

Keys of an event (``<prefix>q:{<event_id>}:<name>``):

- ``waiting`` zset user -> place. FIFO places are Redis TIME in microseconds at join (kept
  increasing through ``state.last``); drawn pre-queue places are -N..-1, ahead of all.
- ``pre`` zset user -> arrival place, until the draw at on-sale.
- ``active`` zset user -> session expiry (ms). An admission token is derived from it.
- ``seen`` zset user -> last seen (ms), for waiting fans only; abandonment reads it.
- ``unclaimed`` zset user -> claim deadline (ms): admitted fans who hold no seats yet.
- ``config`` hash: what operators set (absent fields take the TICKETING_QUEUE_* default).
- ``state`` hash: epoch (when this queue's state was created), last, drawn, sold_out,
  available, held, seat_base, counted_us (the last count), hold_seats, hold_fans (holds
  made through the front door), all_held, auto_rate, tokens, tokens_at, admitted_total.
- ``rate`` hash second -> admissions, for the measured rate.
- ``seed`` string (secret until the draw), ``fair`` hash (commitment, seed once revealed),
  ``drawn`` list of member refs in drawn order.

Times come from Redis TIME, so every process agrees on them. Numbers go back into Redis as
``%d`` strings: Lua's tostring would print a microsecond timestamp as 1.7e+15.
"""

from __future__ import annotations

NAMES = (
    "waiting",
    "pre",
    "active",
    "seen",
    "config",
    "state",
    "rate",
    "seed",
    "fair",
    "drawn",
    "unclaimed",
)

_CLOCK = """
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
local function fmt(n) return string.format('%d', n) end
"""

# Several fans' joins and status reads in one call (the front door gathers the ones that
# arrive together; see QueueStore.place), each decided exactly as it would be alone.
# KEYS: waiting pre active seen state, then per request its fan's and its address's
#       rate-limit keys (GCRA: the "theoretical arrival time" in ms)
# ARGV: per-fan interval and tolerance (ms), per-address interval and tolerance (ms), then
#       per request: user, mode (join|status), on_sale_ms, restore_where (''|waiting|pre),
#       restore_place, restore_epoch, limited (1: count it against both limits)
# -> per request {kind, place_or_expiry, rank, pre_ahead, epoch, new, drawn}; kind
#    'limited' (place_or_expiry: ms until allowed) when a limit refused it, unplaced
PLACE_FIELDS = 7
PLACE = (
    _CLOCK
    + """
local waiting, pre, active, seen, state = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local user_interval, user_tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local ip_interval, ip_tolerance = tonumber(ARGV[3]), tonumber(ARGV[4])
local drawn = redis.call('HGET', state, 'drawn') == '1'
local sold = redis.call('HGET', state, 'sold_out') == '1'
local last = tonumber(redis.call('HGET', state, 'last') or '0')
local last_before = last
local epoch = redis.call('HGET', state, 'epoch')

-- 0 when allowed (and counted), else ms until it would be
local function wait_ms(key, interval, tolerance)
  local tat = tonumber(redis.call('GET', key) or now_ms)
  if tat < now_ms then tat = now_ms end
  local allow_at = tat + interval - tolerance
  if allow_at > now_ms then return allow_at - now_ms end
  redis.call('SET', key, string.format('%.3f', tat + interval), 'PX',
             math.ceil(tat + interval - now_ms) + 1000)
  return 0
end

local function ahead_of_pre()
  if drawn then return 0 end
  return redis.call('ZCARD', pre)
end

local function place(user, mode, on_sale_ms, where, score, ticket_epoch)
  if not epoch and mode == 'join' then
    epoch = fmt(now_us)
    redis.call('HSET', state, 'epoch', epoch)
  end
  local e = epoch or ''
  local expiry = redis.call('ZSCORE', active, user)
  if expiry then
    if tonumber(expiry) > now_ms then
      return {'admitted', expiry, 0, 0, e, 0, 1}
    end
    redis.call('ZREM', active, user)  -- its session is over; the tick frees the slot too
  end
  local at = redis.call('ZSCORE', waiting, user)
  if at then
    redis.call('ZADD', seen, 'XX', now_ms, user)
    return {sold and 'sold_out' or 'waiting', at, redis.call('ZRANK', waiting, user),
            ahead_of_pre(), e, 0, drawn and 1 or 0}
  end
  at = redis.call('ZSCORE', pre, user)
  if at then
    return {'pre', at, -1, 0, e, 0, 0}
  end
  if sold then return {'sold_out', 0, -1, 0, e, 0, drawn and 1 or 0} end
  if mode ~= 'join' then return {'none', 0, -1, 0, e, 0, drawn and 1 or 0} end
  -- A signed queue ticket restores a place this queue no longer has only when the queue
  -- lost state (a new epoch, or places handed out later than `last` are gone); otherwise
  -- the fan left or was dropped, and joins at the back like anyone else.
  local restoring = (where == 'waiting' or where == 'pre')
    and (ticket_epoch ~= e or (score > 0 and score > last))
  local key
  if restoring then
    if where == 'pre' and drawn then
      key, score = waiting, 0  -- behind the drawn pre-queue, ahead of later arrivals
    else
      key = (where == 'pre') and pre or waiting
    end
    if score > last then last = score end
  else
    score = math.max(now_us, last + 1)
    last = score
    key = (not drawn and now_ms < on_sale_ms) and pre or waiting
  end
  redis.call('ZADD', key, fmt(score), user)
  if key == pre then
    return {'pre', fmt(score), -1, 0, e, restoring and 2 or 1, 0}
  end
  -- Pre-queue fans are exempt from abandonment until the draw (they may join hours early).
  redis.call('ZADD', seen, now_ms, user)
  return {'waiting', fmt(score), redis.call('ZRANK', waiting, user), ahead_of_pre(), e,
          restoring and 2 or 1, drawn and 1 or 0}
end

local out = {}
local n = (#ARGV - 4) / 7
for i = 0, n - 1 do
  local a = 4 + i * 7
  local result
  local wait = 0
  if ARGV[a + 7] == '1' then
    wait = wait_ms(KEYS[6 + i * 2], user_interval, user_tolerance)
    if wait == 0 then wait = wait_ms(KEYS[7 + i * 2], ip_interval, ip_tolerance) end
  end
  if wait > 0 then
    result = {'limited', math.ceil(wait), -1, 0, epoch or '', 0, 0}
  else
    result = place(ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3]), ARGV[a + 4],
                   tonumber(ARGV[a + 5]), ARGV[a + 6])
  end
  for j = 1, 7 do out[#out + 1] = result[j] end
end
if last ~= last_before then redis.call('HSET', state, 'last', fmt(last)) end
return out
"""
)

# KEYS: waiting pre active seen unclaimed  ARGV: user  -> 'waiting' | 'pre' | 'admitted' | ''
LEAVE = """
local user = ARGV[1]
if redis.call('ZREM', KEYS[3], user) == 1 then
  redis.call('ZREM', KEYS[5], user)
  return 'admitted'
end
if redis.call('ZREM', KEYS[1], user) == 1 then
  redis.call('ZREM', KEYS[4], user)
  return 'waiting'
end
if redis.call('ZREM', KEYS[2], user) == 1 then return 'pre' end
return ''
"""

# Admission follows inventory. The once-a-second count (COUNT_APPLY) leaves in ``state``
# the seats available and held, and ``seat_base``: the running total of seats held through
# the front door (``hold_seats``, CLAIM adds every 201 reserve's seats at once) as it stood
# *before* the count read PostgreSQL. Seats held since then are not in the count yet, so
# the seats left are ``available - (hold_seats - seat_base)``: a fan who just got a 201
# stops being "admitted, not yet holding" and their seats stop being available in the
# same step (a hold counted by PostgreSQL and also recorded after seat_base is taken off
# twice, for under a second: admission errs on the side of fewer).
# Fans admitted but not yet holding (``unclaimed``, user -> claim deadline), times the
# seats a fan takes on average (``hold_seats / hold_fans``, with a prior of PRIOR seats
# worth WEIGHT fans until measured), stay within the seats left plus the operator's margin;
# one fan at a time goes in while any seat is left and nobody admitted is still choosing.
_INVENTORY = """
local function inventory(s, prior, weight)
  -- s: available, held, seat_base, hold_seats, hold_fans, sold_out
  if s[1] == false then return nil end
  local recent = math.max(0, tonumber(s[4] or '0') - tonumber(s[3] or '0'))
  local left = tonumber(s[1]) - recent
  local avg = (tonumber(s[4] or '0') + prior * weight) / (tonumber(s[5] or '0') + weight)
  return left, avg, s[6] ~= '1' and left <= 0
end
"""

# KEYS: waiting pre active seen state config rate unclaimed
# ARGV: default admit_per_minute, max_active, session_seconds, mode; abandon_ms, batch_max,
#       sweep_max; default claim_seconds, margin_percent; prior seats per fan, its weight
# -> {now_ms, expired users, abandoned count, {user, place, expiry, ...} admitted,
#     unclaimed users (their claim window passed), all_held now ('1'|'0') when it changed}
TICK = (
    _CLOCK
    + _INVENTORY
    + "local KEEP_MS = 30 * 24 * 3600 * 1000\n"
    + """
local waiting, pre, active, seen, state, config, rate, unclaimed =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local sweep_max = tonumber(ARGV[7])
local expired = redis.call('ZRANGEBYSCORE', active, '-inf', now_ms, 'LIMIT', 0, sweep_max)
if #expired > 0 then
  redis.call('ZREM', active, unpack(expired))
  redis.call('ZREM', unclaimed, unpack(expired))
end
-- Admitted fans who held nothing within the claim window: the admission goes to the next.
local lapsed = {}
local late = redis.call('ZRANGEBYSCORE', unclaimed, '-inf', now_ms, 'LIMIT', 0, sweep_max)
if #late > 0 then
  redis.call('ZREM', unclaimed, unpack(late))
  for _, user in ipairs(late) do
    if redis.call('ZREM', active, user) == 1 then lapsed[#lapsed + 1] = user end
  end
end
local gone = redis.call('ZRANGEBYSCORE', seen, '-inf', now_ms - tonumber(ARGV[5]),
                        'LIMIT', 0, sweep_max)
if #gone > 0 then
  redis.call('ZREM', waiting, unpack(gone))
  redis.call('ZREM', seen, unpack(gone))
end
local s = redis.call('HMGET', state, 'drawn', 'sold_out', 'auto_rate', 'tokens', 'tokens_at',
                     'all_held')
local c = redis.call('HMGET', config, 'admit_per_minute', 'max_active', 'session_seconds',
                     'mode', 'paused', 'claim_seconds', 'admission_margin_percent')
local left, avg, all_held = inventory(
  redis.call('HMGET', state, 'available', 'held', 'seat_base', 'hold_seats', 'hold_fans',
             'sold_out'),
  tonumber(ARGV[10]), tonumber(ARGV[11]))
local held_change = ''
if left ~= nil and (s[6] == '1') ~= all_held then
  held_change = all_held and '1' or '0'
  redis.call('HSET', state, 'all_held', held_change)
end
local admitted = {}
local mode = c[4] or ARGV[4]
local per_minute = tonumber(c[1] or ARGV[1])
if mode == 'auto' then per_minute = math.min(per_minute, tonumber(s[3] or '0')) end
local tokens = tonumber(s[4] or '1')
local since = now_ms - tonumber(s[5] or now_ms)
-- A shared token bucket: every process's admitter draws from it, so together they admit
-- at the set rate; it holds at most a second's worth, so a pause is not followed by a burst.
if per_minute <= 0 then
  tokens = 0
else
  tokens = math.min(math.max(1, per_minute / 60), tokens + since * per_minute / 60000)
end
-- Never before the first count of what is left to sell (the admitters tick only counted
-- events, so that is a second at most).
local open = s[1] == '1' and s[2] ~= '1' and c[5] ~= '1' and left ~= nil and left > 0
if open then
  local slots = tonumber(c[2] or ARGV[2]) - redis.call('ZCARD', active)
  local choosing = redis.call('ZCARD', unclaimed)
  local margin = tonumber(c[7] or ARGV[9])
  local room = math.floor(left * (100 + margin) / (100 * avg) + 1e-9) - choosing
  if choosing == 0 then room = math.max(room, 1) end
  local n = math.min(math.floor(tokens), slots, tonumber(ARGV[6]), room)
  if n > 0 then
    local popped = redis.call('ZPOPMIN', waiting, n)
    local expiry = now_ms + tonumber(c[3] or ARGV[3]) * 1000
    local deadline = math.min(expiry, now_ms + tonumber(c[6] or ARGV[8]) * 1000)
    local k = #popped / 2
    for i = 1, #popped, 2 do
      redis.call('ZADD', active, fmt(expiry), popped[i])
      redis.call('ZADD', unclaimed, fmt(deadline), popped[i])
      redis.call('ZREM', seen, popped[i])
      admitted[#admitted + 1] = popped[i]
      admitted[#admitted + 1] = popped[i + 1]
      admitted[#admitted + 1] = fmt(expiry)
    end
    if k > 0 then
      tokens = tokens - k
      redis.call('HINCRBY', state, 'admitted_total', k)
      local second = math.floor(now_ms / 1000)
      redis.call('HINCRBY', rate, second, k)
      if redis.call('HLEN', rate) > 180 then
        for _, field in ipairs(redis.call('HKEYS', rate)) do
          if tonumber(field) < second - 120 then redis.call('HDEL', rate, field) end
        end
      end
    end
  end
end
redis.call('HSET', state, 'tokens', string.format('%.6f', tokens), 'tokens_at', fmt(now_ms))
-- Hourly, push back the expiry of the queue's keys: once its event is over (no admitter
-- ticks it any more) the queue goes away by itself. The draw's record (seed, fair, drawn)
-- stays, for the audit.
if now_ms > tonumber(redis.call('HGET', state, 'kept_until') or '0') then
  for i = 1, 8 do redis.call('PEXPIRE', KEYS[i], KEEP_MS) end
  redis.call('HSET', state, 'kept_until', fmt(now_ms + 3600000))
end
return {now_ms, expired, #gone, admitted, lapsed, held_change}
"""
)

# A 201 reserve with an admission token, as the front door passes it on: the fan holds
# seats now (no longer "admitted, not yet holding") and the seats count as taken at once.
# KEYS: unclaimed state  ARGV: user, seats  -> 1 the fan's first hold this session, else 0
CLAIM = """
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
HURRY_CLAIM = (
    _CLOCK
    + """
return redis.call('ZADD', KEYS[1], 'XX', 'LT', 'CH', fmt(now_ms + tonumber(ARGV[2])), ARGV[1])
"""
)

# A reserve of an admitted fan is on its way: where their session stands, and their claim
# window (if still open) kept open at least ARGV[2] ms more, never past the session's end.
# A reserve can wait longer than the window in a busy on-sale (the front door gives up
# after booking_rpc_timeout_seconds and says 503, while the command is still applied);
# without this the window closed meanwhile, the fan's retry (same Idempotency-Key) was
# refused as admission_invalid, and the seats the first try held were nobody's until the
# hold expired.
# KEYS: active unclaimed  ARGV: user, keep_ms  -> {session end ms or -1, claim_by ms or -1}
KEEP_CLAIM = (
    _CLOCK
    + """
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
)

# Before a count reads PostgreSQL: when (Redis TIME, us) and the seats held through the
# front door so far. KEYS: state  -> {now_us, hold_seats}
COUNT_BEGIN = (
    _CLOCK
    + """
return {fmt(now_us), redis.call('HGET', KEYS[1], 'hold_seats') or '0'}
"""
)

# A count's result, unless a count begun later is in already (counts run in any process,
# and the one after a confirm may finish before the once-a-second one begun earlier).
# Sold out (nothing available, nothing held): every admitted fan's session ends, and they
# go back to the front of the line in the order they were admitted, so that if seats come
# back (a refund, a hold released) they are served first again.
# KEYS: state waiting active unclaimed seen
# ARGV: began_us, seat_base, available, held
# -> {'stale'|'sold_out'|'on_sale'|'' (no change), users moved back to the line}
COUNT_APPLY = (
    _CLOCK
    + """
local state, waiting, active, unclaimed, seen = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local began = tonumber(ARGV[1])
if began < tonumber(redis.call('HGET', state, 'counted_us') or '0') then
  return {'stale', 0}
end
local was = redis.call('HGET', state, 'sold_out') == '1'
local sold = tonumber(ARGV[3]) == 0 and tonumber(ARGV[4]) == 0
redis.call('HSET', state, 'counted_us', ARGV[1], 'seat_base', ARGV[2], 'available', ARGV[3],
           'held', ARGV[4], 'sold_out', sold and '1' or '0')
local moved = 0
if sold then
  local users = redis.call('ZRANGE', active, 0, -1)  -- by session end: admission order
  moved = #users
  if moved > 0 then
    local first = redis.call('ZRANGE', waiting, 0, 0, 'WITHSCORES')
    local front = tonumber(first[2] or redis.call('HGET', state, 'last') or fmt(now_us)) or 0
    for i, user in ipairs(users) do
      redis.call('ZADD', waiting, fmt(front - (moved - i + 1)), user)
      redis.call('ZADD', seen, now_ms, user)
    end
    redis.call('DEL', active, unclaimed)
  end
end
local change = ''
if sold ~= was then change = sold and 'sold_out' or 'on_sale' end
return {change, moved}
"""
)

# KEYS: seed fair  ARGV: seed, commitment -> commitment in force
COMMIT = (
    _CLOCK
    + """
local existing = redis.call('HGET', KEYS[2], 'commitment')
if existing and redis.call('EXISTS', KEYS[1]) == 1 then return existing end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'commitment', ARGV[2], 'committed_at', fmt(now_ms))
return ARGV[2]
"""
)

# KEYS: waiting pre seen state fair drawn seed
# ARGV: on_sale_ms, seed, then user, ref pairs in drawn order
# -> 'ok' | 'done' (already drawn) | 'early' | 'changed' (the pre-queue moved; draw again)
DRAW = (
    _CLOCK
    + """
local waiting, pre, seen, state, fair, drawn = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
if redis.call('HGET', state, 'drawn') == '1' then return 'done' end
if now_ms < tonumber(ARGV[1]) then return 'early' end
if redis.call('GET', KEYS[7]) ~= ARGV[2] then return 'changed' end
local n = (#ARGV - 2) / 2
if redis.call('ZCARD', pre) ~= n then return 'changed' end
for i = 3, #ARGV, 2 do
  if not redis.call('ZSCORE', pre, ARGV[i]) then return 'changed' end
end
local place = -n
for i = 3, #ARGV, 2 do
  redis.call('ZADD', waiting, place, ARGV[i])
  -- Everyone drawn gets the abandonment grace from on-sale, however early they joined.
  redis.call('ZADD', seen, now_ms, ARGV[i])
  redis.call('RPUSH', drawn, ARGV[i + 1])
  place = place + 1
end
redis.call('DEL', pre)
redis.call('HSET', state, 'drawn', '1')
redis.call('HSET', fair, 'seed', ARGV[2], 'revealed_at', fmt(now_ms), 'members', n)
return 'ok'
"""
)

# The draw again, from its record, after Redis lost the queue (waitingroom.queue.draw):
# every fan back in the pre-queue goes to the place the recorded draw gave them (-N for the
# first of N drawn ... -1), 0 (behind them) if the record does not have them.
# KEYS: waiting pre seen state  ARGV: on_sale_ms, then user, place pairs
# -> 'ok' | 'done' (drawn already) | 'early' | 'changed' (the pre-queue moved; again)
REDRAW = (
    _CLOCK
    + """
local waiting, pre, seen, state = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('HGET', state, 'drawn') == '1' then return 'done' end
if now_ms < tonumber(ARGV[1]) then return 'early' end
if redis.call('ZCARD', pre) ~= (#ARGV - 1) / 2 then return 'changed' end
for i = 2, #ARGV, 2 do
  if not redis.call('ZSCORE', pre, ARGV[i]) then return 'changed' end
end
for i = 2, #ARGV, 2 do
  redis.call('ZADD', waiting, ARGV[i + 1], ARGV[i])
  redis.call('ZADD', seen, now_ms, ARGV[i])
end
redis.call('DEL', pre)
redis.call('HSET', state, 'drawn', '1')
return 'ok'
"""
)

# KEYS: waiting pre active seen state  ARGV: touch (0|1), users...
# -> {now_ms, waiting count, pre_ahead, epoch, drawn, then per user: code, rank, place}
#    code 0 waiting, 1 pre-queue, 2 admitted (place = session expiry ms), 3 not queued
POSITIONS = (
    _CLOCK
    + """
local waiting, pre, active, seen, state = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local s = redis.call('HMGET', state, 'drawn', 'epoch')
local pre_ahead = 0
if s[1] ~= '1' then pre_ahead = redis.call('ZCARD', pre) end
local out = {now_ms, redis.call('ZCARD', waiting), pre_ahead, s[2] or '', s[1] == '1' and 1 or 0}
local touched = {}
local function put(code, rank, place)
  out[#out + 1] = code
  out[#out + 1] = rank
  out[#out + 1] = place
end
for i = 2, #ARGV do
  local user = ARGV[i]
  local rank = redis.call('ZRANK', waiting, user)
  if rank then
    put(0, rank, redis.call('ZSCORE', waiting, user))
    touched[#touched + 1] = now_ms
    touched[#touched + 1] = user
  else
    local expiry = redis.call('ZSCORE', active, user)
    local place = redis.call('ZSCORE', pre, user)
    if expiry and tonumber(expiry) > now_ms then
      put(2, 0, expiry)
    elseif place then
      put(1, -1, place)
    else
      put(3, -1, 0)
    end
  end
end
if ARGV[1] == '1' then
  for i = 1, #touched, 1000 do
    redis.call('ZADD', seen, 'XX', unpack(touched, i, math.min(i + 999, #touched)))
  end
end
return out
"""
)
