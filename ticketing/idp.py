"""An external identity provider's signing keys, from its JWKS URL.

Its access tokens name their key by ``kid``. The set is fetched on first need and kept;
a kid not in it fetches the set again (a new key after the provider's rollover), but at
most once per :data:`REFETCH_SECONDS`, so tokens with made-up kids cannot make every
request wait on the provider. Fetching blocks the caller (``verify`` is synchronous) for at
most :data:`TIMEOUT_SECONDS`, once per interval at worst.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import jwt

log = logging.getLogger(__name__)

REFETCH_SECONDS = 60.0
TIMEOUT_SECONDS = 2
ALGORITHMS = ("RS256",)


class ProviderKeys:
    def __init__(self, jwks_url: str) -> None:
        self._client = jwt.PyJWKClient(jwks_url, cache_keys=False, timeout=TIMEOUT_SECONDS)
        self._keys: dict[str | None, Any] = {}
        self._fetched_at = float("-inf")

    def key(self, kid: str | None) -> Any | None:
        """The provider's public key ``kid`` (or its only key when the token names none)."""
        found = self._lookup(kid)
        if found is None and time.monotonic() - self._fetched_at >= REFETCH_SECONDS:
            self._fetch()
            found = self._lookup(kid)
        return found

    def _lookup(self, kid: str | None) -> Any | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            signing = self._client.get_signing_keys(refresh=True)
        except jwt.PyJWKClientError as exc:
            log.warning("identity provider keys unavailable: %s", exc)
            return
        self._keys = {k.key_id: k.key for k in signing if k.algorithm_name in (*ALGORITHMS, None)}
