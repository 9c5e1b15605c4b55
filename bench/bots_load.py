"""bench/bots.py's load processes: bench/onsale_load.py's fans, and bot actors, at a door
that may ask for proof of work.

    python bench/bots_load.py SPEC.json RESULT.json

The same protocol and the same fans as bench/onsale_load.py (go, done, stop); SPEC
``door`` adds what a join does when it is answered ``403`` with a challenge
(``challenge_required``, ``challenge_failed``): it solves it and joins again with
``{"altcha": ...}``, at most DOOR_ATTEMPTS times.

- ``{"role": "fan", "tries_per_second": R}``: a fan's page solves on the fan's device; the
  fan waits what the tries take at R tries a second (measured in headless Chromium by
  bench/solve_browser.py) and sends a solution minted with the stack's secret, drawn as the
  waitingroom draws its counters (bench/door.py says why: the solving is the phones'
  work, not these two cores').
- ``{"role": "bot", "cpu_budget": B, "cores": C}``: one bot actor, every account of which
  is a fan record of SPEC fans (kind buy, 4 seats, joining at the go, skipping the page:
  no waiting, no device). It solves the challenges the waitingroom issued itself, counter
  by counter in native code (bench/door.solve_within), on C solver threads (its cores;
  the accounts wait their turn for one), and spends at most B CPU seconds per account
  (the thread's own CPU time, counted across the account's challenges); an account whose
  budget runs out gives up (outcome ``failed:join_403``, its record's ``door`` says so).

Each account's record gains ``door``: challenges met, tries, CPU seconds (bots) or device
seconds (fans) and whether it gave up.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.door import device_seconds, minted, solve_within  # noqa: E402
from bench.onsale_load import Fans  # noqa: E402
from ticketing.config import Settings  # noqa: E402
from ticketing.web import use_uvloop  # noqa: E402

DOOR_ATTEMPTS = 4  # joins of one join(): the first, then after each solved challenge


class DoorFans(Fans):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        self.door: dict[str, Any] = spec.get("door") or {}
        self.secret = str(Settings.from_env().queue_ticket_secret)
        self.rng = random.Random(f"{spec['event_id']}-{spec['fans'][0][0] if spec['fans'] else ''}")
        cores = int(self.door.get("cores", 1))
        self.solver = ThreadPoolExecutor(max_workers=cores) if self.is_bot else None

    @property
    def is_bot(self) -> bool:
        return self.door.get("role") == "bot"

    async def request(
        self,
        route: str,
        method: str,
        url: str,
        user: str,
        body: object = None,
        headers: dict[str, str] | None = None,
        *,
        gated: bool = True,
    ) -> tuple[int, dict[str, Any]]:
        if route != "join" or not self.door:
            return await super().request(route, method, url, user, body, headers, gated=gated)
        payload: str | None = None
        for attempt in range(DOOR_ATTEMPTS):
            sent = body if payload is None else {**(body or {}), "altcha": payload}  # type: ignore[dict-item]
            status, answer = await super().request(route, method, url, user, sent, headers)
            challenge = answer.get("challenge") if status == 403 else None
            if not isinstance(challenge, dict) or attempt == DOOR_ATTEMPTS - 1:
                return status, answer
            payload = await self.solve(user, challenge)
            if payload is None:
                return status, answer
        return status, answer

    async def solve(self, user: str, challenge: dict[str, Any]) -> str | None:
        door = self.records[user].setdefault(
            "door",
            {"challenges": 0, "tries": 0, "cpu_s": 0.0, "device_s": 0.0, "gave_up": False},
        )
        door["challenges"] += 1
        most = int((challenge.get("parameters", {}).get("data") or {}).get("max_tries", 0))
        if not self.is_bot:
            rate = float(self.door["tries_per_second"])
            payload, tries = minted(self.secret, self.event_id, user, most, self.rng, rate)
            door["tries"] += tries
            door["device_s"] += device_seconds(tries, rate)
            await asyncio.sleep(device_seconds(tries, rate))
            return payload
        left = float(self.door["cpu_budget"]) - door["cpu_s"]
        if left <= 0:
            door["gave_up"] = True
            return None
        began = time.time()
        loop = asyncio.get_running_loop()
        solved = await loop.run_in_executor(self.solver, solve_within, challenge, left)
        door["tries"] += solved.tries
        door["cpu_s"] += solved.cpu_seconds
        door["wall_s"] = door.get("wall_s", 0.0) + time.time() - began
        if solved.payload is None:
            door["gave_up"] = True
        return solved.payload


def main() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    spec = json.loads(Path(sys.argv[1]).read_text())
    use_uvloop()
    fans = DoorFans(spec)
    asyncio.run(fans.run())
    if fans.solver is not None:
        fans.solver.shutdown(wait=False, cancel_futures=True)
    Path(sys.argv[2]).write_text(json.dumps(fans.result()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
