"""docker-compose.cluster.yml puts docker-compose.yml's stack on clusters.

Read as compose reads them (tests/e2e/compose_files.py): every service gets the cluster
URLs, each naming the nodes these files run on the ports they expose; the nodes agree on
who their peers are; every node keeps its data on a volume of its own and has a
healthcheck; every depends_on can be met; the gateway joins through the Redis Cluster as
deploy/render_nginx.py renders it. Where a docker compose is installed, its own reading of
the files must agree with ours.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import render_nginx
from tests.e2e import compose_files
from tests.e2e.compose_files import BASE, ROOT
from tests.e2e.compose_services import PYTHON_SERVICES, command_of, exposed_ports
from ticketing.config import Settings

CLUSTER = ROOT / "docker-compose.cluster.yml"
FILES = [BASE, CLUSTER]
# engine -> its nodes, the first the base file's server, and where each keeps its data
NODES = {
    "redis": (["redis", *(f"redis-{i}" for i in range(1, 6))], "/data"),
    "rabbitmq": (["rabbitmq", "rabbitmq-2", "rabbitmq-3"], "/var/lib/rabbitmq"),
    "typesense": (["typesense", "typesense-2", "typesense-3"], "/data"),
    "postgres": (["postgres", "postgres-replica"], "/var/lib/postgresql/data"),
}


def environment() -> dict[str, str]:
    """An operator's environment: every variable either file requires, a value of its own."""
    required = compose_files.required_variables(BASE) | compose_files.required_variables(CLUSTER)
    return {name: f"{name.lower()}-of-this-deployment-0123456789" for name in required}


SERVICES = compose_files.load(FILES, environment())


def settings(name: str) -> Settings:
    return Settings.from_env({k: str(v) for k, v in SERVICES[name]["environment"].items()})


def hosts(url: str) -> list[tuple[str, int]]:
    netloc = url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]
    return [(h.rpartition(":")[0], int(h.rpartition(":")[2])) for h in netloc.split(",")]


def test_the_override_merges_as_compose_does_and_adds_only_profiled_services():
    base = compose_files.raw(BASE)["services"]
    for name, service in compose_files.raw(CLUSTER)["services"].items():
        if name not in base:
            assert service["profiles"] == ["cluster"], name
            continue
        for key, value in service.items():
            # Lists compose merges its own way (volumes, expose, ...) only where the base
            # service has none; command and entrypoint it replaces, as compose_files does.
            replaced = key in ("command", "entrypoint") or key not in base[name]
            assert isinstance(value, dict | str | int) or replaced, f"{name}.{key}"
    without_cookie = {k: v for k, v in environment().items() if k != "RABBITMQ_ERLANG_COOKIE"}
    with pytest.raises(compose_files.MissingVariable, match="RABBITMQ_ERLANG_COOKIE"):
        compose_files.load(FILES, without_cookie)


def test_every_service_gets_the_cluster_urls_of_these_nodes():
    for name in PYTHON_SERVICES:
        s = settings(name)
        assert s.env == "prod", name
        assert s.redis_url.startswith("redis+cluster://"), name
        assert hosts(s.redis_url) == [(n, 6379) for n in NODES["redis"][0]], name
        assert [hosts(u)[0] for u in s.amqp_url.split()] == [
            (n, 5672) for n in NODES["rabbitmq"][0]
        ], name
        assert s.amqp_queue_type == "quorum", name
        assert [hosts(u)[0] for u in s.typesense_nodes] == [
            (n, 8108) for n in NODES["typesense"][0]
        ], name
    replica = settings("catalog_api").database_replica_urls
    assert hosts(replica) == [("postgres-replica", 5432)]
    for url in (replica, *settings("catalog_api").amqp_url.split()):
        assert url.split("://", 1)[1].split("@")[0].split(":")[1].endswith("-0123456789")
    for nodes, _ in NODES.values():
        for node in nodes:
            assert exposed_ports(SERVICES[node]), node


