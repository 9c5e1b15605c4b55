"""RabbitMQ's entry in ``/healthz``: the service's own connection, and which of the
configured nodes take connections.

``"rabbitmq": {"status": "ok", "mode": "cluster", "nodes": 3, "healthy": 2}``: ``nodes``
is how many ``TICKETING_AMQP_URL`` names (``single`` for one), ``healthy`` how many answer.
The connection being open is what makes it ok; without one the check raises and the
component reads ``down: NotConnected``.

A health probe never waits on a node: a background task asks the other nodes every
:data:`PROBE_INTERVAL_SECONDS`, all at once, each for at most the health timeout, and the
check reads what the last round found. The node the connection is on is not asked: the
open connection says it is up. A count may lag a node's loss or return by one interval.

The ask is a TCP connection to the node's AMQP port, closed at once. RabbitMQ opens that
port once it serves and closes it when it stops serving (stopped, paused as a minority,
still booting), and says nothing in its log about it. The AMQP protocol header
(``deploy.probe``'s ask) would also catch a frozen node, but RabbitMQ 3.10 logs an info
and a warning line for every such connection closed after its ``connection.start``:
every process asking every few seconds would bury the brokers' logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection

from aiohttp import web

from ticketing.amqp_connect import Address, address, nodes
from ticketing.lifecycle import wait_any
from ticketing.web import DEPENDENCY_TIMEOUT_SECONDS, EngineState

log = logging.getLogger(__name__)

PROBE_INTERVAL_SECONDS = 5.0


class NotConnected(ConnectionError):
    """The service's own connection to RabbitMQ is not open."""


def engine_state(
    configured: Collection[Address], answering: Collection[Address], connected: Address | None
) -> EngineState:
    """RabbitMQ's state as ``/healthz`` names it: ``connected``, the node this service's
    connection is on, counts as healthy with the nodes that last ``answering`` the probe."""
    if connected is None:
        raise NotConnected("no open connection to RabbitMQ")
    up = {connected, *answering}
    mode = "single" if len(configured) == 1 else "cluster"
    return EngineState(mode, nodes=len(configured), healthy=sum(n in up for n in configured))


async def accepts_connections(node: Address, timeout: float) -> bool:  # noqa: ASYNC109 - the probe's bound
    """Whether ``node`` takes a TCP connection on its AMQP port within ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(*node)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    except (OSError, TimeoutError):
        return False
    return True


class NodeWatch:
    """The nodes of ``amqp_url`` that take connections, asked in the background; and
    ``connected``, the node the service's own connection is on (None while it has none)."""

    def __init__(
        self,
        amqp_url: str,
        connected: Callable[[], Address | None],
        timeout: float = DEPENDENCY_TIMEOUT_SECONDS,
    ) -> None:
        self.nodes = [address(url) for url in nodes(amqp_url)]
        self._connected = connected
        self._timeout = min(timeout, DEPENDENCY_TIMEOUT_SECONDS)
        self.answering: frozenset[Address] = frozenset()
        self._silent: list[Address] = []
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        # One node: its connection says all there is, nothing to ask.
        if len(self.nodes) > 1:
            self._task = asyncio.create_task(self._watch())

    async def close(self) -> None:
        self._closing.set()
        if self._task is not None:
            await self._task

    def state(self) -> EngineState:
        """Without waiting: raises :class:`NotConnected` when the connection is down."""
        return engine_state(self.nodes, self.answering, self._connected())

    async def probe_round(self) -> None:
        """Ask every node but the connected one, at once; remember which answered."""
        connected = self._connected()
        asked = [node for node in self.nodes if node != connected]
        answers = await asyncio.gather(
            *(accepts_connections(node, self._timeout) for node in asked)
        )
        self.answering = frozenset(node for node, up in zip(asked, answers, strict=True) if up)
        silent = sorted(set(asked) - self.answering)
        if silent != self._silent:  # a change, not every round
            if silent:
                log.warning("rabbitmq nodes not answering: %s", silent)
            else:
                log.info("rabbitmq nodes all answering again")
        self._silent = silent

    async def _watch(self) -> None:
        while not self._closing.is_set():
            try:
                await self.probe_round()
            except Exception:  # a bug here must not freeze the counts unnoticed
                log.exception("rabbitmq node probe failed")
                self.answering = frozenset()
            await wait_any(self._closing, seconds=PROBE_INTERVAL_SECONDS)


AMQP_WATCH_KEY = web.AppKey("amqp_watch", NodeWatch)


async def check_rabbitmq(app: web.Application) -> EngineState:
    """A health check (ticketing.web) for a service that keeps a watch at AMQP_WATCH_KEY."""
    return app[AMQP_WATCH_KEY].state()
