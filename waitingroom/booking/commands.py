"""A fan's booking request as a command to a booking worker, and the worker's answer as
the fan's response: the connection each process keeps (:data:`RPC_KEY`), the idempotency
key of a request, the envelope every command carries, and the answer passed on as it is."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator

import orjson
from aiohttp import web

from ticketing.amqp_health import AMQP_WATCH_KEY, NodeWatch, check_rabbitmq
from ticketing.auth import Principal
from ticketing.messages import BookingReply, Command
from ticketing.problems import CONTENT_TYPE, RETRY_AFTER_SECONDS, Problem, validation_error
from ticketing.web import HEALTH_CHECKS_KEY, SETTINGS_KEY
from waitingroom.booking.rpc import BookingRpc

RPC_KEY = web.AppKey("booking_rpc", BookingRpc)


async def rpc_ctx(app: web.Application) -> AsyncIterator[None]:
    rpc = BookingRpc(app[SETTINGS_KEY])
    watch = NodeWatch(app[SETTINGS_KEY].amqp_url, rpc.connected_node)
    app[RPC_KEY], app[AMQP_WATCH_KEY] = rpc, watch
    app[HEALTH_CHECKS_KEY]["rabbitmq"] = check_rabbitmq
    rpc.start()
    watch.start()
    yield
    await watch.close()
    await rpc.close()


def request_id_of(request: web.Request, principal: Principal, route: str) -> str:
    """The idempotency key of this request: the same (user, Idempotency-Key, route) is the
    same command, so a retry is answered from the worker's stored reply."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return uuid.uuid4().hex
    if not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
        raise input_refusal(
            "header",
            "Idempotency-Key",
            "Idempotency-Key must be 1 to 255 printable ASCII characters.",
        )
    digest = hashlib.sha256("\0".join((principal.user_id, key, route)).encode()).hexdigest()
    return "idem:" + digest


def input_refusal(location: str, name: str, message: str) -> Problem:
    """``400 validation_error`` for input no model reads (a header, the raw webhook body),
    in the shape of every other refusal (:func:`ticketing.api.validate.refusal`)."""
    reason = {"in": location, "name": name, "message": message}
    named = {"field" if location == "body" else "parameter": name}
    return validation_error(message, errors=[reason], **named)


def roles_of(principal: Principal) -> tuple[str, ...]:
    """A command's ``roles``: the caller's, sorted (the worker checks for ``admin``)."""
    return tuple(sorted(principal.roles))


async def send_command(request: web.Request, command: Command, key: int | str) -> web.Response:
    """``command`` answered by the worker of partition ``key``, as the fan's response."""
    return respond(await request.app[RPC_KEY].call(command, key))


def respond(reply: BookingReply) -> web.Response:
    """A booking worker's answer as the fan's response."""
    status, body = reply.status, reply.body
    if status == 204 or body is None:
        return web.Response(status=status)
    if status >= 400:
        headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else None
        return web.Response(
            status=status, body=orjson.dumps(body), content_type=CONTENT_TYPE, headers=headers
        )
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def uuid_or_404(raw: str, code: str, detail: str) -> str:
    try:
        return str(uuid.UUID(raw))
    except ValueError as exc:
        raise Problem(404, code, detail) from exc
