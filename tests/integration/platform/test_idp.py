"""Access tokens of an external identity provider (ticketing/idp.py): verified with the
keys of its JWKS URL, served here by a real HTTP server, with its issuer and audience
required; and the platform's own key set at /.well-known/jwks.json."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support import settings_with
from ticketing import idp, keys
from ticketing.auth import require_user
from ticketing.config import Settings
from ticketing.web import create_base_app
from waitingroom.app import create_app as create_waitingroom

ISSUER = "https://idp.example/"
AUDIENCE = "ticketing-api"


class Provider:
    """A JWKS endpoint whose keys a test changes, counting the fetches."""

    def __init__(self) -> None:
        self.keys: list[rsa.RSAPrivateKey] = [_key()]
        self.fetches = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.fetches += 1
                body = json.dumps(
                    {"keys": [keys.jwk_of(k.public_key()) for k in provider.keys]}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"

    def token(self, key: rsa.RSAPrivateKey | None = None, **claims: object) -> str:
        key = key or self.keys[0]
        body = {
            "sub": "idp-user",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "exp": int(time.time()) + 60,
            "scope": "openid",
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key, "RS256", headers={"kid": keys.kid_of(key.public_key())})


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def provider() -> Iterator[Provider]:
    running = Provider()
    thread = threading.Thread(target=running.server.serve_forever, daemon=True)
    thread.start()
    yield running
    running.server.shutdown()
    running.server.server_close()


async def _client(app: web.Application) -> TestClient:
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def _probe(settings: Settings) -> web.Application:
    app = create_base_app(settings, "probe")

    async def me(request: web.Request) -> web.Response:
        return web.json_response({"user": require_user(request).user_id})

    app.router.add_get("/me", me)
    return app


async def _answers(client: TestClient, tokens: dict[str, str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, token in tokens.items():
        resp = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
        body = await resp.json()
        out[name] = body["user"] if resp.status == 200 else (resp.status, body["code"])
    return out


async def test_provider_tokens_with_its_issuer_and_audience(settings, provider, monkeypatch):
    rs = settings_with(
        settings,
        jwt_algorithm="RS256",
        jwt_public_key="",
        jwt_jwks_url=provider.url,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
    )
    client = await _client(_probe(rs))
    try:
        stranger = _key()
        answers = await _answers(
            client,
            {
                "good": provider.token(),
                "wrong audience": provider.token(aud="another-api"),
                "no audience": provider.token(aud=None),
                "wrong issuer": provider.token(iss="https://evil.example/"),
                "no issuer": provider.token(iss=None),
                "expired": provider.token(exp=int(time.time()) - 60),
                "unknown key": provider.token(stranger),
                "HS256": jwt.encode(
                    {"sub": "x", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60},
                    settings.jwt_secret,
                ),
            },
        )
        refused = (401, "invalid_token")
        assert answers == {
            "good": "idp-user",
            "wrong audience": refused,
            "no audience": refused,
            "wrong issuer": refused,
            "no issuer": refused,
            "expired": (401, "token_expired"),
            "unknown key": refused,
            "HS256": refused,
        }
        # Made-up kids do not each cost a fetch: the set was fetched at first need, and a
        # kid not in it fetches again only once the interval has passed.
        assert provider.fetches == 1
        assert await _answers(client, {"again": provider.token(stranger, sub="b")}) == {
            "again": refused
        }
        assert provider.fetches == 1

        # The provider rolls its key over: its new key is fetched once the interval allows.
        provider.keys.insert(0, _key())
        monkeypatch.setattr(idp, "REFETCH_SECONDS", 0.0)
        assert await _answers(client, {"new key": provider.token(sub="rolled")}) == {
            "new key": "rolled"
        }
        assert provider.fetches == 2
    finally:
        await client.close()


async def test_platform_and_provider_tokens_side_by_side(settings, provider, tmp_path: Path):
    keys.init(tmp_path)
    rs = settings_with(
        settings,
        jwt_algorithm="RS256",
        jwt_public_key=(tmp_path / keys.PUBLIC).read_text(),
        jwt_private_key_file=str(tmp_path / keys.SIGNING),
        jwt_jwks_url=provider.url,
        jwt_audience=AUDIENCE,
    )
    own = keys.platform_signer(rs).sign({"sub": "fan", "exp": int(time.time()) + 60})
    client = await _client(_probe(rs))
    try:
        answers = await _answers(client, {"own": own, "provider": provider.token(iss=None)})
        assert answers == {"own": "fan", "provider": "idp-user"}
    finally:
        await client.close()


async def test_the_waitingroom_publishes_the_platform_keys(settings, tmp_path: Path):
    keys.init(tmp_path)
    keys.rotate(tmp_path)
    rs = settings_with(
        settings,
        jwt_algorithm="RS256",
        jwt_public_key=(tmp_path / keys.PUBLIC).read_text(),
        jwt_private_key_file=str(tmp_path / keys.SIGNING),
    )
    client = await _client(create_waitingroom(rs))
    try:
        resp = await client.get("/.well-known/jwks.json")
        assert resp.status == 200
        published = (await resp.json())["keys"]
        # The current key and the previous one, mid-rollover; each verifies what it signed.
        assert len(published) == 2
        assert published[0]["kid"] == keys.platform_signer(rs).kid
        resp = await client.post("/auth/dev-token", json={"user_id": "alice"})
        token = (await resp.json())["access_token"]
        by_kid = {k["kid"]: jwt.PyJWK(k).key for k in published}
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, by_kid[header["kid"]], algorithms=["RS256"])
        assert claims["sub"] == "alice"
        resp = await client.get("/me/bookings", headers={"Authorization": f"Bearer {token}"})
        # Past the token check (no booking worker runs here: its 503), which a forgery is not.
        assert resp.status != 401, await resp.text()
        forged = token[:-8] + ("A" * 8 if not token.endswith("A" * 8) else "B" * 8)
        resp = await client.get("/me/bookings", headers={"Authorization": f"Bearer {forged}"})
        assert resp.status == 401
    finally:
        await client.close()
    hs_client = await _client(create_waitingroom(settings))
    try:
        resp = await hs_client.get("/.well-known/jwks.json")
        assert resp.status == 200 and await resp.json() == {"keys": []}
    finally:
        await hs_client.close()
