"""Fixtures of the waiting-room tests: the waitingroom app with the queue's settings
(those are in tests/integration/conftest.py: the booking front door's tests use them too)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient

from tests.integration.booking.support import open_client
from ticketing.config import Settings


@pytest.fixture
async def qclient(queue_settings: Settings, worker: None) -> AsyncIterator[TestClient]:
    client = await open_client(queue_settings)
    yield client
    await client.close()
