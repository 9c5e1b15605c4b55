"""One running stack (tests/e2e/stack.py) shared by every end-to-end test module: starting
it takes most of a minute, and the tests use their own events, fans and queues."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.stack import Stack, running_stack


@pytest.fixture(scope="package")
def stack(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(amqp_url, tmp_path_factory.mktemp("stack")) as running:
        yield running
