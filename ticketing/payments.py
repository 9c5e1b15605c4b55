"""The Stripe adapter: charge, refund, find an attempt's PaymentIntent, verify webhooks.

Everything else talks to Stripe only through :class:`Payments`, which speaks the official
``stripe`` SDK's async methods over aiohttp (no thread per call) to ``stripe_api_base``
(localstripe in development and tests). Results are plain values; a declined card is a
:class:`PaymentDeclined` result, not an exception, because the caller must record it.

Calls go through the SDK's ``raw_request_async`` and read the response as the plain dict
it was parsed into: the SDK's resource methods would also turn each answer into nested
StripeObjects (type introspection per field), which cost a payment more CPU than the rest
of the request, on a worker's event loop: a charge took 1.62 ms of CPU that way, 0.61 ms
this way (bench/confirm_cpu.py). Errors, retries, headers and the idempotency key are the SDK's
either way: raw requests take the same request options and raise the same exceptions.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
import stripe

from ticketing.config import Settings

log = logging.getLogger(__name__)

# Network failures must surface quickly: the caller's attempt row stays 'pending' and is
# resolved later (webhook, or the next confirm's look-up), so a retry here gains nothing.
_NETWORK_RETRIES = 0
# The SDK waits 80 s for Stripe by default. A worker applies its commands one after
# another, so a Stripe that swallows packets would hold every fan behind one confirm for
# that long, while the front door gives up after booking_rpc_timeout_seconds. Giving up
# before the front door does lets the fan hear that the payment provider is the problem.
_SHARE_OF_FRONT_DOOR_WAIT = 0.75
_CONNECT_SECONDS = 2.0
# Crash recovery reads recent PaymentIntents a page at a time (find_attempt).
_PAGE = 100
_MOST_PAGES = 50


def stripe_timeout(settings: Settings) -> aiohttp.ClientTimeout:
    total = max(1.0, settings.booking_rpc_timeout_seconds * _SHARE_OF_FRONT_DOOR_WAIT)
    return aiohttp.ClientTimeout(total=total, connect=min(_CONNECT_SECONDS, total))


class PaymentUnavailable(Exception):
    """Stripe did not answer, or answered something other than a card decision.

    ``reached`` is False only when no connection to Stripe was ever made, so the request
    surely never arrived and nothing can have been charged; otherwise Stripe may have
    acted on it."""

    def __init__(self, message: str, *, reached: bool = True) -> None:
        super().__init__(message)
        self.reached = reached


class InvalidSignature(ValueError):
    """A webhook whose Stripe-Signature does not match its payload and our secret."""


@dataclass(frozen=True, slots=True)
class PaymentSucceeded:
    payment_intent_id: str
    # Stripe's fingerprint of the card (the same card number, the same one): the cards
    # signal of one person, one place (waitingroom/queue/signals_cards.py). None if absent.
    card_fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentDeclined:
    code: str
    message: str
    payment_intent_id: str | None = None


@dataclass(frozen=True, slots=True)
class FoundIntent:
    payment_intent_id: str
    status: str  # Stripe's: succeeded, requires_payment_method, processing, canceled...
    metadata: dict[str, str]


def intent_metadata(hold_id: str, attempt_id: str, ticket_ids: list[int]) -> dict[str, str]:
    """What a PaymentIntent carries so a webhook alone can complete or refund its booking
    (the hold's seats may have been released by then, so they travel with the payment)."""
    return {
        "hold_id": hold_id,
        "attempt_id": attempt_id,
        "ticket_ids": ",".join(str(t) for t in ticket_ids),
    }


class Payments:
    def __init__(self, settings: Settings) -> None:
        self._http = stripe.AIOHTTPClient(timeout=stripe_timeout(settings))
        self._client = stripe.StripeClient(
            settings.stripe_api_key,
            base_addresses={"api": settings.stripe_api_base},
            http_client=self._http,
            max_network_retries=_NETWORK_RETRIES,
        )

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]  # unannotated in stripe

    async def charge(
        self,
        *,
        idempotency_key: str,
        amount_cents: int,
        currency: str,
        payment_method: str,
        metadata: dict[str, str],
    ) -> PaymentSucceeded | PaymentDeclined:
        """Create and confirm one PaymentIntent for one payment attempt."""
        try:
            intent = await self._request(
                "post",
                "/v1/payment_intents",
                idempotency_key=idempotency_key,
                amount=amount_cents,
                currency=currency.lower(),
                payment_method=payment_method,
                confirm=True,
                metadata=metadata,
                # The card's fingerprint comes with it (one person, one place).
                expand=["payment_method"],
            )
        except stripe.CardError as exc:
            error = getattr(exc, "error", None)
            intent_id = getattr(getattr(error, "payment_intent", None), "id", None)
            return PaymentDeclined(exc.code or "card_declined", exc.user_message or "", intent_id)
        except stripe.InvalidRequestError as exc:
            # An unknown or unusable payment method is the fan's to fix, like a decline.
            if exc.http_status in (400, 404):
                return PaymentDeclined(exc.code or "invalid_payment_method", str(exc.user_message))
            raise PaymentUnavailable(str(exc)) from exc
        except stripe.StripeError as exc:
            raise PaymentUnavailable(str(exc)) from exc
        if intent["status"] == "succeeded":
            return PaymentSucceeded(intent["id"], _card_fingerprint(intent))
        return PaymentDeclined(intent["status"], "The payment did not complete.", intent["id"])

    async def refund(self, payment_intent_id: str, *, idempotency_key: str) -> str:
        try:
            refund = await self._request(
                "post",
                "/v1/refunds",
                idempotency_key=idempotency_key,
                payment_intent=payment_intent_id,
            )
        except stripe.StripeError as exc:
            raise PaymentUnavailable(str(exc)) from exc
        refund_id: str = refund["id"]
        log.info("refunded payment_intent=%s refund=%s", payment_intent_id, refund_id)
        return refund_id

    async def find_attempt(
        self, attempt_id: str, *, since: float | None = None
    ) -> FoundIntent | None:
        """The PaymentIntent an attempt created, if it got that far (crash recovery).

        Lists intents rather than using the search API: localstripe lacks it, and Stripe's
        search may not show an intent created a moment ago. Stripe lists the newest first,
        so pages are read until one reaches intents created before ``since`` (epoch
        seconds: the attempt's own record, less a margin for clocks); at an on-sale a
        hundred other payments may have been made since the attempt, so one page is not
        enough. Without ``since``, the first page only."""
        params: dict[str, Any] = {"limit": _PAGE}
        for _ in range(_MOST_PAGES):
            try:
                page = await self._request("get", "/v1/payment_intents", **params)
            except stripe.StripeError as exc:
                raise PaymentUnavailable(str(exc)) from exc
            intents = page["data"]
            for intent in intents:
                metadata = dict(intent.get("metadata") or {})
                if metadata.get("attempt_id") == attempt_id:
                    return FoundIntent(intent["id"], intent["status"], metadata)
            if since is None or not page.get("has_more") or not intents:
                return None
            if min(intent["created"] for intent in intents) < since:
                return None
            params = {"limit": _PAGE, "starting_after": intents[-1]["id"]}
        log.warning("attempt %s: not in the newest %d intents", attempt_id, _PAGE * _MOST_PAGES)
        return None

    async def _request(self, method: str, path: str, **params: Any) -> dict[str, Any]:
        """Stripe's answer as a plain dict. ``idempotency_key`` among ``params`` is a
        request option: raw_request_async takes it out of the parameters and sends it as
        the Idempotency-Key header, as the resource methods' ``options`` do."""
        with _network_errors():
            response = await self._client.raw_request_async(method, path, **params)
        return cast(dict[str, Any], response.data)


