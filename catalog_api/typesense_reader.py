"""The read path's two Typesense calls (search, fetch one document) over aiohttp.

Profiling catalog_api under the search benchmark (py-spy, 16 connections) put about three
quarters of its CPU inside the typesense client's httpx transport, which made the API the
bottleneck in front of a Typesense that had cores to spare. These are two GET requests on
a keep-alive session of the HTTP library the service already runs on; collection and
document writes stay with the typesense client in search_sync.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import aiohttp

from ticketing.config import Settings


class TypesenseUnavailable(Exception):
    """Typesense did not answer, or answered with an error that is not about the input."""


class DocumentNotFound(Exception):
    pass


class TypesenseReader:
    def __init__(self, settings: Settings) -> None:
        self._base = settings.typesense_url
        self._collection = quote(settings.typesense_collection, safe="")
        # identity: on loopback, gzip only costs CPU at both ends (Typesense compresses
        # whenever the client offers it, and aiohttp offers it by default).
        self._headers = {
            "X-TYPESENSE-API-KEY": settings.typesense_api_key,
            "Accept-Encoding": "identity",
        }
        self._timeout = aiohttp.ClientTimeout(total=settings.typesense_timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        # Keep-alive connections sized for one busy process; Typesense pools its own threads.
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            timeout=self._timeout,
            connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=30),
            json_serialize=json.dumps,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        if self._session is None:
            raise RuntimeError("TypesenseReader.open() was not awaited")
        try:
            async with self._session.get(self._base + path, params=params) as resp:
                if resp.status == 404:
                    raise DocumentNotFound((await resp.json(loads=json.loads)).get("message", ""))
                if resp.status != 200:
                    body = await resp.text()
                    raise TypesenseUnavailable(f"HTTP {resp.status}: {body[:200]}")
                answer: dict[str, Any] = await resp.json(loads=json.loads)
                return answer
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
            raise TypesenseUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def search(self, params: dict[str, Any]) -> dict[str, Any]:
        # aiohttp needs plain strings in query parameters.
        query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
        try:
            return await self._get(f"/collections/{self._collection}/documents/search", query)
        except DocumentNotFound as exc:
            # The alias itself is missing (no index built yet): search cannot answer.
            raise TypesenseUnavailable("search collection not found") from exc

    async def document(self, document_id: str) -> dict[str, Any]:
        doc_id = quote(document_id, safe="")
        try:
            return await self._get(f"/collections/{self._collection}/documents/{doc_id}")
        except DocumentNotFound as exc:
            # A missing collection is a 404 too; only a missing document means "no such event".
            if "document" not in str(exc).lower():
                raise TypesenseUnavailable("search collection not found") from exc
            raise

    async def healthy(self) -> bool:
        try:
            return bool((await self._get("/health")).get("ok"))
        except (TypesenseUnavailable, DocumentNotFound):
            return False
