"""The queue's Lua scripts, each as Redis runs it. Each touches only one event's keys, which
share the hash tag ``{<event_id>}``, so every script also runs on Redis Cluster; each is one
atomic step.

Keys of an event (``<prefix>q:{<event_id>}:<name>``):

- ``waiting`` zset user -> place. FIFO places are Redis TIME in microseconds at join (kept
  increasing through ``state.last``); drawn pre-queue places are -N..-1, ahead of all.
- ``pre`` zset user -> arrival place, until the draw at on-sale.
- ``active`` zset user -> session expiry (ms). An admission token is derived from it.
- ``seen`` zset user -> last seen (ms), for waiting fans only; abandonment reads it.
- ``unclaimed`` zset user -> claim deadline (ms): admitted fans who hold no seats yet.
- ``departed`` zset user -> when (ms): fans who left the line (admitted, dropped as
  abandoned, or gone of their own accord) within the last hour; a queue ticket of this
  state gives such a fan no place back (PLACE).
- ``sessions`` set of users given a session in this state (by the tick, or restored from
  a token of a lost state): a token of an older epoch restores a session only once, and
  never for a fan this state admitted again.
- ``config`` hash: what operators set (absent fields take the TICKETING_QUEUE_* default).
- ``state`` hash: epoch (when this queue's state was created), last, drawn, sold_out,
  available, held, seat_base, counted_us (the last count), hold_seats, hold_fans (holds
  made through the front door), all_held, auto_rate, tokens, tokens_at, admitted_total.
- ``rate`` hash second -> admissions, for the measured rate.
- ``seed`` string (secret until the draw), ``fair`` hash (commitment, seed once revealed),
  ``drawn`` list of member refs in drawn order.

Times come from Redis TIME, so every process agrees on them. Numbers go back into Redis as
``%d`` strings: Lua's tostring would print a microsecond timestamp as 1.7e+15.

Each script is its preludes, then its body, which lives (with its KEYS, ARGV and reply)
in the module of its concern. A script's text is its identity: the gateway runs PLACE by
its SHA1 (``place_sha``, deploy/render_nginx.py).
"""

from __future__ import annotations

from waitingroom.queue import (
    scripts_admission,
    scripts_claims,
    scripts_count,
    scripts_draw,
    scripts_places,
)

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
    "sessions",
    "departed",
)

# The time, read once per call: now_us, now_ms, and fmt for numbers going back into Redis.
_CLOCK = """
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
local function fmt(n) return string.format('%d', n) end
"""

# Where fans stand in line.
PLACE = _CLOCK + scripts_places.PLACE_BODY
LEAVE = _CLOCK + scripts_places.LEAVE_BODY
POSITIONS = _CLOCK + scripts_places.POSITIONS_BODY
TOUCH = _CLOCK + scripts_places.TOUCH_BODY

# Admission.
TICK = _CLOCK + scripts_admission.TICK_BODY

# Admitted fans' sessions and claim windows.
CLAIM = scripts_claims.CLAIM_BODY
HURRY_CLAIM = _CLOCK + scripts_claims.HURRY_CLAIM_BODY
KEEP_CLAIM = _CLOCK + scripts_claims.KEEP_CLAIM_BODY

# Counting what is left to sell.
COUNT_BEGIN = _CLOCK + scripts_count.COUNT_BEGIN_BODY
COUNT_APPLY = _CLOCK + scripts_count.COUNT_APPLY_BODY

# The fair start.
COMMIT = _CLOCK + scripts_draw.COMMIT_BODY
DRAW = _CLOCK + scripts_draw.DRAW_BODY
REDRAW = _CLOCK + scripts_draw.REDRAW_BODY
