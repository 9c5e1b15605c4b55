"""This process's queue websockets, by event: each event's room holds its fans' sockets,
by user and in keepalive slices (see :mod:`waitingroom.queue.hub_rounds`), and the state
of its push loop and its broadcasts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from waitingroom.queue.fan import Fan
from waitingroom.queue.metrics import OPEN_SOCKETS


@dataclass(eq=False)
class Room:
    """One event's sockets in this process, and its push loop's state."""

    by_user: dict[str, set[Fan]]
    slices: list[set[Fan]]
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # a queue-wide change
    loop: asyncio.Task[None] | None = None
    presence: asyncio.Task[None] | None = None  # counts its fans as seen (abandonment)
    broadcast: asyncio.Task[None] | None = None  # the latest queue-wide message being told
    broadcast_kind: str = ""  # ... and what it tells
    status_pending: bool = False  # a status to everyone is waiting to start

    def fans(self) -> list[Fan]:
        return [fan for fans in self.slices for fan in fans]


class Rooms:
    def __init__(self, slices: int) -> None:
        self.slices = slices
        self._rooms: dict[int, Room] = {}

    def get(self, event_id: int) -> Room | None:
        return self._rooms.get(event_id)

    def all(self) -> list[Room]:
        return list(self._rooms.values())

    def add(self, fan: Fan) -> Room:
        """Put the fan's socket in its event's room, in the emptiest keepalive slice (so
        the slices stay even)."""
        event_id = fan.event.event_id
        room = self._rooms.get(event_id)
        if room is None:
            room = self._rooms[event_id] = Room({}, [set() for _ in range(self.slices)])
        room.by_user.setdefault(fan.user_id, set()).add(fan)
        fan.turn = min(range(self.slices), key=lambda n: len(room.slices[n]))
        room.slices[fan.turn].add(fan)
        OPEN_SOCKETS.inc()
        return room

    def remove(self, fan: Fan) -> None:
        room = self._rooms.get(fan.event.event_id)
        fans = None if room is None else room.by_user.get(fan.user_id)
        if room is None or fans is None or fan not in fans:
            return
        fans.discard(fan)
        room.slices[fan.turn].discard(fan)
        OPEN_SOCKETS.dec()
        if not fans:
            del room.by_user[fan.user_id]

    def gone_if_empty(self, event_id: int, room: Room) -> bool:
        """Whether the room has no socket left, in which case it is gone: a socket added
        from now on opens a new room (and push loop). No await between the two."""
        if room.by_user:
            return False
        if self._rooms.get(event_id) is room:
            del self._rooms[event_id]
        return True

    def count(self) -> int:
        return sum(len(fans) for room in self._rooms.values() for fans in room.slices)
