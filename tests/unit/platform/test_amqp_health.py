"""RabbitMQ's /healthz entry: its mode and nodes from TICKETING_AMQP_URL, the nodes that
answer, and ok only while the service's own connection is open; a probe round bounded by
its timeout however a node fails, and a check that never waits for one."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from tests.support import free_port
from ticketing.amqp_connect import address
from ticketing.amqp_health import NodeWatch, NotConnected, accepts_connections, engine_state

A, B, C = ("rabbit-0", 5672), ("rabbit-1", 5672), ("rabbit-2", 5672)


def test_one_node_connected_is_single_and_healthy():
    state = engine_state([A], answering=[], connected=A)
    assert state.component() == {"status": "ok", "mode": "single", "nodes": 1, "healthy": 1}


def test_a_cluster_counts_the_connected_node_and_those_that_answered():
    assert engine_state([A, B, C], answering=[B, C], connected=A).component() == {
        "status": "ok",
        "mode": "cluster",
        "nodes": 3,
        "healthy": 3,
    }
    assert engine_state([A, B, C], answering=[C], connected=A).healthy == 2
    # the connected node is healthy whatever the last round said of it
    assert engine_state([A, B, C], answering=[], connected=B).healthy == 1


def test_without_its_connection_the_service_is_down_whoever_answers():
    with pytest.raises(NotConnected):
        engine_state([A, B, C], answering=[A, B, C], connected=None)


@pytest.mark.parametrize(
    ("url", "node"),
    [
        ("amqp://tk:secret@rabbit-0:5701/prod", ("rabbit-0", 5701)),
        ("amqp://guest:guest@127.0.0.1/", ("127.0.0.1", 5672)),
        ("amqps://tk:secret@rabbit.example/prod", ("rabbit.example", 5671)),
        ("amqp://[::1]:5673/", ("::1", 5673)),
    ],
)
def test_a_node_is_its_urls_host_and_port(url, node):
    assert address(url) == node


class Peers:
    """Three ports on this machine: one takes connections as a node's AMQP port does, one
    drops them as a lost machine does (a listener whose backlog is full: the kernel drops
    the SYN, the connect waits), one is closed."""

    def __init__(self) -> None:
        self.answering = socket.create_server(("127.0.0.1", 0))
        self.silent = socket.create_server(("127.0.0.1", 0), backlog=0)
        self.filler = socket.create_connection(self.silent.getsockname())  # fills it
        self.closed = free_port()

    def urls(self) -> str:
        ports = [
            self.answering.getsockname()[1],
            self.silent.getsockname()[1],
            self.closed,
        ]
        return " ".join(f"amqp://guest:guest@127.0.0.1:{port}/" for port in ports)

    def close(self) -> None:
        for sock in (self.filler, self.silent, self.answering):
            sock.close()


@pytest.fixture
def peers() -> Iterator[Peers]:
    peers = Peers()
    yield peers
    peers.close()


async def test_the_silent_port_is_what_a_probe_waits_on(peers):
    """The control: without its timeout a probe of the silent node would wait on."""
    answering, silent = peers.urls().split()[:2]
    assert await accepts_connections(address(answering), timeout=0.3)
    started = time.monotonic()
    assert not await accepts_connections(address(silent), timeout=0.3)
    assert time.monotonic() - started >= 0.3


async def test_a_round_finds_the_answering_node_within_its_timeout(peers):
    watch = NodeWatch(peers.urls(), connected=lambda: None, timeout=0.3)
    started = time.monotonic()
    await watch.probe_round()
    took = time.monotonic() - started
    assert watch.answering == {watch.nodes[0]}
    # the silent node is given up on at the timeout, not left to hang the round
    assert 0.3 <= took < 1.0, took


async def test_the_check_answers_at_once_while_a_round_waits_on_a_silent_node(peers):
    watch = NodeWatch(peers.urls(), connected=lambda: ("127.0.0.1", peers.closed), timeout=0.6)
    watch.answering = frozenset({watch.nodes[0]})  # what an earlier round found
    probing = asyncio.create_task(watch.probe_round())
    await asyncio.sleep(0.1)  # the round is now waiting on the silent node
    started = time.monotonic()
    state = watch.state()
    assert time.monotonic() - started < 0.01
    assert (state.mode, state.nodes, state.healthy) == ("cluster", 3, 2)
    assert not probing.done()
    await probing
    # the connected node is not asked; the silent one is not counted
    assert watch.answering == {watch.nodes[0]}


async def test_a_single_node_is_never_probed():
    watch = NodeWatch("amqp://guest:guest@127.0.0.1:1/", connected=lambda: ("127.0.0.1", 1))
    watch.start()
    assert watch._task is None
    assert watch.state().component()["healthy"] == 1
    await watch.close()
