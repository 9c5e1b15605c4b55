"""When the waitingroom freezes its heap (waitingroom/queue/socket_heap.py): as the sockets grow
by a quarter, and a full collection only when they shrink by a quarter."""

from __future__ import annotations

from waitingroom.queue.socket_heap import MOST_DEFERRED_SECONDS, QUIET_SECONDS, SocketHeap


class FakeCollector:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def collect(self, generation: int = 2) -> int:
        self.calls.append(f"collect{generation}")
        return 0

    def freeze(self) -> None:
        self.calls.append("freeze")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_heap_is_frozen_as_sockets_grow_and_collected_when_they_shrink() -> None:
    collector, clock = FakeCollector(), FakeClock()
    heap = SocketHeap(collector, clock)
    for count in (10, 500, 999):
        heap.sockets_open(count)
    assert collector.calls == []  # a small heap: nothing to do
    heap.sockets_open(1000)
    assert collector.calls == ["collect1", "freeze"]
    for count in (1100, 1249, 800):
        heap.sockets_open(count)
    assert collector.calls == ["collect1", "freeze"]  # within a quarter either way
    heap.sockets_open(1250)
    heap.sockets_open(10_000)
    assert collector.calls[2:] == ["collect1", "freeze", "collect1", "freeze"]
    collector.calls.clear()
    heap.sockets_open(7600)
    assert collector.calls == []
    clock.now += QUIET_SECONDS
    heap.sockets_open(7400)  # shrank by more than a quarter: collected once it is quiet
    assert collector.calls == []
    clock.now += QUIET_SECONDS
    heap.sockets_open(7400)
    assert collector.calls == ["unfreeze", "collect2", "freeze"] and heap.frozen_at == 7400
    collector.calls.clear()
    heap.sockets_open(200)
    clock.now += QUIET_SECONDS
    heap.sockets_open(200)
    assert collector.calls == ["unfreeze", "collect2"] and heap.frozen_at == 0


def test_no_collection_while_the_sockets_are_still_closing() -> None:
    """A sell-out: every fan is told at once and closes. The heap is collected once, after
    the wave, not at each quarter of it while fans are still being told."""
    collector, clock = FakeCollector(), FakeClock()
    heap = SocketHeap(collector, clock)
    heap.sockets_open(10_000)
    collector.calls.clear()
    for count in range(9_500, 0, -500):  # falling every half second
        clock.now += 0.5
        heap.sockets_open(count)
    assert collector.calls == []
    for _ in range(int(QUIET_SECONDS / 0.5)):
        clock.now += 0.5
        heap.sockets_open(500)
    assert collector.calls == ["unfreeze", "collect2"]


def test_fans_trickling_out_without_end_still_get_a_collection_within_a_minute() -> None:
    collector, clock = FakeCollector(), FakeClock()
    heap = SocketHeap(collector, clock)
    heap.sockets_open(10_000)
    collector.calls.clear()
    heap.sockets_open(7_000)  # due now, but sockets are closing
    count = 7_000
    while clock.now < 1000.0 + MOST_DEFERRED_SECONDS - 1:
        clock.now += 1.0
        count -= 10
        heap.sockets_open(count)
    assert collector.calls == []
    clock.now += 1.0
    heap.sockets_open(count - 10)
    assert collector.calls == ["unfreeze", "collect2", "freeze"]
