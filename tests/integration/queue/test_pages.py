"""The waitingroom's HTML pages and their assets, served by the real app on real Redis.

What the pages do in a browser is tests/e2e/test_queue_browser.py's concern; here: they load
without a token, everything they reference is served, nothing comes from elsewhere, and a
malformed event id is the usual 404 problem document."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient, TestServer

from waitingroom.app import create_app
from waitingroom.queue.pages import STATIC_DIR


@pytest.fixture
async def client(settings):
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    yield client
    await client.close()


@pytest.mark.parametrize(("path", "script"), [("/queue/7", "queue.js"), ("/admin", "admin.js")])
async def test_pages_load_without_a_token_with_everything_they_reference(client, path, script):
    resp = await client.get(path)
    html = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert '<meta name="viewport"' in html
    referenced = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert f"/static/{script}" in referenced and "/static/style.css" in referenced
    for asset in referenced:
        got = await client.get(asset)
        assert got.status == 200, asset
        assert got.content_type in ("text/css", "text/javascript"), asset

    again = await client.get(path, headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status == 304


def test_no_asset_loads_anything_from_another_origin():
    for path in STATIC_DIR.iterdir():
        # The vendored ALTCHA widget's "Protected by ALTCHA" footer links its site: a link
        # loads nothing (and the queue page hides the footer).
        text = path.read_text().replace('<a href="https://altcha.org/"', "<a")
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), path.name
        assert "import(" not in text and "@import" not in text, path.name


@pytest.mark.parametrize("path", ["/queue/abc", "/queue/0", "/queue/99999999999999999999"])
async def test_a_malformed_event_id_is_a_404_problem(client, path):
    resp = await client.get(path)
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["code"] == "event_not_found"


@pytest.mark.parametrize("name", ["queue.html", "nope.js", "..%2Fpages.py"])
async def test_static_serves_only_the_assets(client, name):
    resp = await client.get("/static/" + name)
    assert resp.status == 404
    assert (await resp.json())["code"] == "not_found"
