"""The shared HTTP core on real Redis: auth, dev tokens, rate limits, problem documents."""

from __future__ import annotations

import time

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support import auth_header, free_port, make_token, settings_with
from ticketing.auth import require_admin, require_user
from ticketing.web import create_base_app
from waitingroom.app import create_app as create_waitingroom

OTHER_SECRET = "a-different-secret-that-is-long-enough"


def _probe_app(settings) -> web.Application:
    """A base app with routes that exercise the shared auth and error handling."""
    app = create_base_app(settings, "probe")

    async def me(request: web.Request) -> web.Response:
        principal = require_user(request)
        return web.json_response({"user": principal.user_id, "admin": principal.is_admin})

    async def admin(request: web.Request) -> web.Response:
        require_admin(request)
        return web.json_response({"ok": True})

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internal detail /etc/passwd")

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"size": len(await request.read())})

    app.router.add_get("/me", me)
    app.router.add_get("/admin-only", admin)
    app.router.add_get("/boom", boom)
    app.router.add_post("/echo", echo)
    return app


async def _client(app: web.Application) -> TestClient:
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def probe(settings):
    client = await _client(_probe_app(settings))
    yield client
    await client.close()


def _problem(resp, body, status: int, code: str) -> None:
    assert resp.status == status, body
    assert resp.content_type == "application/problem+json"
    assert body["code"] == code
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()


async def test_valid_token_is_accepted(probe, settings):
    resp = await probe.get("/me", headers=auth_header(settings, "bob", ["admin"]))
    assert resp.status == 200
    assert await resp.json() == {"user": "bob", "admin": True}


@pytest.mark.parametrize(
    ("make_bad", "code"),
    [
        (lambda s: None, "unauthorized"),
        (lambda s: "Basic Ym9iOnB3", "unauthorized"),
        (lambda s: "Bearer " + make_token(s, ttl=-60), "token_expired"),
        (lambda s: "Bearer " + make_token(s)[:-4] + "AAAA", "invalid_token"),
        (lambda s: "Bearer " + jwt.encode({"sub": "x", "exp": 9e9}, OTHER_SECRET), "invalid_token"),
        # alg none: a token with no signature at all must never pass.
        (
            lambda s: "Bearer " + jwt.encode({"sub": "x", "exp": 9e9}, None, algorithm="none"),
            "invalid_token",
        ),
        (lambda s: "Bearer " + jwt.encode({"exp": 9e9}, s.jwt_secret), "invalid_token"),
        (lambda s: "Bearer " + jwt.encode({"sub": "x"}, s.jwt_secret), "invalid_token"),
        (lambda s: "Bearer not.a.jwt", "invalid_token"),
    ],
    ids=[
        "missing",
        "basic",
        "expired",
        "tampered",
        "other-secret",
        "alg-none",
        "no-sub",
        "no-exp",
        "garbage",
    ],
)
async def test_bad_tokens_are_refused(probe, settings, make_bad, code):
    header = make_bad(settings)
    resp = await probe.get("/me", headers={"Authorization": header} if header else {})
    _problem(resp, await resp.json(), 401, code)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_tampered_claims_are_refused(probe, settings):
    # Swap in an admin payload under the original signature.
    header, _, signature = make_token(settings, "eve").split(".")
    forged = jwt.encode({"sub": "eve", "roles": ["admin"], "exp": 9e9}, "k" * 32).split(".")[1]
    resp = await probe.get(
        "/admin-only", headers={"Authorization": f"Bearer {header}.{forged}.{signature}"}
    )
    _problem(resp, await resp.json(), 401, "invalid_token")


async def test_admin_route_needs_the_admin_role(probe, settings):
    resp = await probe.get("/admin-only", headers=auth_header(settings, "carol", ["fan"]))
    _problem(resp, await resp.json(), 403, "forbidden")
    resp = await probe.get("/admin-only", headers=auth_header(settings, "carol", ["admin"]))
    assert resp.status == 200


async def test_rs256_tokens_from_an_identity_provider(settings):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    rs_settings = settings_with(settings, jwt_algorithm="RS256", jwt_public_key=public_pem)
    client = await _client(_probe_app(rs_settings))
    try:
        good = jwt.encode({"sub": "idp-user", "exp": time.time() + 60}, key, algorithm="RS256")
        resp = await client.get("/me", headers={"Authorization": f"Bearer {good}"})
        assert resp.status == 200
        assert (await resp.json())["user"] == "idp-user"
        # Algorithm confusion: an HS256 token signed with the public key as the secret.
        confused = jwt.encode({"sub": "x", "exp": time.time() + 60}, settings.jwt_secret)
        resp = await client.get("/me", headers={"Authorization": f"Bearer {confused}"})
        _problem(resp, await resp.json(), 401, "invalid_token")
    finally:
        await client.close()


