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

    _HEADER = _b64(orjson.dumps({"alg": "HS256", "typ": "JWT"}))

    def __init__(self, secret: str | bytes) -> None:
        self._key = secret.encode() if isinstance(secret, str) else secret

    def sign(self, claims: dict[str, Any]) -> str:
        signing_input = self._HEADER + b"." + _b64(orjson.dumps(claims))
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