def _card_fingerprint(intent: dict[str, Any]) -> str | None:
    method = intent.get("payment_method")
    card = method.get("card") if isinstance(method, dict) else None
    fingerprint = card.get("fingerprint") if isinstance(card, dict) else None
    return fingerprint if isinstance(fingerprint, str) and fingerprint else None


@contextlib.contextmanager
def _network_errors() -> Iterator[None]:
    """Stripe out of reach, as PaymentUnavailable. The SDK wraps what fails before the
    response headers; a timeout or a dropped connection while the body is read comes
    through as aiohttp's own error."""
    try:
        yield
    except stripe.APIConnectionError as exc:
        cause = exc.__cause__
        # No connection was made: refused, unreachable, or the connect timed out.
        never = isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
        raise PaymentUnavailable(str(exc), reached=not never) from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise PaymentUnavailable(f"{type(exc).__name__}: {exc}") from exc


def verify_webhook(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """The event a correctly signed webhook carries, as a plain dict."""
    if not signature:
        raise InvalidSignature("missing Stripe-Signature header")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError as exc:
        raise InvalidSignature(str(exc)) from exc
    except ValueError as exc:  # not JSON
        raise InvalidSignature("payload is not a JSON event") from exc
    body: dict[str, Any] = event.to_dict()
    return body
