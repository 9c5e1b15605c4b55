"""Fixtures of the booking stories of their own (the settings, the pool, the worker and the
waitingroom app are in tests/integration/conftest.py: the queue and payment stories use
them too): an on-sale event of SMALL seats, fresh for each test."""

from __future__ import annotations

import asyncpg
import pytest

from tests.integration.booking.support import SMALL, make_event


@pytest.fixture
async def event(pool: asyncpg.Pool) -> int:
    return await make_event(pool, SMALL)
