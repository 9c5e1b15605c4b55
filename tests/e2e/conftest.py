"""One running stack (tests/e2e/stack.py) shared by every end-to-end test module: starting
it takes most of a minute, and the tests use their own events, fans and queues. And the
browser tests' headless Chromium, with phone-sized pages, whose replies from the stack are
held to the OpenAPI document as the stack's own requests are (tests/contract). The
gateway-join tests' admin token and paused event on sale (tests/e2e/gateway_join.py). And
the compose tests' services, prod and dev, which need no stack (tests/e2e/compose_files.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator
from urllib.parse import urlsplit

import pytest

from tests.contract import capture
from tests.e2e import compose_files
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, PHONE
from tests.e2e.gateway_join import _wait_for_gateway
from tests.e2e.stack import Stack, dev_token, queue_event, running_stack
from tests.integration.booking.support import own_vhost
from tests.servers import RUN_ID


@pytest.fixture(scope="package")
def stack(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A vhost of the stack's own: the integration tests' in-process booking worker (a
    # session fixture) consumes the run's vhost, and once started it takes the stack's
    # commands too (and, without the stack's Stripe, answers no confirm in time).
    with (
        contextlib.contextmanager(own_vhost)(amqp_url) as vhost,
        running_stack(vhost, tmp_path_factory.mktemp("stack")) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    # Imported here: the browser tests skip themselves when Playwright is missing.
    from playwright import sync_api as playwright_api

    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Marks a test whose set-up or call failed, for ``pages`` to save its pages."""
    report = yield
    if report.failed:
        item.stash[FAILED] = True
    return report


@pytest.fixture
def pages(stack: Stack, browser, request: pytest.FixtureRequest) -> Iterator[dict[str, object]]:
    """Phone-sized pages by role; on a failure each is saved (screenshot and its notice) in
    the stack's work directory, named in the failure report."""
    from playwright import sync_api as playwright_api

    contexts: list[object] = []
    opened: dict[str, object] = {}

    def open_page(role: str) -> object:
        context = browser.new_context(**PHONE)
        context.on("response", lambda response: _observe(stack, response, playwright_api.Error))
        contexts.append(context)
        opened[role] = page = context.new_page()
        return page

    yield {"open": open_page, "opened": opened}
    # Only a failure's pages are kept: a full-page screenshot costs a second or more each,
    # and a passing test's would be overwritten by the next one's unread.
    if request.node.stash.get(FAILED, False):
        for role, page in opened.items():
            with contextlib.suppress(playwright_api.Error):
                page.screenshot(path=str(stack.workdir / f"{role}.png"), full_page=True)
    for context in contexts:
        context.close()


def _observe(stack: Stack, response, error: type[Exception]) -> None:
    """A page's reply from the stack, as the browser received it."""
    if not response.url.startswith(stack.base + "/"):
        return
    try:
        body: bytes | None = response.body()
    except error:  # a redirect's, or one the page navigated away from
        body = None
    url = urlsplit(response.url)
    path = url.path + (f"?{url.query}" if url.query else "")
    content_type = response.headers.get("content-type")
    capture.observe(response.request.method, path, response.status, content_type, body)


@pytest.fixture(scope="module")
def admin(stack: Stack) -> str:
    return dev_token(stack, f"gw-ops-{RUN_ID}", ["admin"])


@pytest.fixture(scope="module")
def on_sale(stack: Stack, admin: str) -> int:
    """An event on sale with its queue paused (nobody is admitted under the tests' feet),
    which the gateway already answers for."""
    event_id = queue_event(stack, admin)["id"]
    status, _, body = stack.request(
        "PATCH", f"/admin/queues/{event_id}", {"paused": True}, token=admin
    )
    assert status == 200, body
    _wait_for_gateway(stack, event_id)
    return event_id


@pytest.fixture(scope="module", params=["prod", "dev"])
def services(request: pytest.FixtureRequest) -> dict[str, dict]:
    """Each stack's services, as compose runs them: prod, and dev (with the override)."""
    if request.param == "prod":
        return compose_files.prod_services()
    return compose_files.dev_services()
