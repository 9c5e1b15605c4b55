"""A minimal circuit breaker: after a dependency fails, skip it for a short cool-down.

Without it every request during an outage would wait for its own connect attempt (up to
the 2 s connect timeout) before falling back; with it only one request per cool-down pays.
"""

from __future__ import annotations

import time


class DependencyDown(Exception):
    """The dependency failed just now, or recently enough that we do not try it again."""

    def __init__(self, dependency: str) -> None:
        super().__init__(f"{dependency} is unavailable")
        self.dependency = dependency


class CircuitBreaker:
    def __init__(self, dependency: str, cooldown_seconds: float) -> None:
        self.dependency = dependency
        self.cooldown_seconds = cooldown_seconds
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def check(self) -> None:
        """Raise :class:`DependencyDown` while the breaker is open."""
        if self.is_open:
            raise DependencyDown(self.dependency)

    def record_failure(self) -> None:
        self._open_until = time.monotonic() + self.cooldown_seconds

    def record_success(self) -> None:
        self._open_until = 0.0
