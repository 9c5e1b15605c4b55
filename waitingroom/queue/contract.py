"""The queue's declared routes, in the order its document lists them."""

from __future__ import annotations

from ticketing.api import Api
from waitingroom.queue.admin_routes import ADMIN_QUEUE_API
from waitingroom.queue.challenge_routes import CHALLENGE_API
from waitingroom.queue.fairness_routes import FAIRNESS_API
from waitingroom.queue.pages import PAGES_API
from waitingroom.queue.presale_admin_routes import PRESALE_ADMIN_API
from waitingroom.queue.presale_routes import PRESALE_API
from waitingroom.queue.routes import FAN_API
from waitingroom.queue.websocket import SOCKET_API
from waitingroom.queue.ws_ticket import TICKET_API

QUEUE_APIS: list[Api] = [
    FAN_API,
    CHALLENGE_API,
    TICKET_API,
    SOCKET_API,
    FAIRNESS_API,
    PRESALE_API,
    ADMIN_QUEUE_API,
    PRESALE_ADMIN_API,
    PAGES_API,
]