def test_the_nodes_agree_on_their_peers():
    redis_nodes, _ = NODES["redis"]
    for node in redis_nodes:
        argv = command_of(SERVICES[node])
        assert argv[argv.index("--cluster-announce-hostname") + 1] == node
        assert argv[argv.index("--cluster-enabled") + 1] == "yes"
    create = " ".join(command_of(SERVICES["redis-cluster-create"]))
    assert re.findall(r"(redis(?:-\d)?):6379", create) == redis_nodes
    assert "--cluster-replicas 1" in create
    rabbit_nodes, _ = NODES["rabbitmq"]
    start = " ".join(command_of(SERVICES["rabbitmq"]))
    assert re.findall(r"nodes\.\d = rabbit@(\S+?)'", start) == rabbit_nodes
    for node in rabbit_nodes:
        assert SERVICES[node]["hostname"] == node  # rabbit@<host name> is its node name
        assert command_of(SERVICES[node]) == command_of(SERVICES["rabbitmq"])
        cookie = SERVICES[node]["environment"]["ERLANG_COOKIE"]
        assert cookie == environment()["RABBITMQ_ERLANG_COOKIE"], node
    typesense_nodes, _ = NODES["typesense"]
    start = " ".join(command_of(SERVICES["typesense"]))
    listed = re.search(r"printf '%s' (\S+) > /tmp/nodes", start)
    assert listed and listed[1] == ",".join(f"{n}:8107:8108" for n in typesense_nodes)
    for node in typesense_nodes:
        assert command_of(SERVICES[node]) == command_of(SERVICES["typesense"]), node
    assert "pg_basebackup -h postgres " in " ".join(command_of(SERVICES["postgres-replica"]))
    assert "host replication all all scram-sha-256" in " ".join(command_of(SERVICES["postgres"]))


def test_every_node_keeps_its_data_on_a_volume_of_its_own_and_is_health_checked():
    declared = set(compose_files.raw(BASE)["volumes"]) | set(compose_files.raw(CLUSTER)["volumes"])
    seen: dict[str, str] = {}
    for nodes, data_dir in NODES.values():
        for node in nodes:
            mounts = dict(v.split(":")[:2][::-1] for v in SERVICES[node]["volumes"])
            volume = mounts[data_dir]
            assert volume in declared, f"{node}: {volume}"
            assert volume not in seen, f"{node} shares {volume} with {seen.get(volume)}"
            seen[volume] = node
            assert SERVICES[node]["healthcheck"]["test"], node


def test_every_dependency_can_be_met():
    for name, service in SERVICES.items():
        for target, spec in (service.get("depends_on") or {}).items():
            assert target in SERVICES and target != name, f"{name} depends on {target}"
            if spec["condition"] == "service_healthy":
                assert SERVICES[target].get("healthcheck"), f"{target} has no healthcheck"
            else:
                assert spec["condition"] == "service_completed_successfully", name
                assert SERVICES[target]["restart"] == "no", f"{target} is not one-shot"
    for name in ("catalog_api", "waitingroom", "booking_worker", "nginx"):
        assert "redis-cluster-create" in SERVICES[name]["depends_on"], name


def test_the_gateway_joins_through_the_redis_cluster():
    waitingroom = settings("waitingroom")
    try:
        options = render_nginx.queue_join_options(waitingroom)
    except ValueError:  # the renderer of a tree before the gateway's cluster join
        pytest.xfail("deploy/render_nginx.py reads no redis+cluster:// URL yet")
    expected = render_nginx.lua_table(options)
    got = SERVICES["nginx"]["environment"]["GATEWAY_QUEUE_JOIN"]
    assert got == expected, f"set docker-compose.cluster.yml's GATEWAY_QUEUE_JOIN to {expected}"


def compose_command() -> list[str] | None:
    """docker compose (v2), or the older docker-compose, whichever is installed; its
    ``config`` needs no docker engine."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    found = shutil.which("docker-compose")
    return [found] if found else None


def test_docker_compose_reads_the_files_as_we_do(tmp_path: Path):
    compose = compose_command()
    if compose is None:
        pytest.skip("no docker compose (nor docker-compose) installed here")
    env_file = tmp_path / "cluster.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in environment().items()))
    files = [arg for path in FILES for arg in ("-f", str(path))]
    run = subprocess.run(
        [*compose, "--env-file", str(env_file), *files, "--profile", "cluster", "config"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    theirs: dict[str, Any] = yaml.safe_load(run.stdout)["services"]
    assert set(theirs) == set(SERVICES)
    for name, service in theirs.items():
        ours = SERVICES[name]
        env = {k: str(v).replace("$$", "$") for k, v in (service.get("environment") or {}).items()}
        assert env == {k: str(v) for k, v in (ours.get("environment") or {}).items()}, name
        conditions = {k: v["condition"] for k, v in (service.get("depends_on") or {}).items()}
        assert conditions == {k: v["condition"] for k, v in (ours.get("depends_on") or {}).items()}
        volumes = [
            v if isinstance(v, str) else f"{v['source']}:{v['target']}"
            for v in service.get("volumes", [])
        ]
        sources = {v.split(":")[0] for v in volumes if not v.startswith("/")}
        assert sources == {
            v.split(":")[0] for v in ours.get("volumes", []) if not v.startswith(".")
        }, name
