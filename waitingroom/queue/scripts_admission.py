"""Admission, in Lua: the admitters' tick (TICK), which ends sessions that are over,
drops fans who stopped listening and admits from the front of the line as the rate, the
slots and the seats left allow; and the copy of the operators' settings it reads
(CONFIG_WRITE, which needs no prelude: ``waitingroom.queue.store_config`` runs it).

These are the scripts' bodies: :mod:`waitingroom.queue.scripts` puts in front of each the
preludes it needs (``now_us``, ``now_ms`` and ``fmt`` from the clock); it lists the keys.
"""

from __future__ import annotations

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
# While a registered presale runs (``presale_until``, its general sale's start in Unix ms,
# is ahead) only its share may be held or sold (booking_worker/reserve.py refuses the rest
# ``presale_sold_out``), so the seats left are the share's: those left less
# ``presale_reserve``, the seats kept for the general sale (both fields written by
# waitingroom/queue/presale_share.py). Once every seat of the share is held or sold
# (``presale_held``) nobody is admitted: holds may lapse and free seats of it, as with
# ``all_held``; at the general sale this ends.
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

# What operators set is on record in PostgreSQL; ``config`` is its copy, with the record's
# ``version`` (0: nothing on record, the defaults). A copy without one is not known yet:
# Redis lost it (a restart without its data), or it predates the record. TICK then admits
# nobody (sessions still end, silent fans still go) until the copy is written back, at most
# about a second later (the once-a-second count writes back what is missing, see
# waitingroom/queue/store_config.py). Why here and not "restore, then tick" in the
# admitter: that is two steps in every process, and a loss between them, or a tick that
# went ahead when the restore failed (PostgreSQL down too), admits under the defaults a
# queue its operator paused. Here the check and the admission are one atomic step. It
# costs nothing in practice: after a loss nobody is admitted until the next count and the
# draw are back anyway, and the count writes the copy back in the same second.
# Every session this queue state gives is recorded in ``sessions`` (user -> its end, ms,
# kept a minute past it): a token from a state Redis lost restores only a session this
# state never gave (KEEP_CLAIM), so one given here and ended stays ended.
# KEYS: waiting pre active seen state config rate unclaimed sessions departed
# ARGV: default admit_per_minute, max_active, session_seconds, mode; abandon_ms, batch_max,
#       sweep_max; default claim_seconds, margin_percent; prior seats per fan, its weight
# -> {now_ms, expired users, abandoned count, {user, place, expiry, ...} admitted,
#     unclaimed users (their claim window passed), and when all_held or presale_held
#     changed (every fan's status changes): whether either holds now ('1'|'0')}
TICK_BODY = (
    _INVENTORY
    + "local KEEP_MS = 30 * 24 * 3600 * 1000\n"
    + """
local waiting, pre, active, seen, state, config, rate, unclaimed =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local sweep_max = tonumber(ARGV[7])
local departed = KEYS[10]  -- fans out of the line this last hour (PLACE)
redis.call('ZREMRANGEBYSCORE', KEYS[9], '-inf', now_ms - 60000)  -- sessions
redis.call('ZREMRANGEBYSCORE', departed, '-inf', now_ms - 3600 * 1000)
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
  for _, user in ipairs(gone) do redis.call('ZADD', departed, now_ms, user) end
end
local s = redis.call('HMGET', state, 'drawn', 'sold_out', 'auto_rate', 'tokens', 'tokens_at',
                     'all_held', 'regroup_until', 'presale_until', 'presale_reserve',
                     'presale_held')
local c = redis.call('HMGET', config, 'admit_per_minute', 'max_active', 'session_seconds',
                     'mode', 'paused', 'claim_seconds', 'admission_margin_percent',
                     'version')
local left, avg, all_held = inventory(
  redis.call('HMGET', state, 'available', 'held', 'seat_base', 'hold_seats', 'hold_fans',
             'sold_out'),
  tonumber(ARGV[10]), tonumber(ARGV[11]))
local presale_held = false
if left ~= nil and now_ms < tonumber(s[8] or '0') then
  left = left - tonumber(s[9] or '0')  -- the presale's share: what it may still hold
  presale_held = s[2] ~= '1' and left <= 0
end
local held_change = ''
if left ~= nil and ((s[6] == '1') ~= all_held or (s[10] == '1') ~= presale_held) then
  held_change = (all_held or presale_held) and '1' or '0'
  redis.call('HSET', state, 'all_held', all_held and '1' or '0',
             'presale_held', presale_held and '1' or '0')
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
-- events, so that is a second at most), nor while the operators' settings are not known
-- (c[8], the copy's version, missing: see above), nor while the line regroups after a
-- loss (s[7]: see REDRAW).
local open = s[1] == '1' and s[2] ~= '1' and c[5] ~= '1' and c[8] ~= false
  and left ~= nil and left > 0 and now_ms >= tonumber(s[7] or '0')
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
      redis.call('ZADD', KEYS[9], fmt(expiry), popped[i])  -- sessions
      redis.call('ZREM', seen, popped[i])
      redis.call('ZADD', departed, now_ms, popped[i])
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
  for i = 1, 10 do redis.call('PEXPIRE', KEYS[i], KEEP_MS) end
  redis.call('HSET', state, 'kept_until', fmt(now_ms + 3600000))
end
return {now_ms, expired, #gone, admitted, lapsed, held_change}
"""
)

# The settings on record, copied into ``config`` unless the copy there is as new or newer
# (so writes that cross, two PATCHes or a PATCH and a restore, leave the latest). Every
# field on record goes at once; fields not on record keep the default (or, in a copy from
# before the record, what was set there).
# KEYS: config
# ARGV: the record's version (0: nothing on record), then field, value, ...
# -> 1 written, 0 the copy was as new already
CONFIG_WRITE = """
local held = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
if held >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], unpack(ARGV, 2))
return 1
"""
