"""Natural batching: a lone call leaves at once, calls that arrive meanwhile go together."""

import asyncio

import pytest

from ticketing.coalesce import Coalescer


async def turns() -> None:
    """Let every task that is ready run (a submit, then the sender it starts)."""
    for _ in range(3):
        await asyncio.sleep(0)


class Recorder:
    def __init__(self, fail_batch: int | None = None) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.release = asyncio.Event()
        self.fail_batch = fail_batch

    async def send(self, key: str, items: list[int]) -> list[int | BaseException]:
        self.batches.append((key, items))
        await self.release.wait()
        if len(self.batches) == self.fail_batch:
            raise ConnectionError("redis went away")
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]


async def test_calls_that_arrive_while_one_is_in_flight_go_together_per_key() -> None:
    recorder = Recorder()
    batcher = Coalescer(recorder.send, max_batch=3)
    first = asyncio.create_task(batcher.submit("a", 1))
    await turns()  # the lone call has left
    assert recorder.batches == [("a", [1])]
    rest = [asyncio.create_task(batcher.submit("a", i)) for i in (2, 3, 4, 5)]
    other = asyncio.create_task(batcher.submit("b", 9))
    await turns()
    assert recorder.batches == [("a", [1]), ("b", [9])]  # another key does not wait
    recorder.release.set()
    assert await asyncio.gather(first, *rest, other) == [10, 20, 30, 40, 50, 90]
    assert recorder.batches == [("a", [1]), ("b", [9]), ("a", [2, 3, 4]), ("a", [5])]


async def test_a_failed_call_fails_its_batch_only_and_an_item_can_fail_alone() -> None:
    recorder = Recorder(fail_batch=1)
    batcher = Coalescer(recorder.send)
    doomed = asyncio.create_task(batcher.submit("a", 1))
    await turns()
    later = [asyncio.create_task(batcher.submit("a", i)) for i in (2, -3)]
    recorder.release.set()
    with pytest.raises(ConnectionError):
        await doomed
    assert await later[0] == 20
    with pytest.raises(ValueError, match="bad -3"):
        await later[1]


async def test_a_caller_that_gives_up_does_not_disturb_the_others() -> None:
    recorder = Recorder()
    batcher = Coalescer(recorder.send)
    impatient = asyncio.create_task(batcher.submit("a", 1))
    patient = asyncio.create_task(batcher.submit("a", 2))
    await turns()
    impatient.cancel()
    recorder.release.set()
    assert await patient == 20
    assert impatient.cancelled()
    assert await batcher.submit("a", 3) == 30  # and the key is usable again
