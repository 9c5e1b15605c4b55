"""Connecting to RabbitMQ: one node, or any node of a cluster.

``TICKETING_AMQP_URL`` names one node, or a cluster's nodes separated by spaces (the same
login and vhost on each). A connection goes to the first node that answers, trying them
from a random one on: the processes of a deployment spread over the nodes, and when a node
dies, each connection that was on it comes back on a survivor at its next attempt (the
services' own loops reconnect with backoff: ticketing.consumer_runtime, the front door's
RPC client, search_sync's relay). With quorum queues (``TICKETING_AMQP_QUEUE_TYPE``) every
node serves every queue, wherever its leader is.
"""

from __future__ import annotations

import random
from urllib.parse import urlsplit

import aio_pika
from aio_pika.abc import AbstractConnection
from aio_pika.exceptions import AMQPConnectionError


def nodes(amqp_url: str) -> list[str]:
    """The URLs of ``TICKETING_AMQP_URL``, in the order given."""
    return amqp_url.split()


# A node as the health watch names it (ticketing.amqp_health): host and AMQP port.
Address = tuple[str, int]


def address(url: str) -> Address:
    """The host and port of one node's URL (AMQP's own ports when it names none)."""
    parts = urlsplit(url)
    default = 5671 if parts.scheme == "amqps" else 5672
    return parts.hostname or "localhost", parts.port or default


def node_of(connection: AbstractConnection) -> Address:
    """The node ``connection`` (as :func:`connect` opens it) is on."""
    if not isinstance(connection, aio_pika.Connection):
        raise TypeError(f"not an aio-pika connection: {connection!r}")
    return address(str(connection.url))


def attempt_order(urls: list[str], start: int) -> list[str]:
    """Every URL once, from ``start`` on, wrapping around."""
    return [urls[(start + i) % len(urls)] for i in range(len(urls))]


async def connect(amqp_url: str, timeout: float) -> AbstractConnection:  # noqa: ASYNC109 - per node
    """A connection to the first node that answers, each given ``timeout`` seconds; the
    last node's error when none does."""
    urls = nodes(amqp_url)
    if not urls:
        raise ValueError("no RabbitMQ URL")
    failure: BaseException = ConnectionError("no node tried")
    for url in attempt_order(urls, random.randrange(len(urls))):  # noqa: S311 - spread, no secret
        try:
            # A plain connection, not a robust one: the caller's loop replaces it when lost.
            connection = await aio_pika.connect(url, timeout=timeout)
        except (OSError, TimeoutError, AMQPConnectionError) as exc:
            failure = exc
            continue
        return connection
    raise failure
