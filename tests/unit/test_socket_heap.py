"""When the waitingroom freezes its heap (waitingroom/socket_heap.py): as the sockets grow
by a quarter, and a full collection only when they shrink by a quarter."""

from __future__ import annotations

from waitingroom.socket_heap import SocketHeap


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


def test_the_heap_is_frozen_as_sockets_grow_and_collected_when_they_shrink() -> None:
    collector = FakeCollector()
    heap = SocketHeap(collector)
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
    heap.sockets_open(7400)  # shrank by more than a quarter: collect, freeze what is left
    assert collector.calls == ["unfreeze", "collect2", "freeze"] and heap.frozen_at == 7400
    collector.calls.clear()
    heap.sockets_open(200)
    assert collector.calls == ["unfreeze", "collect2"] and heap.frozen_at == 0
