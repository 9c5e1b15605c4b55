"""The gateway config itself (deploy/nginx.conf.template), rendered the way `make run`
renders it: it passes `nginx -t`, has room for every waitingroom process's fans, routes
every path in the SPEC to its service and booking to the front doors, and a real nginx
answers its own errors as problem+json."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from deploy import render_nginx
from tests.support import free_port, wait_until
from ticketing.config import Settings

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
    servers = re.findall(r"server 127\.0\.0\.1:(\d+) max_fails=0;", upstream)
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
    servers = [int(p) for p in re.findall(r"server 127\.0\.0\.1:(\d+) max_fails=0;", upstream)]
    # the front doors, on the ports after the waitingroom processes'; without any, the
    # waitingroom processes serve booking as well
    expected = settings.frontdoor_ports if front_doors else settings.waitingroom_ports
    assert servers == expected
    assert not set(settings.frontdoor_ports) & set(settings.waitingroom_ports)
    for path in ("/booking/", "/bookings/", "/me/", "/webhooks/"):
        assert re.search(rf"location {path}\s+\{{ proxy_pass http://booking; \}}", text), path
    assert re.search(r"location /queue/\s+\{ proxy_pass http://waitingroom; \}", text)
