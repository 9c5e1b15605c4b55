"""Fixtures of the payment tests (localstripe itself, and the network to it, are in
tests/integration/conftest.py: booking and queue stories pay too)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.booking.support import own_vhost
from ticketing.config import Settings


@pytest.fixture(scope="module")
def e2e_amqp(booking_settings: Settings) -> Iterator[str]:
    """A vhost of this module's own: only the module's worker (with Stripe settings) consumes."""
    yield from own_vhost(booking_settings.amqp_url)
