"""The read path's two Typesense calls (search, fetch one document) over aiohttp, from any
healthy node of a cluster.

Profiling catalog_api under the search benchmark (py-spy, 16 connections) put about three
quarters of its CPU inside the typesense client's httpx transport, which made the API the
bottleneck in front of a Typesense that had cores to spare. These are two GET requests on
a keep-alive session of the HTTP library the service already runs on; collection and
document writes stay with the typesense client in search_sync.

Every node of a cluster holds the whole index and answers reads itself, so a read goes to
the nodes in turn (spreading the load) and fails over to the next one on a refused or
broken connection, a timeout or a 5xx (a node still catching up answers ``503 Not Ready
or Lagging``), all within the one request's timeout. A node that failed is tried last for
NODE_COOLDOWN_SECONDS, so a dead node costs one refused connection per interval, not one
per request. A single node is the same code with one node to try.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from ticketing.config import Settings
from ticketing.web import EngineState

log = logging.getLogger(__name__)

NODE_COOLDOWN_SECONDS = 2.0


class TypesenseUnavailable(Exception):
    """Typesense did not answer, or answered with an error that is not about the input."""


class DocumentNotFound(Exception):
    pass


class _NodeFailed(Exception):
    """This node could not answer; another one may."""


@dataclass(slots=True)
class _Node:
    url: str
    down_until: float = 0.0


class TypesenseReader:
    def __init__(self, settings: Settings) -> None:
        self._nodes = [_Node(url) for url in settings.typesense_nodes]
        self._turn = 0
        self._collection = quote(settings.typesense_collection, safe="")
        # identity: on loopback, gzip only costs CPU at both ends (Typesense compresses
        # whenever the client offers it, and aiohttp offers it by default).
        self._headers = {
            "X-TYPESENSE-API-KEY": settings.typesense_api_key,
            "Accept-Encoding": "identity",
        }
        self._budget = settings.typesense_timeout_seconds
        self._session: aiohttp.ClientSession | None = None

    @property
    def mode(self) -> str:
        return "cluster" if len(self._nodes) > 1 else "single"

    async def open(self) -> None:
        # Keep-alive connections sized for one busy process; Typesense pools its own threads.
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=self._budget),
            connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=30),
            json_serialize=json.dumps,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _candidates(self) -> list[_Node]:
        """Every node, starting from the next in turn; those cooling down after a failure
        last (still tried: when every node failed lately, one may be back)."""
        start, self._turn = self._turn, (self._turn + 1) % len(self._nodes)
        ring = self._nodes[start:] + self._nodes[:start]
        now = time.monotonic()
        return [n for n in ring if n.down_until <= now] + [n for n in ring if n.down_until > now]

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        if self._session is None:
            raise RuntimeError("TypesenseReader.open() was not awaited")
        candidates = self._candidates()
        deadline = time.monotonic() + self._budget
        failure = "no time left to ask a node"
        for left, node in zip(range(len(candidates), 0, -1), candidates, strict=True):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                # Each node gets its share of what is left: a hung node cannot take it all.
                return await self._get_from(self._session, node, path, params, remaining / left)
            except _NodeFailed as exc:
                if node.down_until <= time.monotonic() and len(self._nodes) > 1:
                    log.warning("typesense node %s failed, trying the next: %s", node.url, exc)
                node.down_until = time.monotonic() + NODE_COOLDOWN_SECONDS
                failure = f"{node.url}: {exc}"
        raise TypesenseUnavailable(failure)

    @staticmethod
    async def _get_from(
        session: aiohttp.ClientSession,
        node: _Node,
        path: str,
        params: dict[str, Any] | None,
        seconds: float,
    ) -> dict[str, Any]:
        try:
            async with session.get(
                node.url + path, params=params, timeout=aiohttp.ClientTimeout(total=seconds)
            ) as resp:
                if resp.status == 404:
                    raise DocumentNotFound((await resp.json(loads=json.loads)).get("message", ""))
                if resp.status >= 500:
                    raise _NodeFailed(f"HTTP {resp.status}: {(await resp.text())[:200]}")
                if resp.status != 200:
                    # About the request itself: no other node would answer it otherwise.
                    raise TypesenseUnavailable(f"HTTP {resp.status}: {(await resp.text())[:200]}")
                answer: dict[str, Any] = await resp.json(loads=json.loads)
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
            raise _NodeFailed(f"{type(exc).__name__}: {exc}") from exc
        node.down_until = 0.0
        return answer

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

    async def state(self) -> EngineState:
        """How many nodes report healthy (asked at once, each within the timeout)."""
        if self._session is None:
            raise RuntimeError("TypesenseReader.open() was not awaited")
        session = self._session

        async def healthy(node: _Node) -> bool:
            try:
                answer = await self._get_from(session, node, "/health", None, self._budget)
            except (_NodeFailed, TypesenseUnavailable, DocumentNotFound):
                return False
            return answer.get("ok") is True

        answers = await asyncio.gather(*(healthy(node) for node in self._nodes))
        return EngineState(self.mode, len(self._nodes), sum(answers))
