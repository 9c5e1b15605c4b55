"""The queue's declared routes, in the order its document lists them."""

from __future__ import annotations

from ticketing.api import Api

QUEUE_APIS: list[Api] = []
