"""Waiting-room rules with no I/O: operator settings, the auditable pre-queue draw, the
measured admission rate and wait estimate, sell-out, and auto mode's rate controller.

The waitingroom keeps the queue in Redis and feeds these functions what it read there;
anyone can rerun :func:`draw_order` on the published seed and members to check a draw.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """What operators set per event (``PATCH /admin/queues/{event_id}``, whose model,
    ``waitingroom.queue.admin_shapes.QueuePatch``, holds the bounds they may set)."""

    admit_per_minute: int
    max_active: int
    paused: bool
    session_seconds: int
    mode: str
    # An admitted fan who holds no seats this long after admission loses the admission.
    claim_seconds: int = 60
    # Fans admitted but not yet holding, times the seats a fan takes on average, stay within
    # the seats left plus this share of them.
    admission_margin_percent: int = 10
    # The proof of work a join carries (ticketing.domain.challenge): 0 turns it off; the
    # automatic mode raises it while the door is under a spike.
    challenge_difficulty: int = 0
    challenge_auto: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "admit_per_minute": self.admit_per_minute,
            "max_active": self.max_active,
            "paused": self.paused,
            "session_seconds": self.session_seconds,
            "mode": self.mode,
            "claim_seconds": self.claim_seconds,
            "admission_margin_percent": self.admission_margin_percent,
            "challenge_difficulty": self.challenge_difficulty,
            "challenge_auto": self.challenge_auto,
        }


# --- the fair start ------------------------------------------------------------------------
#
# Before on-sale the waiting room draws a 32-byte seed and publishes SHA-256(seed). At
# on-sale it reveals the seed and orders the pre-queue by HMAC-SHA256(key=seed, member_ref),
# lowest first (ties, which need a hash collision, by member_ref). Nobody can pick a seed
# after seeing who joined, and anyone can recompute the order from what is published.
# Members are published as refs, not as user ids: an HMAC of event and user id under the
# event's member key, which is derived from a server secret and never published. A plain
# hash would let anyone test a guessable user id against the record; with the key only
# the fan, told their own ref when signed in, finds their entry. The key is fixed by the
# secret before anyone joins, so it cannot be chosen after seeing who did.


def commitment(seed_hex: str) -> str:
    return hashlib.sha256(bytes.fromhex(seed_hex)).hexdigest()


def member_key(secret: str, event_id: int) -> bytes:
    """The event's member key: one per event, so refs of one event say nothing of another.
    A new secret gives every event new refs: rotate it between on-sales, not during one
    (the recorded draw of an on-sale under way would no longer find its fans)."""
    return hmac.new(
        secret.encode(), f"fairness-member:{event_id}".encode(), hashlib.sha256
    ).digest()


def member_ref(key: bytes, event_id: int, user_id: str) -> str:
    return hmac.new(key, f"{event_id}:{user_id}".encode(), hashlib.sha256).hexdigest()


def draw_key(seed_hex: str, ref: str) -> str:
    return hmac.new(bytes.fromhex(seed_hex), ref.encode(), hashlib.sha256).hexdigest()


def draw_order(seed_hex: str, refs: Iterable[str]) -> list[str]:
    """The pre-queue order the seed gives these members: a pure function of both."""
    return sorted(refs, key=lambda ref: (draw_key(seed_hex, ref), ref))


def draw_users(
    seed_hex: str, key: bytes, event_id: int, users: Iterable[str]
) -> list[tuple[str, str]]:
    """(user_id, member_ref) pairs in drawn order (``key``: the event's member key)."""
    by_ref = {member_ref(key, event_id, user): user for user in users}
    return [(by_ref[ref], ref) for ref in draw_order(seed_hex, by_ref)]


def order_digest(refs: Iterable[str]) -> str:
    """SHA-256 of the drawn refs joined by newlines: what an auditor compares after fetching
    the whole order page by page."""
    return hashlib.sha256("\n".join(refs).encode()).hexdigest()


class OrderCheck:
    """Checks a drawn order read in pieces (it may hold hundreds of thousands of refs):
    its digest, and that each ref sorts after the one before under ``seed_hex``."""

    def __init__(self, seed_hex: str) -> None:
        self.seed = seed_hex
        self.count = 0
        self.in_order = True
        self._hash = hashlib.sha256()
        self._last: tuple[str, str] | None = None

    def feed(self, refs: Iterable[str]) -> OrderCheck:
        for ref in refs:
            key = (draw_key(self.seed, ref), ref)
            if self._last is not None and key <= self._last:
                self.in_order = False
            self._hash.update(f"\n{ref}".encode() if self.count else ref.encode())
            self._last = key
            self.count += 1
        return self

    def digest(self) -> str:
        return self._hash.hexdigest()


# --- measured rate and wait estimate -------------------------------------------------------

RATE_WINDOW_SECONDS = 60
# Shorter spans than this say too little: one early burst would look like a huge rate.
MIN_RATE_SPAN_SECONDS = 5


def measured_rate_per_minute(
    admitted_by_second: Mapping[int, int], now_second: int, window: int = RATE_WINDOW_SECONDS
) -> float:
    """Admissions per minute actually made over the last ``window`` seconds (or since the
    first admission in it, when admission started more recently)."""
    recent = {s: n for s, n in admitted_by_second.items() if now_second - window < s <= now_second}
    total = sum(recent.values())
    if total == 0:
        return 0.0
    span = min(window, max(MIN_RATE_SPAN_SECONDS, now_second - min(recent) + 1))
    return total * 60.0 / span


def admission_pace(
    set_per_minute: float,
    admitted_by_second: Mapping[int, int],
    now_second: int,
    *,
    slots_free: bool,
    window: int = RATE_WINDOW_SECONDS,
) -> float:
    """The rate to tell a waiting fan their wait by: admissions per minute from now on.

    Once admission has run for MIN_RATE_SPAN_SECONDS, what it actually did over the window,
    but never more than the rate it is set to (an operator who just slowed it down is
    believed at once). Before that, at the start of an on-sale above all, the measurement
    says nothing yet (one second of admissions read as five seconds' would make every wait
    five times too long): the set rate is what the admitters will do, unless every session
    slot is taken (admission then waits on sessions ending, which nothing measured yet
    tells: no estimate)."""
    recent = {s: n for s, n in admitted_by_second.items() if now_second - window < s <= now_second}
    if recent and now_second - min(recent) + 1 >= MIN_RATE_SPAN_SECONDS:
        return min(set_per_minute, measured_rate_per_minute(recent, now_second, window))
    return set_per_minute if slots_free else 0.0


def eta_seconds(position: int, rate_per_minute: float) -> int | None:
    """Seconds until the fan at ``position`` (1 = next) is admitted at ``rate_per_minute``
    (see admission_pace); None when no rate can be told."""
    if rate_per_minute <= 0:
        return None
    return math.ceil(position * 60.0 / rate_per_minute)


# --- inventory and auto mode ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Inventory:
    available: int
    reserved: int
    booked: int

    @property
    def total(self) -> int:
        return self.available + self.reserved + self.booked

    def to_json(self) -> dict[str, int]:
        return {
            "available": self.available,
            "reserved": self.reserved,
            "booked": self.booked,
            "total": self.total,
        }


def is_sold_out(inventory: Inventory) -> bool:
    """Nothing to sell and nothing that could come back: held seats return when a hold
    expires or is released, booked ones do not."""
    return inventory.available == 0 and inventory.reserved == 0


@dataclass(frozen=True, slots=True)
class BookingHealth:
    """The booking path as the waiting room sees it; None is "not measured"."""

    backlog: int | None  # commands waiting in the booking queues
    reserve_latency_ms: float | None  # average reserve time at the front door, lately


# Auto mode is additive increase, multiplicative decrease (as TCP congestion control):
# while the booking path is comfortable the rate climbs by a tenth of the ceiling per step
# (a step a second: the ceiling in ten seconds from nothing); when it is overloaded the
# rate halves. It never exceeds the operator's admit_per_minute.
AUTO_STEP_FRACTION = 0.1
AUTO_START_FRACTION = 0.25
AUTO_MIN_PER_MINUTE = 6.0
# Admit at most this many fans per minute per seat not yet spoken for by an active fan.
AUTO_PER_SPARE_SEAT = 6.0


def auto_start_rate(ceiling: int) -> float:
    return max(min(float(ceiling), AUTO_MIN_PER_MINUTE), ceiling * AUTO_START_FRACTION)


def next_auto_rate(
    current: float,
    ceiling: int,
    health: BookingHealth,
    inventory: Inventory | None,
    active: int,
    max_backlog: int,
    max_latency_ms: float,
) -> float:
    """Auto mode's next admission rate (per minute)."""
    if ceiling <= 0:
        return 0.0
    floor = min(float(ceiling), AUTO_MIN_PER_MINUTE)
    backlog, latency = health.backlog, health.reserve_latency_ms
    overloaded = (backlog is not None and backlog > max_backlog) or (
        latency is not None and latency > max_latency_ms
    )
    comfortable = (backlog is None or backlog <= max_backlog / 2) and (
        latency is None or latency <= max_latency_ms / 2
    )
    rate = max(current, floor)
    if overloaded:
        rate = max(floor, current / 2)
    elif comfortable:
        rate = min(float(ceiling), rate + ceiling * AUTO_STEP_FRACTION)
    rate = min(rate, float(ceiling))
    if inventory is not None:
        # Fans already admitted will take at least a seat each: admitting more than the
        # seats left only makes people wait on a page that then says sold out.
        spare = inventory.available - active
        rate = 0.0 if spare <= 0 else min(rate, spare * AUTO_PER_SPARE_SEAT)
    return rate
