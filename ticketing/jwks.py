"""``GET /.well-known/jwks.json``: the public keys that verify the platform's tokens (RFC
7517), for the gateway, other services and anyone holding a token of ours. The waitingroom
serves it, the service that signs."""

from __future__ import annotations

from aiohttp import web

from ticketing.api import Api, Ok, Shape
from ticketing.keys import jwks
from ticketing.web import SETTINGS_KEY

JWKS_API = Api()


class Jwk(Shape):
    """An RSA public key."""

    kty: str
    use: str
    alg: str
    kid: str
    n: str
    e: str


class JwkSet(Shape):
    """The keys in use: the current one, and the previous one while keys roll over (empty
    under HS256)."""

    keys: list[Jwk]


@JWKS_API.get(
    "/.well-known/jwks.json",
    summary="The public keys that verify the platform's tokens (JWK set)",
    replies=[Ok(200, "The key set", shape=JwkSet)],
)
async def jwks_json(request: web.Request) -> web.Response:
    # Clients may keep it a few minutes: a new key is published before it signs anything.
    return web.json_response(
        jwks(request.app[SETTINGS_KEY]), headers={"Cache-Control": "public, max-age=300"}
    )
