"""Who the client is, through a real nginx rendered from the template and a real service
(create_base_app) behind it: nginx takes X-Forwarded-For only from a trusted proxy, a
service takes X-Real-IP only from one, and the limits count the address that results. Also
what the gateway logs (never a query string's credentials) and nosniff on every answer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from deploy.gateway import command, gateway_env
from deploy.render_nginx import write
from tests.support import auth_header, eventually, free_port, settings_with
from ticketing.config import ConfigError, Settings
from ticketing.ratelimit import client_address
from ticketing.web import create_base_app

CLIENT = "203.0.113.7"
NOBODY_OF_OURS = "192.0.2.0/24"  # TEST-NET-1: no peer in these tests comes from it


def _probe(settings: Settings) -> web.Application:
    """A service as every service is built, with one route under the catalog's prefix that
    says which address the service counts the caller as."""
    app = create_base_app(settings, "probe")

    async def whoami(request: web.Request) -> web.Response:
        return web.json_response({"address": client_address(request)})

    app.router.add_get("/events/whoami", whoami)
    return app


@contextlib.asynccontextmanager
async def _in_process(settings: Settings) -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(_probe(settings)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def _whoami(client: TestClient, headers: dict[str, str]) -> str:
    async with client.get("/events/whoami", headers=headers) as resp:
        assert resp.status == 200
        address: str = (await resp.json())["address"]
        return address


async def test_a_service_believes_x_real_ip_only_from_a_trusted_peer(settings):
    # The test client connects over loopback, a trusted proxy by default.
    async with _in_process(settings) as trusted:
        assert await _whoami(trusted, {"X-Real-IP": CLIENT}) == CLIENT
        assert await _whoami(trusted, {"X-Real-IP": "2001:DB8::0:1"}) == "2001:db8::1"
        # Not an address: the peer is the client.
        assert await _whoami(trusted, {"X-Real-IP": "evil, 1.2.3.4"}) == "127.0.0.1"
        assert await _whoami(trusted, {}) == "127.0.0.1"
    # Control: loopback not trusted, the same header is the client's own claim, ignored.
    async with _in_process(settings_with(settings, trusted_proxies=NOBODY_OF_OURS)) as other:
        assert await _whoami(other, {"X-Real-IP": CLIENT}) == "127.0.0.1"


async def test_a_spoofed_x_real_ip_does_not_buy_an_untrusted_client_a_new_bucket(settings):
    """Anonymous callers are limited by address: from an untrusted peer, a new X-Real-IP on
    every request is still the one peer and its one bucket; from a trusted one, each named
    address has its own."""
    limited = {
        "rate_limit_per_minute": 60,
        "rate_limit_burst": 3,
        "redis_prefix": f"{settings.redis_prefix}addr-{time.time_ns()}:",
    }
    untrusted = settings_with(settings, trusted_proxies=NOBODY_OF_OURS, **limited)
    async with _in_process(untrusted) as client:
        statuses = [
            (await client.get("/no-such", headers={"X-Real-IP": f"198.51.100.{i}"})).status
            for i in range(5)
        ]
        assert statuses == [404, 404, 404, 429, 429]
    # Control: the same requests from a trusted peer, each address in its own bucket.
    trusted = settings_with(settings, **{**limited, "redis_prefix": limited["redis_prefix"] + "t:"})
    async with _in_process(trusted) as client:
        statuses = [
            (await client.get("/no-such", headers={"X-Real-IP": f"198.51.100.{i}"})).status
            for i in range(5)
        ]
        assert statuses == [404] * 5


def test_the_setting_takes_cidrs_only():
    assert Settings.from_env({"TICKETING_ENV": "dev"}).trusted_proxies == "127.0.0.1/32,::1/128"
    given = {"TICKETING_ENV": "dev", "TICKETING_TRUSTED_PROXIES": " 10.0.0.0/8, fd00::/8,10.1.2.3"}
    assert Settings.from_env(given).trusted_proxies == "10.0.0.0/8,fd00::/8,10.1.2.3/32"
    for wrong in ("10.0.0.1/8", "lb.internal", "10.0.0.0/33"):
        with pytest.raises(ConfigError, match="TICKETING_TRUSTED_PROXIES"):
            Settings.from_env({"TICKETING_ENV": "dev", "TICKETING_TRUSTED_PROXIES": wrong})


# --- through the gateway --------------------------------------------------------------------


class Gateway:
    def __init__(self, settings: Settings, prefix: Path, error_log: Path) -> None:
        self.base = f"http://127.0.0.1:{settings.gateway_port}"
        self.access_log = prefix / "logs" / "access.log"
        self.error_log = error_log  # nginx's stderr
        self.waitingroom_ports = settings.waitingroom_ports


@contextlib.asynccontextmanager
async def _gateway(
    tmp_path: Path, settings: Settings, gateway_trusts: str, waitingrooms: int = 1
) -> AsyncIterator[Gateway]:
    """nginx rendered with ``gateway_trusts`` as its trusted proxies, in front of the probe
    service (as catalog_api) running ``settings``; stopped (its log flushed) on leaving."""
    service_port = free_port()
    service = settings_with(settings, catalog_port=service_port)
    front = settings_with(
        service,
        trusted_proxies=gateway_trusts,
        gateway_port=free_port(),
        gateway_metrics_port=free_port(),
        waitingroom_port=free_port(),
        waitingroom_processes=waitingrooms,
        frontdoor_processes=0,
    )
    runner = web.AppRunner(_probe(service))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", service_port).start()
    conf, prefix = tmp_path / "nginx.conf", tmp_path / "nginx"
    write(front, conf, prefix)
    log = tmp_path / "nginx.out"
    with log.open("wb") as out:
        nginx = await asyncio.create_subprocess_exec(
            *command(conf, prefix),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=gateway_env(front, {**os.environ, **front.to_env()}),
        )
    gateway = Gateway(front, prefix, log)
    try:
        async with aiohttp.ClientSession() as http:

            async def up() -> bool:
                assert nginx.returncode is None, log.read_text()
                try:
                    async with http.get(gateway.base + "/events/whoami") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(up, bool, 20, "the gateway")
        yield gateway
    finally:
        nginx.send_signal(signal.SIGQUIT)  # a graceful stop writes the buffered access log
        await asyncio.wait_for(nginx.wait(), 10)
        await runner.cleanup()


async def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers or {}) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def test_the_gateway_names_the_client_a_trusted_proxy_forwarded(settings, tmp_path):
    """A load balancer on loopback (trusted by default) forwards a fan at CLIENT: the
    gateway counts and logs CLIENT and tells the service, which believes the gateway."""
    async with (
        _gateway(tmp_path, settings, "127.0.0.1/32,::1/128") as gateway,
        aiohttp.ClientSession() as http,
    ):
        # An address the fan put in the header themselves comes first; the balancer's
        # own addition, last, is the one that counts (real_ip_recursive).
        forwarded = {"X-Forwarded-For": f"198.51.100.99, {CLIENT}"}
        async with http.get(gateway.base + "/events/whoami", headers=forwarded) as resp:
            assert (await resp.json())["address"] == CLIENT
        # A fan straight at the gateway (no header) is its own peer.
        async with http.get(gateway.base + "/events/whoami") as resp:
            assert (await resp.json())["address"] == "127.0.0.1"
        # The gateway replaces, not passes on, a fan's own X-Real-IP.
        spoofed = {"X-Real-IP": "198.51.100.1"}
        async with http.get(gateway.base + "/events/whoami", headers=spoofed) as resp:
            assert (await resp.json())["address"] == "127.0.0.1"
    # The log's address is the one counted too. Each nginx worker writes its own buffer,
    # so the lines need not be in order; the others are these and the readiness probes.
    logged = [line.split()[0] for line in gateway.access_log.read_text().splitlines()]
    assert logged.count(CLIENT) == 1 and set(logged) == {CLIENT, "127.0.0.1"}


async def test_the_gateway_ignores_x_forwarded_for_from_an_untrusted_peer(settings, tmp_path):
    """Control: the same forwarded request from a peer the gateway does not trust names
    nobody; the service counts the peer (the service still trusts the gateway)."""
    async with _gateway(tmp_path, settings, NOBODY_OF_OURS) as gateway:
        forwarded = {"X-Forwarded-For": CLIENT, "X-Real-IP": CLIENT}
        _, _, body = await _get(gateway.base + "/events/whoami", forwarded)
        assert b'"127.0.0.1"' in body
    logged = [line.split()[0] for line in gateway.access_log.read_text().splitlines()]
    assert logged and set(logged) == {"127.0.0.1"}


async def test_the_logs_never_carry_credentials(settings, tmp_path):
    secret, ticket = f"tok-{time.time_ns()}", f"tkt-{time.time_ns()}"
    marker = f"probe-{time.time_ns()}"
    token = auth_header(settings, "logged")
    async with _gateway(tmp_path, settings, "127.0.0.1/32") as gateway:
        url = f"{gateway.base}/events/whoami?token={secret}&ticket={ticket}&city=Lyon"
        status, _, _ = await _get(url, token)
        assert status == 200
        # No waitingroom runs: both are 502, and nginx's error log tells of the failure.
        status, _, _ = await _get(f"{gateway.base}/queue/1/ws?token={secret}&ticket={ticket}")
        assert status == 502
        status, _, _ = await _get(f"{gateway.base}/queue/1/status?probe={marker}")
        assert status == 502
    logged = gateway.access_log.read_text()
    # Control: the requests are in the log, by their paths.
    assert "GET /events/whoami HTTP/1.1" in logged and "GET /queue/1/ws HTTP/1.1" in logged
    assert secret not in logged and ticket not in logged
    assert token["Authorization"].split()[1] not in logged
    errors = gateway.error_log.read_text()
    # Control: the error log writes a failed request's line, query and all...
    assert f"/queue/1/status?probe={marker}" in errors, errors
    # ...but never the websocket's, whose query is a credential.
    assert secret not in errors and ticket not in errors


async def test_every_answer_says_nosniff(settings, tmp_path):
    async with _in_process(settings) as client:
        for path in ("/events/whoami", "/no-such", "/healthz"):
            async with client.get(path) as resp:
                assert resp.headers.getall("X-Content-Type-Options") == ["nosniff"], path
    async with _gateway(tmp_path, settings, "127.0.0.1/32") as gateway:
        answers = {
            "/events/whoami": 200,  # the service's, passed on: once, not twice
            "/no-such": 404,  # the gateway's own problem document
            "/queue/1/ws": 502,  # a location with an add_header of its own (Retry-After)
            "/openapi.json": None,  # served from a file by the gateway
        }
        for path, expected in answers.items():
            async with (
                aiohttp.ClientSession() as http,
                http.get(gateway.base + path) as resp,
            ):
                if expected is not None:
                    assert resp.status == expected, path
                assert resp.headers.getall("X-Content-Type-Options") == ["nosniff"], path


async def test_a_waitingroom_back_is_reached_at_once_not_after_fail_timeout(settings, tmp_path):
    """Its processes restart together: with nginx's default max_fails=1 every server was
    shunned for fail_timeout (10 s) and the gateway answered 502 that long after they were
    back (bench/chaos.py). Now the first request after the restart reaches it. (Two
    processes: nginx never shuns the only server of a group.)"""
    async with _gateway(tmp_path, settings, "127.0.0.1/32", waitingrooms=2) as gateway:
        status, _, _ = await _get(gateway.base + "/queue/1/status")
        assert status == 502  # nothing listens: the server failed once
        app = web.Application()

        async def status_route(request: web.Request) -> web.Response:
            return web.json_response({"back": True})

        app.router.add_get("/queue/1/status", status_route)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            for port in gateway.waitingroom_ports:
                await web.TCPSite(runner, "127.0.0.1", port).start()
            started = time.monotonic()
            status, _, body = await _get(gateway.base + "/queue/1/status")
            assert (status, body) == (200, b'{"back": true}'), body
            assert time.monotonic() - started < 1.0
        finally:
            await runner.cleanup()
