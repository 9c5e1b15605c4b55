"""docker-compose.yml and the gateway config, checked against the project's own settings.

No docker engine is needed: the compose files are read as compose reads them (prod: the base
file with an operator's secrets; dev: the base file and docker-compose.dev.yml with
docker-compose.dev.env; tests/e2e/compose_files.py) and cross-checked against
ticketing.config, pyproject.toml and deploy/Procfile. The gateway template is rendered the
way `make run` renders it, validated by `nginx -t`, its routing checked against every path
in the SPEC, and a real nginx is started to check the errors it answers itself.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import shlex
import shutil
import socket
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from deploy import render_nginx
from tests.e2e import compose_files
from tests.support import free_port, wait_until
from ticketing.config import VARIABLES, Settings, default

ROOT = Path(__file__).resolve().parents[2]
IMAGES = {
    "postgres": "postgres:15",
    "redis": "redis:7",
    "rabbitmq": "rabbitmq:3-management",
    "typesense": "typesense/typesense:0.24.1",
    "nginx": "ticketing-gateway:dev",  # built from deploy/gateway.Dockerfile (Debian nginx + Lua)
}
# compose service -> the module its command runs
PYTHON_SERVICES = {
    "catalog_api": "catalog_api",
    "waitingroom": "waitingroom",
    "search_sync": "search_sync",
    "booking_worker": "booking_worker",
    "booking_payments": "booking_worker",
    "migrate": "ticketing.db.migrate",
}
# compose service -> its command line; run from our image, not a Python module of ours (dev
# override only: a fake Stripe)
TOOL_SERVICES = {
    "localstripe": [
        "python",
        "-m",
        "deploy.localstripe_server",
        "--port",
        default("TICKETING_LOCALSTRIPE_PORT"),
    ]
}
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
# Every public path in SPEC.md's catalog, admin catalog, booking and waiting-room sections.
CATALOG_PATHS = [
    "/events",
    "/events/42",
    "/event/42",
    "/events/42/tickets",
    "/search",
    "/healthz",
    "/admin/venues",
    "/admin/performers",
    "/admin/events",
    "/admin/events/42",
]
WAITINGROOM_PATHS = [
    "/auth/dev-token",
    "/queue/42/join",
    "/queue/42/status",
    "/queue/42/ws",
    "/queue/42",
    "/admin/queues/42",
    "/admin",
    "/admin/queues",
    "/queue/42/leave",
    "/queue/42/fairness",
    "/static/queue.js",
]
# The booking front doors' (waitingroom --role booking; upstream "booking").
BOOKING_PATHS = [
    "/booking/reserve",
    "/booking/confirm",
    "/booking/holds/h1",
    "/booking/42",
    "/bookings/b1",
    "/me/bookings",
    "/webhooks/stripe",
]
UNROUTED_PATHS = ["/metrics", "/", "/admin/", "/nope", "/_gateway/502"]
# Answered by nginx itself, from a file (the merged document deploy/openapi.py writes).
GATEWAY_PATHS = ["/openapi.json"]


@pytest.fixture(scope="module", params=["prod", "dev"])
def services(request: pytest.FixtureRequest) -> dict[str, dict]:
    """Each stack's services, as compose runs them: prod, and dev (with the override)."""
    if request.param == "prod":
        return compose_files.prod_services()
    return compose_files.dev_services()


def is_dev(services: dict[str, dict]) -> bool:
    return services["catalog_api"]["environment"]["TICKETING_ENV"] == "dev"


def tools(services: dict[str, dict]) -> dict[str, list[str]]:
    """The tool services this stack runs: localstripe in dev, none in prod."""
    return TOOL_SERVICES if is_dev(services) else {}


def exposed_ports(service: dict) -> set[int]:
    ports = {int(p) for p in service.get("expose", [])}
    ports |= {int(str(p).rsplit(":", 1)[-1]) for p in service.get("ports", [])}
    return ports


