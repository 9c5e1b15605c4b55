"""One running stack (tests/e2e/stack.py) shared by every end-to-end test module: starting
it takes most of a minute, and the tests use their own events, fans and queues. And the
browser tests' headless Chromium, with phone-sized pages."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, PHONE
from tests.e2e.stack import Stack, running_stack


@pytest.fixture(scope="package")
def stack(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(amqp_url, tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    # Imported here: the browser tests skip themselves when Playwright is missing.
    from playwright import sync_api as playwright_api

    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def pages(stack: Stack, browser) -> Iterator[dict[str, object]]:
    """Phone-sized pages by role; on a failure each is saved (screenshot and its notice) in
    the stack's work directory, named in the failure report."""
    from playwright import sync_api as playwright_api

    contexts: list[object] = []
    opened: dict[str, object] = {}

    def open_page(role: str) -> object:
        context = browser.new_context(**PHONE)
        contexts.append(context)
        opened[role] = page = context.new_page()
        return page

    yield {"open": open_page, "opened": opened}
    for role, page in opened.items():
        try:
            page.screenshot(path=str(stack.workdir / f"{role}.png"), full_page=True)
        except playwright_api.Error:
            pass
    for context in contexts:
        context.close()
