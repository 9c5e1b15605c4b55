"""JWT work on the hot path, made cheap without leaving PyJWT for anything it checks.

Under a surge every fan brings a token never seen before and takes away a freshly signed
queue ticket, so both happen thousands of times a second per process. PyJWT 2.15 spent
~90 us on each here: its encode re-validates the key and re-serialises a constant header,
and its decode checks each base64 character with a Python generator (a security fix,
GHSA-hxm8-2xgr-2p9m). These keep exactly what those do, in C where Python looped:

- :class:`HS256Signer` writes the JWS compact form (RFC 7515) of HS256 with its header
  encoded once and the key prepared once. PyJWT still reads every token it writes (tested).
- :func:`strict_segment` is PyJWT's own segment check (no junk characters, at most two
  ``=``, canonical encoding) with the character scan done by a compiled regex.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any

import orjson
from jwt.exceptions import DecodeError
from jwt.utils import base64url_decode


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class HS256Signer:
    """Signs claims as an HS256 JWT with one key."""

    HEADER = _b64(orjson.dumps({"alg": "HS256", "typ": "JWT"}))

    def __init__(self, secret: str | bytes) -> None:
        self._key = secret.encode() if isinstance(secret, str) else secret

    def sign(self, claims: dict[str, Any]) -> str:
        signing_input = self.HEADER + b"." + _b64(orjson.dumps(claims))
        signature = hmac.digest(self._key, signing_input, hashlib.sha256)
        return (signing_input + b"." + _b64(signature)).decode()


_SEGMENT = re.compile(rb"[A-Za-z0-9_-]*={0,2}")


def strict_segment(segment: bytes, name: str) -> bytes:
    """A JWS segment decoded, refused exactly as PyJWT's ``_decode_base64url_segment``
    refuses it: non-alphabet characters, more than two ``=``, padding on a length that is
    not a multiple of 4, an impossible length, or a non-canonical encoding."""
    if _SEGMENT.fullmatch(segment) is None:
        raise DecodeError(f"Invalid {name} padding")
    stripped = segment.rstrip(b"=")
    if (len(stripped) != len(segment) and len(segment) % 4) or len(stripped) % 4 == 1:
        raise DecodeError(f"Invalid {name} padding")
    decoded = base64url_decode(stripped)
    if _b64(decoded) != stripped:
        raise DecodeError(f"Invalid {name} padding")
    return decoded


class HS256FastPath:
    """Reads the plain HS256 tokens this platform mints (header exactly as PyJWT and
    :class:`HS256Signer` write it; claims among sub, roles, iat, nbf, exp) in a few
    microseconds. It only ever accepts: anything else, valid or not (another header, other
    claims, a bad signature, an expired token), returns None and goes to PyJWT, which
    decides and explains. A property test holds it to PyJWT's answers."""

    _CLAIMS = frozenset({"sub", "roles", "iat", "nbf", "exp"})

    def __init__(self, secret: str | bytes, leeway: float) -> None:
        self._key = secret.encode() if isinstance(secret, str) else secret
        self._prefix = (HS256Signer.HEADER + b".").decode()
        self._leeway = leeway

    def read(self, token: str, now: float) -> dict[str, Any] | None:
        if not token.startswith(self._prefix) or token.count(".") != 2:
            return None
        signing_input, _, signature = token.rpartition(".")
        expected = _b64(hmac.digest(self._key, signing_input.encode(), hashlib.sha256))
        if not hmac.compare_digest(expected, signature.encode()):
            return None
        try:
            claims = orjson.loads(strict_segment(signing_input[len(self._prefix) :].encode(), ""))
        except (DecodeError, orjson.JSONDecodeError):
            return None
        if not isinstance(claims, dict) or not claims.keys() <= self._CLAIMS:
            return None
        if not isinstance(claims.get("sub"), str):
            return None
        times = [claims.get(name) for name in ("exp", "iat", "nbf")]
        if not all(t is None or (type(t) is int) for t in times):
            return None
        exp, iat, nbf = times
        if exp is None or exp <= now - self._leeway:
            return None
        if any(t is not None and t > now + self._leeway for t in (iat, nbf)):
            return None
        return claims
