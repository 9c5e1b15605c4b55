"""Prometheus metrics of the waiting room, served on the waitingroom's ``/metrics``.

Gauges of a queue as a whole (length, active sessions, rates) are the same in every
process (each reads them from Redis); counters and histograms count this process's work.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WAIT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)

QUEUE_LENGTH = Gauge(
    "ticketing_queue_length",
    "Fans in an event's queue, by stage (waiting, pre_queue).",
    ["event_id", "stage"],
)
ACTIVE_SESSIONS = Gauge(
    "ticketing_queue_active_sessions", "Admitted fans whose session is running.", ["event_id"]
)
ADMIT_RATE = Gauge(
    "ticketing_queue_admit_rate_per_minute",
    "Admission rate: the one in force (set, or auto mode's) and the one measured.",
    ["event_id", "kind"],
)
# What an operator set and what the once-a-second count found, so alerts can tell a
# stalled queue from a paused, full or sold-out one.
PAUSED = Gauge("ticketing_queue_paused", "1 while an operator has admissions paused.", ["event_id"])
MAX_ACTIVE = Gauge(
    "ticketing_queue_max_active", "Most active sessions the queue admits up to.", ["event_id"]
)
SEATS = Gauge(
    "ticketing_queue_seats",
    "The event's seats by status (available, reserved: in a hold, booked), as last counted.",
    ["event_id", "status"],
)
JOINS = Counter(
    "ticketing_queue_joins_total",
    "Join calls by outcome (new, again, restored, sold_out).",
    ["event_id", "outcome"],
)
ADMISSIONS = Counter(
    "ticketing_queue_admissions_total", "Fans this process's admitter admitted.", ["event_id"]
)
UNREPLICATED_TICKS = Counter(
    "ticketing_queue_unreplicated_admission_ticks_total",
    "Admitting ticks whose writes no replica acknowledged in time (Redis Cluster or "
    "Sentinel): a failover right after one could admit those fans again.",
)
SESSION_ENDS_DEFERRED = Counter(
    "ticketing_queue_session_ends_deferred_total",
    "Booked fans' session ends Redis or PostgreSQL refused at the confirm, by outcome "
    "(deferred: tried again in the background; ended: done later; expired: left to expire).",
    ["outcome"],
)
SESSIONS_ENDED = Counter(
    "ticketing_queue_sessions_ended_total",
    "Sessions or places ended, by reason (expired, booked, left, abandoned; unclaimed: no "
    "seats held within the claim window; sold_out: the sell-out sent the fan back in line).",
    ["reason"],
)
OPEN_SOCKETS = Gauge("ticketing_queue_open_sockets", "Queue websockets open in this process.")
DROPPED_SOCKETS = Counter(
    "ticketing_queue_dropped_sockets_total",
    "Queue websockets closed because the client did not keep up with its pushes.",
)
PUSH_LAG = Histogram(
    "ticketing_queue_push_lag_seconds",
    "From the change (admission, or the start of a status round) to the websocket send "
    "(for statuses, the round's last send: observed once a round).",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ESTIMATED_WAIT = Histogram(
    "ticketing_queue_estimated_wait_seconds",
    "The wait a fan was told when joining (from the measured admission rate).",
    buckets=WAIT_BUCKETS,
)
ACTUAL_WAIT = Histogram(
    "ticketing_queue_actual_wait_seconds",
    "From joining (or on-sale, for the pre-queue) to admission.",
    buckets=WAIT_BUCKETS,
)
PLACE_BATCH = Histogram(
    "ticketing_queue_place_batch_size",
    "Joins and status reads that went to Redis in one placement call (batched per event).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
CHALLENGES = Counter(
    "ticketing_queue_challenges_total",
    "Joins checked at a door whose challenge is on, by outcome (solved, required: none sent, "
    "and why a solution failed: malformed, signature, solution, expired, reused).",
    ["outcome"],
)
SOLVE_SECONDS = Histogram(
    "ticketing_queue_challenge_solve_seconds",
    "How long a fan's browser took to solve a challenge that passed (as it reported).",
    buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
)
