"""The real entry points, as a supervisor runs them: ``python -m search_sync run`` builds the
index on first start, keeps it in step, serves metrics and stops cleanly on SIGTERM;
``python -m search_sync reindex`` rebuilds it and says what it did."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from search_sync.reindex import alias_target
from tests.integration.search.support import (
    drop_alias,
    indexed_name,
    insert_events,
    new_name,
    rename,
    service_env,
)
from tests.support import eventually, free_port, settings_with
from ticketing.config import Settings
from ticketing.search_index import make_client

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
async def proc_settings(settings: Settings) -> AsyncIterator[Settings]:
    mine = settings_with(
        settings,
        typesense_collection=settings.typesense_collection + "_proc",
        search_sync_metrics_port=free_port(),
    )
    yield mine
    await drop_alias(mine)


@pytest.fixture(scope="module")
async def hamburg(database_url: str) -> AsyncIterator[list[int]]:
    conn = await asyncpg.connect(database_url)
    ids = await insert_events(conn, [f"Hafenkonzert {i}" for i in range(20)], "Hamburg")
    yield ids
    await conn.execute("DELETE FROM tickets WHERE event_id = ANY($1)", ids)
    await conn.execute("DELETE FROM events WHERE id = ANY($1)", ids)
    await conn.close()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        return resp.read().decode()


def sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def test_run_bootstraps_syncs_serves_metrics_and_stops_on_sigterm(
    proc_settings, hamburg, database_url, tmp_path
):
    alias = proc_settings.typesense_collection
    log_path = tmp_path / "search_sync.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "search_sync",
            "run",
            cwd=ROOT,
            env=service_env(proc_settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    client = make_client(proc_settings)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        # No alias yet: the process builds the index from Postgres on its own.
        await eventually(
            lambda: indexed_name(client, alias, hamburg[-1]),
            lambda name: name == "Hafenkonzert 19",
            20,
            "the bootstrap index",
        )
        name = new_name()
        started = time.monotonic()
        await rename(pool, hamburg[0], name)
        await eventually(
            lambda: client.collections[alias].documents.search(
                {"q": name, "query_by": "name", "filter_by": "city:=Hamburg"}
            ),
            lambda found: found["found"] == 1,
            5,
            "the renamed event to be searchable",
        )
        assert time.monotonic() - started < 5
        metrics = await eventually(
            lambda: asyncio.to_thread(scrape, proc_settings.search_sync_metrics_port),
            lambda text: sample(text, "ticketing_search_sync_lag_seconds_count") >= 1,
            5,
            "the sync lag to be recorded",
        )
        assert sample(metrics, "ticketing_search_sync_upserts_total") >= 1

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await pool.close()
        await client.api_call.aclose()
    output = log_path.read_text()
    assert "bootstrap: built" in output
    assert "search_sync consumer stopped" in output
    assert "outbox relay stopped" in output
    assert "Traceback" not in output


async def test_reindex_command_rebuilds_and_reports(proc_settings, hamburg):
    client = make_client(proc_settings)
    try:
        before = await alias_target(client, proc_settings.typesense_collection)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "search_sync",
            "reindex",
            cwd=ROOT,
            env=service_env(proc_settings),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        after = await alias_target(client, proc_settings.typesense_collection)
    finally:
        await client.api_call.aclose()
    report = out.decode()
    assert report.startswith("reindexed ")
    assert int(report.split()[1]) >= len(hamburg)
    assert after is not None
    assert after != before
    assert after in report
