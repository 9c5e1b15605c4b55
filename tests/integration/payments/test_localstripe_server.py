"""deploy/localstripe_server.py as a real process: its state survives a restart and a kill,
a broken state file does not stop it, the file is not rewritten per request, and the
simulated provider latency delays each call without serialising them."""

from __future__ import annotations

import asyncio
import os
import pickle
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.integration.payments.localstripe import AUTH, Emulator, Emulators
from tests.support import wait_until


@pytest.fixture
def emulators(tmp_path: Path) -> Iterator[Emulators]:
    """Whatever a test left running is stopped at its end."""
    started = Emulators(tmp_path)
    yield started
    for emulator in started:
        if emulator.process is not None:
            emulator.process.kill()
            emulator.process.wait(timeout=10)


def test_a_payment_intent_survives_a_restart(tmp_path: Path, emulators: Emulators) -> None:
    state = tmp_path / "run" / "localstripe" / "state.pickle"  # directories made by it
    first = emulators.launch(state)
    intent = first.pay("attempt-1")
    assert not state.exists(), "written before the snapshot interval or shutdown"
    first.stop()  # SIGTERM: the shutdown snapshot

    second = emulators.launch(state)
    status, again = second.call("GET", f"/v1/payment_intents/{intent['id']}")
    assert status == 200
    assert (again["status"], again["metadata"]) == ("succeeded", {"attempt_id": "attempt-1"})
    second.stop()

    # Control: the same file, ignored, is not where the intent came from by accident.
    fresh = emulators.launch(state, from_scratch=True)
    assert fresh.call("GET", f"/v1/payment_intents/{intent['id']}")[0] == 404
    fresh.stop()


def test_a_periodic_snapshot_survives_a_kill(tmp_path: Path, emulators: Emulators) -> None:
    state = tmp_path / "state.pickle"
    first = emulators.launch(state, snapshot_seconds=0.2)
    intent = first.pay("attempt-killed")
    wait_until(state.exists, 5, "a snapshot after the change")
    first.kill()

    second = emulators.launch(state)
    status, again = second.call("GET", f"/v1/payment_intents/{intent['id']}")
    assert (status, again.get("status")) == (200, "succeeded")


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real state file's bytes: one PaymentIntent."""
    directory = tmp_path_factory.mktemp("snapshot")
    emulator = Emulator(directory / "state.pickle", directory)
    emulator.start()
    try:
        emulator.pay("attempt-snapshot")
    finally:
        emulator.stop()
    return (directory / "state.pickle").read_bytes()


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(lambda good: b"", id="empty"),
        pytest.param(lambda good: good[: len(good) // 2], id="truncated"),
        pytest.param(lambda good: b"\x80\x05garbage, not a pickle" * 3, id="garbage"),
        pytest.param(lambda good: pickle.dumps(["not", "a", "store"]), id="wrong-type"),
    ],
)
def test_an_unreadable_state_file_does_not_stop_the_start(
    tmp_path: Path, emulators: Emulators, snapshot: bytes, broken
) -> None:
    state = tmp_path / "state.pickle"
    bad = broken(snapshot)
    state.write_bytes(bad)

    emulator = emulators.launch(state)
    assert emulator.call("GET", "/v1/payment_intents")[1]["data"] == []
    emulator.pay("after-the-broken-file")  # and it serves
    [aside] = tmp_path.glob("state.pickle.corrupt-*")
    assert aside.read_bytes() == bad, "the broken file is kept for a look, not deleted"
    assert "unreadable" in emulator.log.read_text()
    emulator.stop()
    assert pickle.loads(state.read_bytes()), "a good snapshot replaced it"  # noqa: S301 - our own file


def test_the_state_file_is_not_rewritten_per_request(tmp_path: Path, emulators: Emulators) -> None:
    state = tmp_path / "state.pickle"
    interval = 1.0
    emulator = emulators.launch(state, snapshot_seconds=interval)
    emulator.pay("first")
    wait_until(state.exists, 5, "the first snapshot")

    versions = set()
    started = time.monotonic()
    for n in range(60):
        emulator.pay(f"burst-{n}")
        info = os.stat(state)
        versions.add((info.st_ino, info.st_mtime_ns))
    elapsed = time.monotonic() - started
    # A snapshot a tick at most (one more for the tick the burst started in), never one a
    # request: localstripe as shipped rewrote the file several times for each of these.
    assert len(versions) <= elapsed / interval + 2, (len(versions), elapsed)
    assert len(versions) < 30

    # Control: the changes do reach the file, by the next tick.
    def rewritten() -> bool:
        info = os.stat(state)
        return (info.st_ino, info.st_mtime_ns) not in versions

    wait_until(rewritten, 5, "the snapshot after the burst")
    listed = emulator.call("GET", "/v1/payment_intents?limit=100")[1]["data"]
    assert len(listed) == 61


async def timed_calls(url: str, count: int) -> tuple[float, list[float]]:
    """(wall time, each call's time) of ``count`` GETs sent at once."""
    async with aiohttp.ClientSession(headers=AUTH) as session:

        async def one() -> float:
            started = time.monotonic()
            async with session.get(url + "/v1/payment_intents?limit=1") as resp:
                assert resp.status == 200
                await resp.read()
            return time.monotonic() - started

        started = time.monotonic()
        each = await asyncio.gather(*(one() for _ in range(count)))
        return time.monotonic() - started, list(each)


async def test_latency_delays_each_call_but_calls_wait_side_by_side(
    tmp_path: Path, emulators: Emulators
) -> None:
    latency, parallel = 0.3, 16
    slow = await asyncio.to_thread(
        emulators.launch, tmp_path / "slow" / "state.pickle", latency_ms=int(latency * 1000)
    )
    quick = await asyncio.to_thread(emulators.launch, tmp_path / "quick" / "state.pickle")

    _, [alone] = await timed_calls(slow.url, 1)
    assert alone >= latency * 0.8
    wall, each = await timed_calls(slow.url, parallel)
    assert min(each) >= latency * 0.8
    assert wall < 3 * latency * 1.2, f"{parallel} calls took {wall:.2f}s: served one by one"
    assert max(each) - min(each) > 0.02, "no jitter"

    # Control: without the setting, the same call does not wait.
    _, [undelayed] = await timed_calls(quick.url, 1)
    assert undelayed < latency * 0.8
