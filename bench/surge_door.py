"""The surge benchmark's fans at a door that asks for proof of work (``bench/surge.py
--challenge-difficulty N``): bench/surge_load.py's fans, each of whom first fetches a
challenge and joins with a solved one.

    python bench/surge_door.py SPEC.json RESULT.json

Before "ready", unmeasured by the join window: every fan (and warm-up fan) GETs
``/queue/{id}/challenge`` through the gateway (closed loop, SPEC concurrency; counted
apart, as "challenge"), and gets a solved challenge. SPEC ``genuine_solves`` of them solve
the challenge they fetched with the ``altcha`` package's own solver (``altcha.solve_challenge``,
timed: what a try costs native code here); the others' solutions are minted with the
stack's secret (bench/door.py says why: the solving is the fans' phones' work, hours of
these two cores for 20,000 fans, and none of the servers'). The solve is the fan's
device's, before the fan presses "join": it is outside the timed join window. Then the
steps run as bench/surge_load.py's, every join's body ``{"altcha": "<payload>"}``.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import altcha
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import surge_load  # noqa: E402
from bench.door import minted, payload_of  # noqa: E402
from bench.surge_load import Fans  # noqa: E402
from ticketing.config import Settings  # noqa: E402
from ticketing.domain.challenge import max_tries  # noqa: E402


class DoorFans(Fans):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        self.secret = str(Settings.from_env().queue_ticket_secret)
        # Each fan's join body, by access token (the join's headers carry it), encoded
        # before the window: the client shares the cores with what it measures.
        self.bodies: dict[str, bytes] = {}
        self.result["challenge"] = {"statuses": Counter(), "latencies_ms": [], "samples": {}}
        self.result["genuine"] = {"solve_ms": [], "tries": []}

    async def run(self) -> None:
        await self._solve_all()
        await super().run()

    async def _solve_all(self) -> None:
        users = self.spec.get("warmup_fans", []) + self.fans
        fetched: dict[str, dict[str, Any]] = {}
        tally = self.result["challenge"]
        work = iter(users)
        url = f"{self.base}/queue/{self.event_id}/challenge"
        began = time.monotonic()
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=self.spec["request_timeout"]),
        ) as http:

            async def one_loop() -> None:
                for user in work:
                    headers = {"Authorization": "Bearer " + self.tokens[user]}
                    started = time.perf_counter()
                    try:
                        async with http.get(url, headers=headers) as resp:
                            body, status = await resp.read(), resp.status
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        body, status = repr(exc).encode(), 0
                    tally["latencies_ms"].append((time.perf_counter() - started) * 1000)
                    tally["statuses"][status] += 1
                    if status == 200:
                        fetched[user] = json.loads(body)
                    else:
                        tally["samples"].setdefault(status, body[:300].decode())

            await asyncio.gather(*(one_loop() for _ in range(self.spec["concurrency"])))
        tally["seconds"] = time.monotonic() - began
        genuine = set(self.fans[: self.spec.get("genuine_solves", 0)])
        rng = random.Random(self.spec["event_id"])
        most = max_tries(self.spec["challenge_difficulty"])
        for user in users:
            if user in genuine and user in fetched:
                payload = self._genuine(fetched[user])
            else:
                payload, _ = minted(self.secret, self.event_id, user, most, rng)
            self.bodies[self.tokens[user]] = orjson.dumps({"altcha": payload})

    def _genuine(self, challenge: dict[str, Any]) -> str:
        """The fetched challenge solved by the altcha package's solver, timed."""
        started = time.process_time()
        solution = altcha.solve_challenge(altcha.Challenge.from_dict(challenge), timeout=60)
        took = (time.process_time() - started) * 1000
        if solution is None:
            raise SystemExit("surge_door: the altcha solver found no solution in 60 s")
        self.result["genuine"]["solve_ms"].append(took)
        self.result["genuine"]["tries"].append(solution.counter + 1)
        return payload_of(challenge, solution.counter, solution.derived_key, took)

    async def _loop(
        self,
        http: aiohttp.ClientSession,
        work: list[tuple[str | None, str]] | None,
        side: str,
        seconds: float = float("inf"),
    ) -> None:
        if side == "join":
            http = _WithAltcha(http, self.bodies)  # type: ignore[assignment]
        await super()._loop(http, work, side, seconds)


class _WithAltcha:
    """The load loop's session, with each fan's solved challenge in its join's body (the
    fan named by the access token the loop puts in the headers; each body sent once)."""

    def __init__(self, http: aiohttp.ClientSession, bodies: dict[str, bytes]) -> None:
        self.http, self.bodies = http, bodies

    def request(self, method: str, url: str, headers: dict[str, str]) -> Any:
        if method == "POST" and url.endswith("/join"):
            token = headers["Authorization"].removeprefix("Bearer ")
            body = self.bodies.pop(token, None)
            if body is not None:
                sent = {**headers, "Content-Type": "application/json"}
                return self.http.request(method, url, headers=sent, data=body)
        return self.http.request(method, url, headers=headers)


def main() -> int:
    return surge_load.main(DoorFans)


if __name__ == "__main__":
    sys.exit(main())
