"""How docker-compose.yml wires its services, prod and dev, checked against the project's
own settings (ticketing.config): every TICKETING_ variable a known setting with a value
the services accept, dependency URLs naming services on their ports, service ports the
settings' defaults, depends_on conditions a target can meet, and the gateway's environment
filling exactly its template's placeholders as deploy/render_nginx.py renders them."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from deploy import render_nginx
from tests.e2e.compose_files import ROOT
from tests.e2e.compose_services import (
    PYTHON_SERVICES,
    TOOL_SERVICES,
    command_of,
    exposed_ports,
    flag,
)
from ticketing.config import VARIABLES, Settings, default

# URL setting -> the compose service it must name
URL_SETTINGS = {
    "TICKETING_DATABASE_URL": "postgres",
    "TICKETING_REDIS_URL": "redis",
    "TICKETING_AMQP_URL": "rabbitmq",
    "TICKETING_TYPESENSE_URL": "typesense",
    "TICKETING_STRIPE_API_BASE": "localstripe",
}


# compose service -> the setting holding the port it serves on
PORT_SETTINGS = {
    "catalog_api": "TICKETING_CATALOG_PORT",
    "waitingroom": "TICKETING_WAITINGROOM_PORT",
    "search_sync": "TICKETING_SEARCH_SYNC_METRICS_PORT",
    "booking_worker": "TICKETING_BOOKING_WORKER_METRICS_PORT",
    "booking_payments": "TICKETING_BOOKING_WORKER_METRICS_PORT",
}


def test_every_ticketing_variable_is_a_known_setting(services):
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert set(re.findall(r"\b(TICKETING_[A-Z_]+)=", dockerfile)) <= VARIABLES.keys()
    for name, service in services.items():
        env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        unknown = {k for k in env if k.startswith("TICKETING_")} - VARIABLES.keys()
        assert not unknown, f"{name} sets variables ticketing.config does not know: {unknown}"
        if name in PYTHON_SERVICES or name in TOOL_SERVICES:
            Settings.from_env(env)  # raises ConfigError on a value the services would reject


def test_dependency_urls_name_services_on_their_ports(services):
    # Prod charges through Stripe itself (tests/e2e/test_compose_prod.py), dev localstripe.
    urls = {k: v for k, v in URL_SETTINGS.items() if v in services}
    assert set(URL_SETTINGS) - set(urls) <= {"TICKETING_STRIPE_API_BASE"}
    for name in PYTHON_SERVICES:
        env = services[name]["environment"]
        for setting, target in urls.items():
            url = urlsplit(env[setting])
            assert url.hostname == target, f"{name}: {setting} should point at {target}"
            assert url.port == urlsplit(default(setting)).port, f"{name}: {setting} port"
            assert url.port in exposed_ports(services[target]), f"{target} does not expose {url}"
    env = services["catalog_api"]["environment"]
    db, mq = urlsplit(env["TICKETING_DATABASE_URL"]), urlsplit(env["TICKETING_AMQP_URL"])
    pg_env, mq_env = services["postgres"]["environment"], services["rabbitmq"]["environment"]
    assert (db.username, db.password, db.path.lstrip("/")) == (
        pg_env["POSTGRES_USER"],
        pg_env["POSTGRES_PASSWORD"],
        pg_env["POSTGRES_DB"],
    )
    assert (mq.username, mq.password) == (
        mq_env["RABBITMQ_DEFAULT_USER"],
        mq_env["RABBITMQ_DEFAULT_PASS"],
    )
    typesense = command_of(services["typesense"])
    assert flag(typesense, "--api-key") == env["TICKETING_TYPESENSE_API_KEY"]
    assert int(flag(typesense, "--api-port")) == urlsplit(env["TICKETING_TYPESENSE_URL"]).port


def test_service_ports_are_the_settings_defaults_and_checked_there(services):
    for name, setting in PORT_SETTINGS.items():
        service = services[name]
        port = int(service["environment"].get(setting, default(setting)))
        assert port == int(default(setting)), f"{name}: {setting} differs from the default"
        assert port in exposed_ports(service), f"{name} does not expose {port}"
        assert f":{port}/" in " ".join(service["healthcheck"]["test"]), f"{name} healthcheck"


def test_depends_on_targets_exist_and_can_meet_their_condition(services):
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        for target, spec in depends.items() if isinstance(depends, dict) else []:
            assert target in services and target != name, f"{name} depends on {target}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert services[target].get("healthcheck"), f"{target} has no healthcheck"
            elif condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} is not one-shot"
            else:
                assert condition == "service_started", f"{name}: unknown condition {condition}"
    for name in ("catalog_api", "waitingroom", "search_sync", "booking_worker", "booking_payments"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )


def test_compose_gateway_fills_exactly_the_template_placeholders(services):
    nginx = services["nginx"]
    env = {k: str(v) for k, v in nginx["environment"].items()}
    mount = "./deploy/nginx.conf.template:/etc/nginx/templates/nginx.conf.template:ro"
    assert mount in nginx["volumes"]
    # Its image renders that path (deploy/gateway-entrypoint.sh) and has the Lua there.
    dockerfile = ROOT / nginx["build"]["dockerfile"]
    entrypoint = (ROOT / "deploy" / "gateway-entrypoint.sh").read_text()
    assert "/etc/nginx/templates/nginx.conf.template" in entrypoint
    assert "COPY deploy/lua /etc/nginx/lua" in dockerfile.read_text()
    assert env["GATEWAY_LUA_DIR"] == "/etc/nginx/lua"
    # ... and the merged OpenAPI document, which it serves itself.
    assert "COPY deploy/openapi.json /etc/nginx/openapi.json" in dockerfile.read_text()
    assert env["GATEWAY_OPENAPI_FILE"] == "/etc/nginx/openapi.json"
    placeholders = set(render_nginx.PLACEHOLDER.findall(render_nginx.TEMPLATE.read_text()))
    assert {k for k in env if k.startswith("GATEWAY_")} == placeholders
    service_env = services["catalog_api"]["environment"]
    assert env["GATEWAY_CATALOG_UPSTREAM"] == f"catalog_api:{service_env['TICKETING_CATALOG_PORT']}"
    # Every waitingroom process of the container is in the upstream, and the gateway has
    # workers enough for all their fans.
    processes = int(
        service_env.get(
            "TICKETING_WAITINGROOM_PROCESSES", default("TICKETING_WAITINGROOM_PROCESSES")
        )
    )
    first = int(service_env["TICKETING_WAITINGROOM_PORT"])
    ports = [first + i for i in range(processes)]
    assert env["GATEWAY_WAITINGROOM_SERVERS"] == render_nginx.upstream_servers("waitingroom", ports)
    # ... and its booking front doors, on the ports after those, in the booking upstream.
    front_doors = int(
        service_env.get("TICKETING_FRONTDOOR_PROCESSES", default("TICKETING_FRONTDOOR_PROCESSES"))
    )
    doors = [first + processes + i for i in range(front_doors)]
    assert env["GATEWAY_BOOKING_SERVERS"] == render_nginx.upstream_servers(
        "waitingroom", doors or ports
    )
    assert env["GATEWAY_WORKER_PROCESSES"] == str(render_nginx.worker_processes(processes))
    waitingroom = services["waitingroom"]
    assert set(ports + doors) <= exposed_ports(waitingroom)
    assert all(f":{p}/" in " ".join(waitingroom["healthcheck"]["test"]) for p in ports + doors)
    assert env["GATEWAY_MAX_BODY_BYTES"] == service_env["TICKETING_MAX_BODY_BYTES"]
    assert env["GATEWAY_LISTEN"] == default("TICKETING_GATEWAY_PORT")
    assert nginx["ports"] == [f"127.0.0.1:{env['GATEWAY_LISTEN']}:{env['GATEWAY_LISTEN']}"]
    assert not render_nginx.PLACEHOLDER.search(render_nginx.render(env))
    # The queue join the gateway answers: the waitingroom's keys, Redis, prefix, script and
    # limits, exactly as deploy/render_nginx.py renders them for the waitingroom's settings.
    waitingroom_settings = Settings.from_env(
        {k: str(v) for k, v in waitingroom["environment"].items()}
    )
    assert env["GATEWAY_QUEUE_JOIN"] == render_nginx.lua_table(
        render_nginx.queue_join_options(waitingroom_settings)
    )
    assert env["TICKETING_JWT_SECRET"] == waitingroom_settings.jwt_secret
    assert env["TICKETING_QUEUE_TICKET_SECRET"] == waitingroom_settings.queue_ticket_secret
    assert env["GATEWAY_METRICS_LISTEN"] == default("TICKETING_GATEWAY_METRICS_PORT")
    # The gateway believes X-Forwarded-For from the default proxies only (loopback); the
    # services believe the gateway's X-Real-IP, which reaches them over the network.
    assert env["GATEWAY_REAL_IP_FROM"] == render_nginx.real_ip_from(
        default("TICKETING_TRUSTED_PROXIES")
    )
    assert "172.16.0.0/12" in waitingroom_settings.trusted_proxies.split(",")
