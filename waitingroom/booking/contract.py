"""The booking front door's declared routes, in the order its document lists them."""

from __future__ import annotations

from ticketing.api import Api
from waitingroom.booking.confirm import CONFIRM_API
from waitingroom.booking.reserve import RESERVE_API
from waitingroom.booking.routes import BOOKING_API
from waitingroom.booking.stripe_webhook import STRIPE_WEBHOOK_API

BOOKING_APIS: list[Api] = [RESERVE_API, CONFIRM_API, BOOKING_API, STRIPE_WEBHOOK_API]
