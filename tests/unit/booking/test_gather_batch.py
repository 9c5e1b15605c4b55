"""gather_batch takes the first item the moment it arrives (it used to look every 0.2 s,
which set the booking path's pace under load)."""

from __future__ import annotations

import asyncio

from ticketing.lifecycle import gather_batch


async def test_the_first_item_is_taken_as_it_arrives() -> None:
    buffer: asyncio.Queue[int] = asyncio.Queue()
    stop, lost = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(gather_batch(buffer, stop, lost, 10, 0))
    for _ in range(5):
        await asyncio.sleep(0)  # the gatherer is now waiting on an empty buffer
    buffer.put_nowait(1)
    for _ in range(50):  # turns of the loop, microseconds: no 0.2 s look fits in them
        await asyncio.sleep(0)
    assert task.done(), "the item sat in the buffer"
    assert task.result() == [1]


async def test_stop_ends_the_wait_and_leaves_the_buffer_alone() -> None:
    buffer: asyncio.Queue[int] = asyncio.Queue()
    stop, lost = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(gather_batch(buffer, stop, lost, 10, 0))
    await asyncio.sleep(0)
    stop.set()
    assert await asyncio.wait_for(task, 1) == []
    buffer.put_nowait(2)
    assert buffer.get_nowait() == 2  # no cancelled getter swallowed it


async def test_items_count_by_size_up_to_the_most() -> None:
    buffer: asyncio.Queue[int] = asyncio.Queue()
    for n in (3, 4, 5, 6):
        buffer.put_nowait(n)
    batch = await gather_batch(buffer, asyncio.Event(), asyncio.Event(), 8, 0, size=lambda n: n)
    assert batch == [3, 4, 5]  # 3 + 4 < 8, the 5 overshoots and ends it
    assert buffer.get_nowait() == 6
