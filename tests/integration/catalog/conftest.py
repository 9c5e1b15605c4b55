"""Fixtures of the catalog_api tests: the catalog's settings (a Typesense collection of its
own), the catalog app (``client``, in place of the waitingroom's of
tests/integration/conftest.py) and the catalog seeded once per run."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient

from tests.integration.catalog.support import Seed, open_client, seed_catalog
from tests.support import settings_with
from ticketing.config import Settings


@pytest.fixture(scope="session")
def catalog_settings(settings: Settings) -> Settings:
    return settings_with(settings, typesense_collection=settings.typesense_collection + "_catalog")


@pytest.fixture
async def client(catalog_settings: Settings) -> AsyncIterator[TestClient]:
    client = await open_client(catalog_settings)
    yield client
    await client.close()


@pytest.fixture(scope="session")
async def seed(catalog_settings: Settings) -> Seed:
    return await seed_catalog(catalog_settings)