async def test_dev_token_endpoint_issues_working_tokens(settings):
    client = await _client(create_waitingroom(settings))
    try:
        resp = await client.post("/auth/dev-token", json={"user_id": "alice", "roles": ["admin"]})
        assert resp.status == 200
        body = await resp.json()
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == settings.dev_token_ttl_seconds
        claims = jwt.decode(body["access_token"], settings.jwt_secret, algorithms=["HS256"])
        assert claims["sub"] == "alice" and claims["roles"] == ["admin"]
        for bad in ({"roles": []}, {"user_id": 7}, {"user_id": "a", "roles": "admin"}):
            resp = await client.post("/auth/dev-token", json=bad)
            _problem(resp, await resp.json(), 400, "validation_error")
        resp = await client.post(
            "/auth/dev-token", data=b"{not json", headers={"Content-Type": "application/json"}
        )
        _problem(resp, await resp.json(), 400, "validation_error")
    finally:
        await client.close()


async def test_dev_token_endpoint_is_absent_outside_dev(settings):
    for env in ("test", "prod"):
        client = await _client(create_waitingroom(settings_with(settings, env=env)))
        try:
            resp = await client.post("/auth/dev-token", json={"user_id": "alice"})
            _problem(resp, await resp.json(), 404, "not_found")
        finally:
            await client.close()


async def test_errors_are_problem_documents_without_internals(probe):
    resp = await probe.get("/no/such/route")
    _problem(resp, await resp.json(), 404, "not_found")
    resp = await probe.delete("/me")
    _problem(resp, await resp.json(), 405, "method_not_allowed")
    assert "GET" in resp.headers["Allow"]
    resp = await probe.get("/boom")
    text = await resp.text()
    _problem(resp, await resp.json(), 500, "internal_error")
    assert "passwd" not in text and "Traceback" not in text and "RuntimeError" not in text


async def test_oversized_body_is_413(probe, settings):
    resp = await probe.post("/echo", data=b"x" * (settings.max_body_bytes + 1))
    _problem(resp, await resp.json(), 413, "payload_too_large")
    resp = await probe.post("/echo", data=b"x" * 100)
    assert resp.status == 200


async def test_rate_limit_holds_across_processes(settings, run_id):
    # Two independent apps (as two processes would be) share one Redis bucket per client.
    limited = settings_with(
        settings,
        rate_limit_per_minute=60,
        rate_limit_burst=5,
        redis_prefix=f"{settings.redis_prefix}rl-{time.time_ns()}:",
    )
    a, b = await _client(_probe_app(limited)), await _client(_probe_app(limited))
    try:
        me = auth_header(limited, "greedy")
        statuses = [(await a.get("/me", headers=me)).status for _ in range(3)]
        statuses += [(await b.get("/me", headers=me)).status for _ in range(3)]
        assert statuses[:5] == [200] * 5
        assert statuses[5] == 429
        resp = await a.get("/me", headers=me)
        _problem(resp, await resp.json(), 429, "rate_limited")
        assert 1 <= int(resp.headers["Retry-After"]) <= 2
        # Another client has its own bucket, in either process.
        assert (await b.get("/me", headers=auth_header(limited, "patient"))).status == 200
        # Anonymous clients are limited by the address the gateway reports.
        ip = {"X-Real-IP": "203.0.113.9"}
        anon = [(await a.get("/no-such", headers=ip)).status for _ in range(6)]
        assert anon == [404] * 5 + [429]
        assert (await b.get("/no-such", headers={"X-Real-IP": "203.0.113.10"})).status == 404
        # Control: with a generous limit the same burst passes, so the 429s above came from
        # the limit and not from something else.
        generous = await _client(_probe_app(settings))
        try:
            assert (await generous.get("/me", headers=me)).status == 200
        finally:
            await generous.close()
    finally:
        await a.close()
        await b.close()


async def test_rate_limiter_fails_open_when_redis_is_down(settings):
    down = settings_with(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = await _client(_probe_app(down))
    try:
        started = time.monotonic()
        resp = await client.get("/me", headers=auth_header(down))
        assert resp.status == 200
        assert time.monotonic() - started < 3
        resp = await client.get("/healthz")
        body = await resp.json()
        _problem(resp, body, 503, "backend_unavailable")
        assert body["components"]["redis"].startswith("down")
    finally:
        await client.close()
