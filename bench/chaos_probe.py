"""The chaos run's light probes through the gateway, each in a thread of its own, about
twice a second, whatever the fans are doing:

- ``search``: ``GET /search?term=...`` (a 200 with ``X-Search-Degraded`` is the PostgreSQL
  fallback answering while Typesense is away: an answer, counted apart);
- ``view``: ``GET /events/{id}`` of the on-sale's event (``X-Served-From`` noted);
- ``probe_join``: ``POST /queue/{id}/join`` of another queue-enabled event, in its pre-queue,
  by a few probe fans in turn (the on-sale's fans join in its first seconds only, so a join
  after a fault needs fans of its own; these never reach the on-sale's queue);
- ``probe_status``: ``GET /queue/{id}/status`` of the same event by the same fans in turn
  (the waiting room's own processes; 404 when the queue lost them is an answer).

Each answer is kept as (wall clock at its end, route, status, note): status 0 when none
came within the timeout.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from ticketing.auth import issue_dev_token
from ticketing.config import Settings

PROBE_FANS = 8  # joins spread over them stay far below the per-fan queue limit
TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class Answer:
    at: float
    route: str
    status: int
    note: str = ""  # "degraded" (search), the view's X-Served-From
    sent: float = 0.0  # wall clock of the request


def fetch(
    method: str, url: str, token: str | None = None, timeout: float = TIMEOUT_SECONDS
) -> tuple[int, dict[str, str]]:
    """(status, headers) of one request; (0, {}) when no answer came."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            resp.read()
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code, dict(exc.headers)
    except (OSError, TimeoutError):
        return 0, {}


@dataclass
class Probes:
    settings: Settings
    gateway: str
    event_id: int  # the on-sale's event (viewed)
    join_event_id: int  # another queue-enabled event (joined)
    term: str = "on-sale"
    interval: float = 0.5
    answers: list[Answer] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Probes:
        tokens = [
            issue_dev_token(self.settings, f"chaos-probe-{i}", [])["access_token"]
            for i in range(PROBE_FANS)
        ]
        turn = iter(range(1 << 62))

        def search() -> Answer:
            status, headers = fetch("GET", f"{self.gateway}/search?term={self.term}&per_page=1")
            degraded = any(k.lower() == "x-search-degraded" for k in headers)
            return Answer(time.time(), "search", status, "degraded" if degraded else "")

        def view() -> Answer:
            status, headers = fetch("GET", f"{self.gateway}/events/{self.event_id}")
            served = next((v for k, v in headers.items() if k.lower() == "x-served-from"), "")
            return Answer(time.time(), "view", status, served)

        def join() -> Answer:
            token = tokens[next(turn) % len(tokens)]
            url = f"{self.gateway}/queue/{self.join_event_id}/join"
            status, _ = fetch("POST", url, token)
            return Answer(time.time(), "probe_join", status)

        def status() -> Answer:
            token = tokens[next(turn) % len(tokens)]
            code, _ = fetch("GET", f"{self.gateway}/queue/{self.join_event_id}/status", token)
            return Answer(time.time(), "probe_status", code)

        for probe in (search, view, join, status):
            thread = threading.Thread(target=self._loop, args=(probe,), daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def _loop(self, probe: Callable[[], Answer]) -> None:
        while not self.stopping.is_set():
            began, sent = time.monotonic(), time.time()
            self.answers.append(dataclasses.replace(probe(), sent=sent))
            self.stopping.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def stop(self) -> list[Answer]:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=TIMEOUT_SECONDS + 2)
        return sorted(self.answers, key=lambda a: a.at)
