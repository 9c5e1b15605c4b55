"""Bearer-token verification shared by every HTTP service, and the dev token endpoint.

Tokens are JWTs: HS256 with ``TICKETING_JWT_SECRET`` by default; under RS256, the
platform's own tokens are verified with its public keys (ticketing.keys, by ``kid``) and an
external identity provider's with the keys of its JWKS URL, its issuer and audience
required when configured (ticketing.idp). Only the configured algorithm is accepted, so
``alg: none`` and algorithm-confusion tokens are refused.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, cast

import jwt
from aiohttp import web
from jwt.algorithms import HMACAlgorithm

from ticketing.config import Settings
from ticketing.idp import ProviderKeys
from ticketing.jwt_speed import HS256FastPath, strict_segment
from ticketing.keys import platform_signer, platform_signs_rs256, public_keys
from ticketing.problems import Problem

LEEWAY_SECONDS = 5
_MEMO_SIZE = 50_000  # verified tokens remembered per process (~10 MB at most)


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self.algorithm = settings.jwt_algorithm
        # PyJWT inspects a raw key again on every decode (PEM parsing for RS256; PEM, SSH,
        # DER and JWK checks of an HMAC secret, a JSON parse that fails among them): a
        # fifth of a front door's CPU when every request brings a new fan. The key is
        # prepared once here instead.
        self._jwt = jwt.PyJWT()
        self._fast: HS256FastPath | None = None
        self.key: Any = None
        self._ring: dict[str, Any] = {}
        self._provider: ProviderKeys | None = None
        self._provider_options: dict[str, Any] = {}
        if self.algorithm == "RS256":
            self._ring = dict(public_keys(settings.jwt_public_key))
            if settings.jwt_jwks_url:
                self._provider = ProviderKeys(settings.jwt_jwks_url)
                required = ["sub", "exp"]
                if settings.jwt_issuer:
                    self._provider_options["issuer"] = settings.jwt_issuer
                    required.append("iss")
                if settings.jwt_audience:
                    self._provider_options["audience"] = settings.jwt_audience
                    required.append("aud")
                self._provider_options["options"] = {"require": required}
        else:
            self.key = settings.jwt_secret
            self._jwt._jws.unregister_algorithm("HS256")
            self._jwt._jws.register_algorithm("HS256", _PreparedHMAC(settings.jwt_secret))
        # PyJWT's base64 segment check scans characters in Python (half its decode time).
        self._jwt._jws._decode_base64url_segment = strict_segment  # type: ignore[method-assign]
        if self.algorithm == "HS256":
            self._fast = HS256FastPath(settings.jwt_secret, LEEWAY_SECONDS)
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def verify(self, token: str) -> Principal:
        """The principal of a valid token. A token already verified is answered from a
        bounded memo (its expiry checked again): a fan in the queue polls with the same
        token every few seconds, and verifying costs ~0.1 ms of CPU each time."""
        known = self._verified.get(token)
        if known is not None and known[1] + LEEWAY_SECONDS > time.time():
            return known[0]
        if not token.isascii():
            # A JWT is base64url and dots. Anything else (bytes that are not UTF-8 arrive
            # as surrogates) would make PyJWT raise UnicodeEncodeError: a 500, not a 401.
            raise _unauthorized("invalid_token", "The access token is not valid.")
        principal, expires = self._verify(token)
        if len(self._verified) >= _MEMO_SIZE:
            self._verified.popitem(last=False)  # the oldest: a fan long gone, most likely
        self._verified[token] = (principal, expires)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        claims = None if self._fast is None else self._fast.read(token, time.time())
        if claims is not None:
            return self._principal(claims)
        try:
            key, extra = self._key_for(token)
            claims = self._jwt.decode(
                token,
                key,
                algorithms=[self.algorithm],
                leeway=LEEWAY_SECONDS,
                **({"options": {"require": ["sub", "exp"]}} | extra),
            )
        except jwt.ExpiredSignatureError as exc:
            raise _unauthorized("token_expired", "The access token has expired.") from exc
        except jwt.InvalidTokenError as exc:
            raise _unauthorized("invalid_token", "The access token is not valid.") from exc
        return self._principal(claims)

    def _key_for(self, token: str) -> tuple[Any, dict[str, Any]]:
        """The key that must have signed ``token`` and the checks its issuer asks for: one
        of the platform's by kid (or its only one, for a token naming none), else the
        external provider's."""
        if self.algorithm == "HS256":
            return self.key, {}
        kid = jwt.get_unverified_header(token).get("kid")
        if not isinstance(kid, str | None):
            raise jwt.InvalidTokenError("kid")
        own = self._ring.get(kid) if kid is not None else None
        if own is None and kid is None and len(self._ring) == 1:
            own = next(iter(self._ring.values()))
        if own is not None:
            return own, {}
        external = None if self._provider is None else self._provider.key(kid)
        if external is None:
            raise jwt.InvalidTokenError("no key for this token")
        return external, self._provider_options

    def _principal(self, claims: dict[str, Any]) -> tuple[Principal, float]:
        sub = claims.get("sub")
        roles = claims.get("roles", [])
        if not isinstance(sub, str) or not sub:
            raise _unauthorized("invalid_token", "The access token has no subject.")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise _unauthorized("invalid_token", "The access token's roles are malformed.")
        return Principal(user_id=sub, roles=frozenset(roles)), float(claims["exp"])


class _PreparedHMAC(HMACAlgorithm):
    """HS256 that checks its one secret once, not on every token; any other key is still
    checked in full."""

    def __init__(self, secret: str) -> None:
        super().__init__(HMACAlgorithm.SHA256)
        self._secret = secret
        self._prepared = super().prepare_key(secret)

    def prepare_key(self, key: str | bytes) -> bytes:
        if key is self._secret:
            return self._prepared
        return super().prepare_key(key)


def _unauthorized(code: str, detail: str) -> Problem:
    return Problem(401, code, detail, headers={"WWW-Authenticate": 'Bearer realm="ticketing"'})


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


VERIFIER_KEY = web.AppKey("token_verifier", TokenVerifier)


_PRINCIPAL = web.RequestKey("principal", object)
_UNSET = object()


def optional_principal(request: web.Request) -> Principal | None:
    """The verified caller, or None without a token; verified once per request."""
    # get(), not "in": a Request's __contains__ raises and catches a KeyError when absent.
    known = request.get(_PRINCIPAL, _UNSET)
    if known is not _UNSET:
        return cast("Principal | None", known)
    token = bearer_token(request)
    principal = None if token is None else request.app[VERIFIER_KEY].verify(token)
    request[_PRINCIPAL] = principal
    return principal


def require_user(request: web.Request) -> Principal:
    principal = optional_principal(request)
    if principal is None:
        raise _unauthorized("unauthorized", "This route needs a bearer token.")
    return principal


def require_admin(request: web.Request) -> Principal:
    principal = require_user(request)
    if not principal.is_admin:
        raise Problem(403, "forbidden", "This route needs the admin role.")
    return principal


def issue_dev_token(settings: Settings, user_id: str, roles: list[str]) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": user_id,
        "roles": roles,
        "iat": now,
        "exp": now + settings.dev_token_ttl_seconds,
    }
    if platform_signs_rs256(settings):
        token = platform_signer(settings).sign(claims)
    else:
        token = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": settings.dev_token_ttl_seconds,
    }
