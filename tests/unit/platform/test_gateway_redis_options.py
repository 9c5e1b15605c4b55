"""Where the gateway's Lua finds Redis (deploy/render_nginx.py redis_options): the mode and
the nodes of TICKETING_REDIS_URL as ticketing/redis_connect.py reads it, and never its
password, which deploy/gateway.py puts in nginx's environment in every mode."""

from __future__ import annotations

import dataclasses

import pytest

from deploy.gateway import gateway_env
from deploy.render_nginx import SLOT_MAP_TTL_SECONDS, lua_table, queue_join_options
from ticketing.config import Settings


def _options(url: str) -> dict[str, object]:
    options = queue_join_options(dataclasses.replace(Settings(), redis_url=url))
    return {
        k: v
        for k, v in options.items()
        if k in ("redis_mode", "redis_nodes", "redis_db", "redis_service")
    }


@pytest.mark.parametrize(
    ("url", "mode", "nodes", "db", "service"),
    [
        ("redis://127.0.0.1:6379/0", "single", [["127.0.0.1", 6379]], 0, ""),
        ("redis://cache.internal/3", "single", [["cache.internal", 6379]], 3, ""),
        ("unix:///run/redis.sock?db=2", "single", [["unix:/run/redis.sock", 0]], 2, ""),
        (
            "redis+cluster://10.0.0.1:7000,10.0.0.2:7001,[fd00::3]:7002",
            "cluster",
            [["10.0.0.1", 7000], ["10.0.0.2", 7001], ["fd00::3", 7002]],
            0,
            "",
        ),
        (
            "redis+sentinel://s1:26379,s2/tk-main/4",
            "sentinel",
            [["s1", 26379], ["s2", 26379]],
            4,
            "tk-main",
        ),
    ],
)
def test_the_mode_and_nodes_of_the_url(url, mode, nodes, db, service):
    assert _options(url) == {
        "redis_mode": mode,
        "redis_nodes": nodes,
        "redis_db": db,
        "redis_service": service,
    }


@pytest.mark.parametrize(
    "url",
    [
        "redis://:p%40ss@127.0.0.1:6379/0",
        "redis+cluster://:p%40ss@127.0.0.1:7000,127.0.0.1:7001",
        "redis+sentinel://:p%40ss@127.0.0.1:26379/tk-main",
    ],
)
def test_the_password_goes_to_the_environment_in_every_mode(url):
    settings = dataclasses.replace(Settings(), redis_url=url)
    options = queue_join_options(settings)
    assert "p@ss" not in lua_table(options) and "p%40ss" not in lua_table(options)
    assert options["redis_slots_ttl"] == SLOT_MAP_TTL_SECONDS
    assert gateway_env(settings, {})["TICKETING_GATEWAY_REDIS_PASSWORD"] == "p@ss"
