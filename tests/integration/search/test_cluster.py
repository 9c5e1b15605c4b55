"""Typesense as a 3-node Raft cluster (issue 13, item 3), real processes on this machine:
search_sync indexes through any node, catalog_api searches any healthy one. A node killed
with SIGKILL (a follower, then the leader) costs no search: every one answers 200 from the
index, with hits; a write made at the kill reaches search once the cluster has a leader
again, within a bound measured here. The alias reindex works on the cluster, with a node
away that catches up when it returns. The control: a catalog that knows only the killed node
loses its search to the PostgreSQL fallback, so it is the failover that keeps reads up.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from search_sync.worker import run_reindex, run_worker
from tests.integration.booking.support import own_vhost
from tests.integration.catalog.support import get_json, open_client
from tests.integration.search.support import Reader, insert_events, new_name, rename, search
from tests.servers import RUN_ID, TYPESENSE_KEY
from tests.support import eventually, free_port, settings_with
from ticketing.config import Settings
from ticketing.typesense_cluster import ClusterNode, LocalCluster

pytestmark = pytest.mark.slow

TERM = "Gewandhaus"
EVENTS = 30
# Reads keep going this long after a kill (a dead node is skipped for 2 s, then tried again).
READ_AFTER_KILL_SECONDS = 3.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    base = Path(tempfile.mkdtemp(prefix=f"tk-tsc-{RUN_ID}-"))
    nodes = [ClusterNode(free_port(), free_port(), base / f"node-{i}") for i in range(3)]
    cluster = LocalCluster(nodes, TYPESENSE_KEY, base / "nodes")
    cluster.start()
    try:
        seconds = cluster.wait_ready(60)
        print(f"\ncluster of 3 ready (every node healthy, a leader) in {seconds:.1f}s")
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def whole(cluster: LocalCluster) -> LocalCluster:
    """Every node running, healthy and a leader elected, whatever the last test killed."""
    for index in range(len(cluster.nodes)):
        if index not in cluster.running():
            cluster.start_node(index)
    await asyncio.to_thread(cluster.wait_ready, 60)
    return cluster


@pytest.fixture(scope="module")
def cluster_amqp(settings: Settings) -> Iterator[str]:
    """A vhost of the module's own: only this module's search_sync consumes its changes."""
    yield from own_vhost(settings.amqp_url)


@pytest.fixture(scope="module")
def cluster_settings(settings: Settings, cluster: LocalCluster, cluster_amqp: str) -> Settings:
    return settings_with(
        settings,
        typesense_url=cluster.url,
        typesense_collection=settings.typesense_collection + "_cluster",
        amqp_url=cluster_amqp,
    )


@pytest.fixture(scope="module")
async def event_ids(pool: asyncpg.Pool) -> AsyncIterator[list[int]]:
    """Events of the module's own, in the run's database (``pool``: tests/integration)."""
    async with pool.acquire() as conn:
        ids = await insert_events(conn, [f"{TERM} Nacht {i}" for i in range(EVENTS)], "Leipzig")
    yield ids
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM tickets WHERE event_id = ANY($1)", ids)
        await conn.execute("DELETE FROM events WHERE id = ANY($1)", ids)


@pytest.fixture(scope="module")
async def catalog(cluster_settings: Settings, event_ids: list[int]) -> AsyncIterator[TestClient]:
    """search_sync (relay, consumer, the bootstrap reindex) and catalog_api on the cluster."""
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(cluster_settings, stop, serve_metrics=False))
    client = await open_client(cluster_settings)
    try:
        await eventually(
            lambda: search(client, TERM),
            lambda r: r.indexed and len(r.ids) == EVENTS,
            60,
            "the index",
        )
        yield client
    finally:
        await client.close()
        stop.set()
        await asyncio.wait_for(worker, 15)


async def kill_during_reads(
    cluster: LocalCluster, catalog: TestClient, pool: asyncpg.Pool, event_id: int, victim: int
) -> tuple[Reader, float, float]:
    """Kill ``victim`` while searches run and an event is renamed at the same moment.
    Returns the reads, when the kill was, and how long the rename took to be searchable."""
    reader = Reader(catalog, TERM)
    reading = asyncio.create_task(reader.run())
    await asyncio.sleep(0.5)
    killed_at = time.monotonic()
    cluster.kill(victim)
    name = f"{TERM} {new_name()}"  # still found by the readers' term
    await rename(pool, event_id, name)
    await eventually(
        lambda: search(catalog, name), lambda r: r.names.get(event_id) == name, 30, "the rename"
    )
    write_seconds = time.monotonic() - killed_at
    await asyncio.sleep(max(0.0, killed_at + READ_AFTER_KILL_SECONDS - time.monotonic()))
    reader.stop.set()
    await reading
    return reader, killed_at, write_seconds


async def typesense_health(catalog: TestClient) -> dict[str, object]:
    status, body = await get_json(catalog, "/healthz")
    assert status == 200, body
    component: dict[str, object] = body["components"]["typesense"]
    return component


async def test_a_killed_follower_costs_no_search(
    whole: LocalCluster, catalog: TestClient, pool: asyncpg.Pool, event_ids: list[int]
) -> None:
    assert await typesense_health(catalog) == {
        "status": "ok",
        "mode": "cluster",
        "nodes": 3,
        "healthy": 3,
    }
    follower = whole.followers()[0]
    reader, killed_at, write_seconds = await kill_during_reads(
        whole, catalog, pool, event_ids[0], follower
    )
    print(
        f"\nfollower killed: {reader.summary(killed_at)}; write searchable in {write_seconds:.2f}s"
    )
    assert [r for r in reader.reads if not r.good] == []
    assert len([r for r in reader.reads if r.at >= killed_at]) > 50
    assert write_seconds < 5
    health = await typesense_health(catalog)
    assert (health["status"], health["healthy"]) == ("ok", 2)


async def test_a_killed_leader_costs_no_search_and_writes_resume(
    whole: LocalCluster, catalog: TestClient, pool: asyncpg.Pool, event_ids: list[int]
) -> None:
    leader = whole.leader()
    assert leader is not None
    election = asyncio.create_task(asyncio.to_thread(elected, whole, leader))
    reader, killed_at, write_seconds = await kill_during_reads(
        whole, catalog, pool, event_ids[1], leader
    )
    print(
        f"\nleader killed: {reader.summary(killed_at)}; a new leader after "
        f"{await election - killed_at:.2f}s, write searchable in {write_seconds:.2f}s"
    )
    assert [r for r in reader.reads if not r.good] == []
    assert len([r for r in reader.reads if r.at >= killed_at]) > 50
    # A new election (5-10 s measured on 0.24.1), then search_sync's next try (backoff <= 2 s).
    assert write_seconds < 20
    await asyncio.to_thread(whole.wait_ready, 30)
    assert whole.leader() not in (None, leader)


def elected(cluster: LocalCluster, old: int) -> float:
    """When a node other than ``old`` is the leader (polled from before the kill)."""
    deadline = time.monotonic() + 60
    while cluster.leader() in (None, old) and time.monotonic() < deadline:
        time.sleep(0.05)
    return time.monotonic()


def alias_on(cluster: LocalCluster, index: int, alias: str) -> tuple[str | None, set[str]]:
    """What one node says the alias points at, and which collections it has."""

    def get(path: str) -> object:
        request = urllib.request.Request(
            cluster.nodes[index].url + path, headers={"X-TYPESENSE-API-KEY": cluster.api_key}
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return {"status": exc.code}

    target = get(f"/aliases/{alias}")
    collections = get("/collections")
    return (
        target.get("collection_name") if isinstance(target, dict) else None,
        {c["name"] for c in collections} if isinstance(collections, list) else set(),
    )


async def test_reindex_swaps_the_alias_on_every_node_one_of_them_away(
    whole: LocalCluster, catalog: TestClient, cluster_settings: Settings, event_ids: list[int]
) -> None:
    alias = cluster_settings.typesense_collection
    [before] = {alias_on(whole, i, alias)[0] for i in range(3)}
    away = whole.followers()[0]
    whole.kill(away)
    reader = Reader(catalog, TERM)
    reading = asyncio.create_task(reader.run())
    await asyncio.sleep(0.3)
    result = await run_reindex(cluster_settings)
    await asyncio.sleep(0.3)
    reader.stop.set()
    await reading
    assert result.dropped == before
    assert result.indexed >= EVENTS  # the run's other tests' events too
    # Through the alias, never a partial index: every search finds every event.
    assert {(r.status, r.indexed, frozenset(r.ids)) for r in reader.reads} == {
        (200, True, frozenset(event_ids))
    }
    print(f"\n{len(reader.reads)} reads during the reindex, {reader.duplicated()} with a hit twice")

    whole.start_node(away)
    seconds = await asyncio.to_thread(whole.wait_ready, 60)
    print(f"\nreindex {result.seconds:.2f}s on 2 of 3 nodes; the third caught up in {seconds:.1f}s")
    for index in range(3):
        target, collections = alias_on(whole, index, alias)
        assert target == result.collection, index
        assert before not in collections, index
    assert set((await search(catalog, TERM)).ids) == set(event_ids)


async def test_control_a_catalog_knowing_only_the_killed_node_loses_search(
    whole: LocalCluster, catalog: TestClient, cluster_settings: Settings
) -> None:
    victim = whole.followers()[0]
    alone = await open_client(settings_with(cluster_settings, typesense_url=whole.urls[victim]))
    try:
        assert (await search(alone, TERM)).good
        whole.kill(victim)
        single = [await search(alone, TERM) for _ in range(20)]
        cluster = [await search(catalog, TERM) for _ in range(20)]
    finally:
        await alone.close()
    # The fallback still answers (200, from PostgreSQL), but not from the index.
    assert {(r.status, r.indexed) for r in single} == {(200, False)}
    assert all(r.good for r in cluster)
