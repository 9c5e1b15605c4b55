"""The HTTP metrics' labels stay a bounded set whatever a client sends: a method it makes
up is ``other``, a path no route matches is ``unmatched``, and ids never reach the route
label (the template does). The control: the known methods keep their own label."""

from __future__ import annotations

import uuid

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ticketing.metrics import HTTP_REQUESTS, KNOWN_METHODS, SERVICE_KEY, metrics_middleware


async def _thing(request: web.Request) -> web.Response:
    return web.Response(text=request.match_info["thing_id"])


def _labels(service: str) -> set[tuple[str, str, str]]:
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"])
        for metric in HTTP_REQUESTS.collect()
        for s in metric.samples
        if s.name.endswith("_total") and s.labels["service"] == service
    }


async def test_made_up_methods_and_unknown_paths_do_not_become_labels() -> None:
    service = f"labels-{uuid.uuid4().hex[:8]}"
    app = web.Application(middlewares=[metrics_middleware])
    app[SERVICE_KEY] = service
    app.router.add_get("/things/{thing_id}", _thing)
    app.router.add_route("*", "/any/{thing_id}", _thing)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        for method in ("GET", "POST", "DELETE", "OPTIONS"):
            async with client.request(method, "/any/1") as resp:
                assert resp.status == 200
        for n in range(5):
            async with client.get(f"/things/{n}") as resp:
                assert resp.status == 200
            async with client.get(f"/nowhere/{n}") as resp:
                assert resp.status == 404
        # Methods the parser knows (WebDAV and the like) and tokens nobody defined: each
        # is answered (405, or 400 by the parser) but none is a label of its own.
        for method in ("PROPFIND", "MKCOL", "PURGE", "LOCK", "SEARCH", "BREW", "X-" + "Y" * 40):
            async with client.request(method, "/things/1") as resp:
                assert resp.status in (400, 405)
            async with client.request(method, "/any/1") as resp:
                assert resp.status in (200, 400)
    finally:
        await client.close()
    labels = _labels(service)
    assert {method for method, _, _ in labels} <= KNOWN_METHODS | {"other"}
    assert {route for _, route, _ in labels} <= {
        "/things/{thing_id}",
        "/any/{thing_id}",
        "unmatched",
    }
    assert ("other", "/any/{thing_id}", "200") in labels
    for method in ("GET", "POST", "DELETE", "OPTIONS"):
        assert (method, "/any/{thing_id}", "200") in labels
    assert ("GET", "/things/{thing_id}", "200") in labels
    assert ("GET", "unmatched", "404") in labels