def command_of(service: dict) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_the_stack_is_every_component_on_pinned_images(services):
    assert set(services) == set(IMAGES) | set(PYTHON_SERVICES) | set(tools(services))
    for name, image in IMAGES.items():
        assert services[name]["image"] == image, name
    for name, module in PYTHON_SERVICES.items():
        argv = command_of(services[name])
        assert argv[:3] == ["python", "-m", module], name
    for name, argv in tools(services).items():
        assert command_of(services[name]) == argv, name
        assert services[name]["image"] == services["catalog_api"]["image"], name


def test_booking_runs_two_workers_and_a_payments_worker(services):
    worker = services["booking_worker"]
    assert worker["deploy"]["replicas"] >= 2
    # The partition workers run commands only; the payments stage has a worker of its own.
    payments = services["booking_payments"]
    assert flag(command_of(worker), "--stages") == "commands"
    assert flag(command_of(payments), "--stages") == "payments"
    assert payments.get("deploy", {}).get("replicas", 1) >= 1
    for service in (worker, payments):
        assert service["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert payments["environment"] == worker["environment"]
    env = worker["environment"]
    assert env == services["waitingroom"]["environment"], "the front door and workers differ"


def test_dev_charges_through_localstripe():
    services = compose_files.dev_services()
    env = services["booking_worker"]["environment"]
    for name in ("booking_worker", "booking_payments"):
        assert services[name]["depends_on"]["localstripe"]["condition"] == "service_healthy"
    assert urlsplit(env["TICKETING_STRIPE_API_BASE"]).scheme == "http"
    stripe = services["localstripe"]
    port = int(flag(command_of(stripe), "--port"))
    assert port == urlsplit(env["TICKETING_STRIPE_API_BASE"]).port
    assert port in exposed_ports(stripe)
    assert str(port) in " ".join(stripe["healthcheck"]["test"])
    assert "localstripe" in (ROOT / "deploy" / "Dockerfile").read_text()
    # The image's build context lets in the launcher the localstripe service runs, and
    # every deploy module it imports.
    context = set((ROOT / "deploy" / "Dockerfile.dockerignore").read_text().split())
    launcher = ROOT / "deploy" / "localstripe_server.py"
    imported = set(re.findall(r"^from (deploy\.\w+) import", launcher.read_text(), re.M))
    assert imported, "control: the launcher imports a deploy module"
    needed = {"deploy/__init__.py", "deploy/localstripe_server.py"}
    needed |= {name.replace(".", "/") + ".py" for name in imported}
    assert {"!" + path for path in needed} <= context


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


def test_build_context_and_dockerfile_are_the_projects(services):
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    installed = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    for name in [*PYTHON_SERVICES, *tools(services)]:
        build = services[name]["build"]
        context = (ROOT / build["context"]).resolve()
        dockerfile = context / build["dockerfile"]
        assert context == ROOT and dockerfile.is_file(), f"{name}: {build}"
        assert re.search(r"^FROM python:3\.11-slim\b", dockerfile.read_text(), re.M)
        if name in TOOL_SERVICES:
            continue
        package = PYTHON_SERVICES[name].split(".")[0]
        assert any(re.fullmatch(p.replace("*", ".*"), package) for p in installed), package
        ignore = Path(f"{dockerfile}.dockerignore").read_text().split()
        assert f"!{package}" in ignore, f"{package} is left out of the build context"


def test_compose_runs_what_the_procfile_runs(services):
    procfile = dict(
        line.split(":", 1)
        for line in (ROOT / "deploy" / "Procfile").read_text().splitlines()
        if line and not line.startswith("#")
    )
    # A line's leading VAR=value words are that process's own settings (a worker's slot).
    commands = {
        " ".join(itertools.dropwhile(lambda w: re.match(r"^[A-Z_]+=", w), shlex.split(cmd)))
        for cmd in procfile.values()
    }
    for name in ("catalog_api", "waitingroom", "search_sync", "booking_worker", "booking_payments"):
        assert " ".join(command_of(services[name])) in commands, name
    # The Procfile's localstripe line, with its port variable at its default (dev's).
    localstripe = " ".join(shlex.split(procfile["localstripe"])).replace(
        "${TICKETING_LOCALSTRIPE_PORT:-8420}", default("TICKETING_LOCALSTRIPE_PORT")
    )
    if is_dev(services):
        assert localstripe == " ".join(command_of(services["localstripe"]))
    workers = [shlex.split(cmd) for cmd in procfile.values() if "python -m booking_worker" in cmd]
    stages = [
        flag(argv, "--stages") if "--stages" in argv else "commands,payments" for argv in workers
    ]
    assert sum("commands" in s.split(",") for s in stages) >= 2
    assert any("payments" in s.split(",") for s in stages), "no process runs the payments stage"


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


# --- the gateway config itself ---------------------------------------------------------------


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    assert found, "nginx is not installed; `make test` installs it through deploy/setup.sh"
    return found


def rendered(tmp_path: Path, settings: Settings) -> tuple[Path, Path]:
    conf, prefix = tmp_path / "nginx.conf", tmp_path / "nginx"
    render_nginx.write(settings, conf, prefix)
    return conf, prefix


def test_rendered_gateway_config_passes_nginx_t(tmp_path):
    conf, prefix = rendered(tmp_path, Settings())
    result = subprocess.run(
        [nginx_binary(), "-t", "-c", str(conf), "-p", str(prefix), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    text = conf.read_text()
    assert "client_max_body_size 65536;" in text and "listen 127.0.0.1:8080" in text


@pytest.mark.parametrize("processes", [1, 2, 5])
def test_the_gateway_has_room_for_every_waitingroom_processs_fans(tmp_path, processes):
    settings = dataclasses.replace(Settings(), waitingroom_processes=processes)
    text = rendered(tmp_path, settings)[0].read_text()
    workers = int(re.search(r"^worker_processes (\d+);", text, re.M)[1])
    per_worker = int(re.search(r"worker_connections (\d+);", text)[1])
    open_files = int(re.search(r"worker_rlimit_nofile (\d+);", text)[1])
    upstream = re.search(r"upstream waitingroom \{(.*?)\}", text, re.S)[1]
    servers = re.findall(r"server 127\.0\.0\.1:(\d+);", upstream)
    assert [int(p) for p in servers] == settings.waitingroom_ports
    # Each waiting fan is two connections in one worker: the fan's and the upstream one.
    fans = render_nginx.SOCKETS_PER_WAITINGROOM * processes
    assert workers * per_worker >= 2 * fans
    assert per_worker < open_files <= 20_000  # this machine's per-process cap
    assert "least_conn;" in upstream and "reuseport" in text


def route(config: str, path: str) -> str:
    """Which upstream (or "return NNN") nginx picks for ``path``, by the public server's
    location rules. The queue join's Lua passes all it does not answer to @waitingroom."""
    public = config.split("\n    server {")[1]
    named = dict(re.findall(r"location (@\w+) \{ proxy_pass http://(\w+); \}", public))
    exact, prefixes, regexes = {}, [], []
    for m in re.finditer(r"location\s+(=|~|\^~)?\s*(\S+)\s*\{(.*?)\}", public, re.S):
        modifier, pattern, body = m.groups()
        pattern = pattern.strip('"').replace("(?<", "(?P<")
        if "internal;" in body or pattern.startswith("@"):
            continue
        if 'require("queue_join").join()' in body:
            action = named["@waitingroom"]
        else:
            target = re.search(r"proxy_pass http://(\w+)|return (\d+)|(alias) ", body)
            action = target[1] or (f"return {target[2]}" if target[2] else "gateway")
        if modifier == "=":
            exact[pattern] = action
        elif modifier == "~":
            regexes.append((pattern, action))
        else:
            prefixes.append((pattern, action))
    if path in exact:
        return exact[path]
    best = max((p for p in prefixes if path.startswith(p[0])), key=lambda p: len(p[0]))
    for pattern, action in regexes:
        if re.search(pattern, path):
            return action
    return best[1]


def test_every_spec_route_reaches_its_service(tmp_path):
    config = rendered(tmp_path, Settings())[0].read_text()
    wrong = {p: route(config, p) for p in CATALOG_PATHS if route(config, p) != "catalog_api"}
    wrong |= {p: route(config, p) for p in WAITINGROOM_PATHS if route(config, p) != "waitingroom"}
    wrong |= {p: route(config, p) for p in BOOKING_PATHS if route(config, p) != "booking"}
    wrong |= {p: route(config, p) for p in UNROUTED_PATHS if route(config, p) != "return 404"}
    wrong |= {p: route(config, p) for p in GATEWAY_PATHS if route(config, p) != "gateway"}
    assert not wrong, f"routed to the wrong place: {wrong}"
    websocket = re.search(r"location ~ \^/queue/.*?\{(.*?)\}", config, re.S)[1]
    assert "proxy_read_timeout 1h" in websocket
    for header in (
        "Upgrade $http_upgrade",
        "Connection $connection_upgrade",
        "X-Real-IP $remote_addr",
        "X-Forwarded-For $proxy_add_x_forwarded_for",
    ):
        assert f"proxy_set_header {header};" in config


def raw_request(port: int, request: bytes) -> tuple[int, str, dict]:
    """Send raw bytes; read one response (nginx may linger on a refused body, so stop at
    Content-Length rather than wait for it to close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while True:
            head, sep, body = data.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head) if sep else None
            if length and len(body) >= int(length[1]):
                break
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before a whole response: {data!r}"
            data += chunk
    status = int(head.split()[1])
    content_type = re.search(rb"(?im)^content-type:\s*(\S+)", head)[1].decode()
    assert content_type == "application/problem+json", head
    return status, content_type, json.loads(body)


def test_gateway_answers_its_own_errors_as_problem_json(tmp_path):
    # Backend ports nobody listens on: every proxied route is a backend failure.
    settings = dataclasses.replace(
        Settings(),
        gateway_port=free_port(),
        catalog_port=free_port(),
        waitingroom_port=free_port(),
    )
    conf, prefix = rendered(tmp_path, settings)
    proc = subprocess.Popen(
        [nginx_binary(), "-c", str(conf), "-p", str(prefix), "-e", "stderr"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _listening(settings.gateway_port), 10, "nginx to listen")
        port, close = settings.gateway_port, b"Host: t\r\nConnection: close\r\n"
        cases = {
            b"GET /search?term=x HTTP/1.1\r\n" + close: (502, "backend_unavailable"),
            b"GET /metrics HTTP/1.1\r\n" + close: (404, "not_found"),
            b"POST /booking/reserve HTTP/1.1\r\n"
            + close
            + b"Content-Length: %d\r\n" % (settings.max_body_bytes + 1): (413, "payload_too_large"),
            b"NOT HTTP\r\n": (400, "bad_request"),
        }
        for request, (status, code) in cases.items():
            got_status, _, body = raw_request(port, request + b"\r\n")
            assert (got_status, body["status"], body["code"]) == (status, status, code), request
            assert {"type", "title", "status", "detail", "code"} <= body.keys()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("front_doors", [0, 1, 2])
def test_the_gateway_sends_booking_to_the_front_doors(tmp_path, front_doors):
    settings = dataclasses.replace(Settings(), frontdoor_processes=front_doors)
    text = rendered(tmp_path, settings)[0].read_text()
    upstream = re.search(r"upstream booking \{(.*?)\}", text, re.S)[1]
    servers = [int(p) for p in re.findall(r"server 127\.0\.0\.1:(\d+);", upstream)]
    # the front doors, on the ports after the waitingroom processes'; without any, the
    # waitingroom processes serve booking as well
    expected = settings.frontdoor_ports if front_doors else settings.waitingroom_ports
    assert servers == expected
    assert not set(settings.frontdoor_ports) & set(settings.waitingroom_ports)
    for path in ("/booking/", "/bookings/", "/me/", "/webhooks/"):
        assert re.search(rf"location {path}\s+\{{ proxy_pass http://booking; \}}", text), path
    assert re.search(r"location /queue/\s+\{ proxy_pass http://waitingroom; \}", text)
