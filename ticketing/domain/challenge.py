"""The proof of work at the queue's door, as rules with no I/O: what a difficulty costs a
fan, which difficulty is in force, and how the automatic mode moves it.

A challenge is ALTCHA's proof of work v2 in its deterministic form: the waitingroom picks
a counter below the difficulty's bound and publishes the key PBKDF2 derives from it; the
fan's browser tries counters from 0 up until it finds that key. The bound plays the part
of ALTCHA v1's ``maxnumber``: a fan does half of it on average, all of it at worst.

The scale (documented in the README): difficulty ``d`` in 1..10 bounds the counter at
``1,250 x 2^(d-1)``, each try one PBKDF2-SHA-256 of 1,000 iterations: about 0.3 ms of one
core in native code (hashlib), and in headless Chromium on this project's 2-core machine
about 3,000 tries a second with the widget's two workers (difficulty 4's six fans took
1.4-4.0 s for 4,463-8,278 tries): a bot's core does a try in about half the time a
browser's worker does, no more. Difficulty 3 (at most 5,000 tries: about 1.7 s at worst at
that speed, and about 0.8 s of one core on average for each bot account's join) is the
level operators are advised to start at. Each step doubles the work; 0 turns it off.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_DIFFICULTY = 10
RECOMMENDED_DIFFICULTY = 3
# PBKDF2 iterations per try: high enough that a try costs native code about what it costs
# a browser's WebCrypto call, low enough that issuing a challenge (one derivation) stays
# well under a millisecond of the waitingroom's CPU.
ITERATIONS = 1_000
_BASE_TRIES = 1_250

# The automatic mode looks at the last window and moves one step at a time.
AUTO_WINDOW_SECONDS = 10


def max_tries(difficulty: int) -> int:
    """The counter's bound at ``difficulty`` (ALTCHA v1's maxnumber); 0 when off."""
    if difficulty <= 0:
        return 0
    return int(_BASE_TRIES << (min(difficulty, MAX_DIFFICULTY) - 1))


def effective_difficulty(set_by_operator: int, auto: bool, auto_level: int) -> int:
    """The difficulty in force: the operator's, raised by the automatic mode's level while
    it is on (never lowered below what the operator set)."""
    if not auto:
        return set_by_operator
    return max(set_by_operator, min(auto_level, MAX_DIFFICULTY))


@dataclass(frozen=True, slots=True)
class DoorWindow:
    """What the door saw over the last window: joins that came, and solutions that failed
    (wrong, reused, expired, another fan's or event's)."""

    seconds: int
    joins: int
    failed: int

    @property
    def joins_per_second(self) -> float:
        return self.joins / self.seconds if self.seconds > 0 else 0.0

    @property
    def failed_per_second(self) -> float:
        return self.failed / self.seconds if self.seconds > 0 else 0.0


def next_auto_level(
    level: int,
    set_by_operator: int,
    window: DoorWindow,
    max_joins_per_second: float,
    max_failed_per_second: float,
    *,
    ceiling: int = MAX_DIFFICULTY,
) -> int:
    """The automatic mode's next level: one step up (from at least the operator's level)
    while joins per second or failed solutions per second are over their thresholds, one
    step down towards the operator's level while both are calm. It rises no higher than
    ``ceiling`` (every fan pays each step, honest ones too), which never lowers the
    operator's own level; a level above a lowered ceiling comes down to it at once."""
    top = max(set_by_operator, min(ceiling, MAX_DIFFICULTY))
    current = min(max(level, set_by_operator), top)
    spiking = (
        window.joins_per_second > max_joins_per_second
        or window.failed_per_second > max_failed_per_second
    )
    if spiking:
        return min(top, current + 1)
    return max(set_by_operator, current - 1)
