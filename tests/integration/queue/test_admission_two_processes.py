"""Two real ``python -m waitingroom`` processes admitting from one queue: nobody admitted
twice, max_active and the set rate kept between them (not each), and the rate held for a
full minute (slow)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from itertools import pairwise

import aiohttp
import pytest

from tests.integration.queue.support import ROOMY, WaitingroomProcesses, queue_event
from tests.support import auth_header, eventually
from ticketing.domain.seating import Section


@contextlib.asynccontextmanager
async def running_waitingrooms(
    settings, count: int, **env: str
) -> AsyncIterator[tuple[aiohttp.ClientSession, list[str]]]:
    """``count`` real ``python -m waitingroom`` processes, up; each must exit cleanly."""
    processes = WaitingroomProcesses(settings, **env)
    processes.start(count)
    try:
        async with aiohttp.ClientSession() as http:
            bases = [f"http://127.0.0.1:{port}" for port in processes.ports]

            async def up() -> bool:
                try:
                    for base in bases:
                        async with http.get(base + "/healthz") as resp:
                            if resp.status != 200:
                                return False
                    return True
                except aiohttp.ClientError:
                    return False

            await eventually(up, bool, 30, f"{count} waitingroom processes")
            yield http, bases
    finally:
        codes = await processes.stop()
    assert codes == [0] * count


async def admissions_by_process(
    http: aiohttp.ClientSession, bases: list[str], event: int
) -> list[float]:
    """What each process's admissions counter says for the event."""
    pattern = rf'ticketing_queue_admissions_total\{{event_id="{event}"\}} ([0-9.e+]+)'
    counts = []
    for base in bases:
        async with http.get(base + "/metrics") as resp:
            found = re.search(pattern, await resp.text())
        counts.append(float(found.group(1)) if found else 0.0)
    return counts


async def test_two_admitter_processes_never_admit_anyone_twice(queue_settings, pool) -> None:
    """Two real ``python -m waitingroom`` processes share one queue: together they keep to
    the rate and max_active, every admission is counted once, and both took part."""
    event = await queue_event(pool, ROOMY)
    async with running_waitingrooms(
        queue_settings,
        2,
        TICKETING_QUEUE_ADMIT_PER_MINUTE="600",
        TICKETING_QUEUE_MAX_ACTIVE="60",
    ) as (http, bases):
        admin = auth_header(queue_settings, "ops", ["admin"])

        async def figures() -> dict:
            async with http.get(f"{bases[1]}/admin/queues/{event}", headers=admin) as resp:
                return await resp.json()

        async with http.patch(
            f"{bases[0]}/admin/queues/{event}", headers=admin, json={"paused": True}
        ) as resp:
            assert resp.status == 200
        users = [f"two-{i}" for i in range(100)]
        for i, user in enumerate(users):  # fans spread over both processes
            async with http.post(
                f"{bases[i % 2]}/queue/{event}/join", headers=auth_header(queue_settings, user)
            ) as resp:
                assert resp.status == 200
        await eventually(figures, lambda f: f.get("waiting") == 100, 10, "every join")
        async with http.patch(
            f"{bases[1]}/admin/queues/{event}", headers=admin, json={"paused": False}
        ) as resp:
            assert resp.status == 200
        first = await eventually(figures, lambda f: f["admitted_total"] >= 5, 10, "admission")
        started = time.monotonic()
        await asyncio.sleep(3)  # the measurement window
        window = await figures()
        elapsed = time.monotonic() - started
        # 10 a second between them, not 10 each
        per_second = (window["admitted_total"] - first["admitted_total"]) / elapsed
        assert 7 <= per_second <= 13, per_second
        done = await eventually(
            figures, lambda f: f["admitted_total"] >= 60, 15, "max_active reached"
        )
        assert (done["admitted_total"], done["active"], done["waiting"]) == (60, 60, 40)
        by_process = await admissions_by_process(http, bases, event)
        assert sum(by_process) == 60 and min(by_process) > 0, by_process


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_two_admitter_processes_keep_the_set_rate_for_a_full_minute(
    queue_settings, pool
) -> None:
    """600 a minute for a whole minute, from two real processes sharing the queue, with
    fans waiting throughout: 600 admissions, within 10%, and the same measured."""
    event = await queue_event(pool, [Section("Field", 20, 100, 3000)])  # 2,000 seats
    async with running_waitingrooms(queue_settings, 2, TICKETING_QUEUE_MAX_ACTIVE="10000") as (
        http,
        bases,
    ):
        admin = auth_header(queue_settings, "ops", ["admin"])

        async def figures() -> dict:
            async with http.get(f"{bases[0]}/admin/queues/{event}", headers=admin) as resp:
                assert resp.status == 200
                return await resp.json()

        async def patch(**fields) -> None:
            async with http.patch(
                f"{bases[1]}/admin/queues/{event}", headers=admin, json=fields
            ) as resp:
                assert resp.status == 200

        async def join_at(i: int) -> int:
            headers = auth_header(queue_settings, f"minute-{i}")
            async with http.post(f"{bases[i % 2]}/queue/{event}/join", headers=headers) as r:
                return r.status

        await patch(paused=True)
        # More fans than a minute at 10% over can admit: the line never runs dry, so
        # the rate alone decides how many go in.
        fans = 750
        for start in range(0, fans, 50):
            statuses = await asyncio.gather(*map(join_at, range(start, min(start + 50, fans))))
            assert set(statuses) == {200}
        await eventually(figures, lambda f: f["waiting"] == fans, 10, "every join")
        await patch(paused=False, admit_per_minute=600)
        first = await eventually(figures, lambda f: f["admitted_total"] >= 5, 10, "admission")
        started = time.monotonic()
        samples = []
        while time.monotonic() - started < 60:  # the measurement window: a full minute
            await asyncio.sleep(5)
            samples.append(await figures())
        last = samples[-1]
        elapsed = time.monotonic() - started
        admitted = last["admitted_total"] - first["admitted_total"]
        assert last["waiting"] > 0, "the line ran dry: the rate was not what limited it"
        assert 540 <= admitted * 60 / elapsed <= 660, (admitted, elapsed)
        assert 540 <= last["measured_admit_per_minute"] <= 660, last
        # steady, not a burst and a stall: every 5 s about 50 more
        steps = [b["admitted_total"] - a["admitted_total"] for a, b in pairwise(samples)]
        assert all(35 <= step <= 65 for step in steps), steps
        assert min(await admissions_by_process(http, bases, event)) > 0  # both took part
